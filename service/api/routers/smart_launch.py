"""A local EHR-launch simulator for the patient view (demo and tests only).

The demo's FHIR server (sekmet-fhir 0.1.1) publishes a SMART configuration for Backend Services
only: its `/auth/authorize` answers that user launches are not implemented. To launch the patient
view as a SMART App Launch 2.x app (HL7, "SMART App Launch" 2.2.0, sections "EHR launch",
"Standalone launch" and "PKCE") without another server, the service plays the EHR's
authorisation server when `ONCORESPONSE_SMART_DEMO_LAUNCH=true` (refused in production):

- `GET /smart/ehr?patient=ID` is the EHR: it issues an opaque `launch` bound to the patient and
  opens the app's launch URL with `iss` and `launch`, as an EHR does.
- `GET /smart/.well-known/smart-configuration` is discovery: `authorization_endpoint`,
  `token_endpoint`, `code_challenge_methods_supported: ["S256"]` and the capabilities.
- `GET /smart/authorize` checks `response_type=code`, the client, the redirect URI (same origin,
  the app's page), `aud` = `iss`, PKCE `S256` (required; `plain` refused as the specification
  requires) and either `launch` (EHR launch) or the `launch/patient` scope (standalone: a small
  form asks for the patient). The user is taken as having approved; the code is a signed,
  60-second, single-use JWT that carries the PKCE challenge.
- `POST /smart/token` exchanges code + `code_verifier` (SHA-256, base64url, compared in
  constant time) for a patient-scoped access token (RS256, 1 hour) and `patient` in the answer.

OAuth errors follow RFC 6749: redirected as `error=` when the redirect URI is trusted, otherwise
(and at the token endpoint) JSON `{"error", "error_description"}`, never a 500. The signing key is
generated at start-up and never leaves the process; tokens are never logged. A real deployment
registers the app with the EHR's own authorisation server (docs/web/patient-view.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from service.api.routers.web import CONTENT_SECURITY_POLICY
from service.application.errors import ApplicationError, NotConfigured

CLIENT_ID: Final = "oncoresponse-patient-view"
APP_LAUNCH_PATH: Final = "/app/patient/launch"
APP_REDIRECT_PATH: Final = "/app/patient/"
ACCESS_AUDIENCE: Final = "oncoresponse-patient-view"
CODE_LIFETIME_S: Final = 60
LAUNCH_LIFETIME_S: Final = 600
TOKEN_LIFETIME_S: Final = 3600
# What the patient view reads, as SMART v2 patient scopes (plus the launch context).
APP_SCOPES: Final = (
    "patient/Patient.rs",
    "patient/Observation.rs",
    "patient/BodyStructure.rs",
    "patient/ImagingStudy.rs",
    "patient/MedicationAdministration.rs",
    "patient/Procedure.rs",
)
PATIENT_ID_PATTERN: Final = r"^[A-Za-z0-9\-.]{1,64}$"

router = APIRouter(prefix="/smart", include_in_schema=False)


class SmartDemoOff(NotConfigured):
    problem_type = "/problems/smart-demo-launch-off"
    title = "The demo EHR launch is not enabled"


class SmartRequestInvalid(ApplicationError):
    problem_type = "/problems/smart-request-invalid"
    title = "Invalid SMART authorisation request"
    status = 400


@dataclass
class SmartDemoIssuer:
    """The simulator's signing key and the codes already exchanged (single use)."""

    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    used_codes: dict[str, float] = field(default_factory=dict)

    @property
    def public_key_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, claims: dict[str, Any], *, lifetime_s: int) -> str:
        now = int(time.time())
        return jwt.encode(
            {**claims, "iat": now, "exp": now + lifetime_s}, self.private_key, algorithm="RS256"
        )

    def read(self, token: str, *, audience: str) -> dict[str, Any]:
        """The claims of a token this simulator signed; `jwt.InvalidTokenError` otherwise."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.private_key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            options={"require": ["exp", "aud"]},
        )
        return claims

    def spend(self, jti: str) -> bool:
        """True the first time a code's `jti` is spent, False after (and forgets expired ones)."""
        now = time.time()
        for old in [k for k, expiry in self.used_codes.items() if expiry < now]:
            del self.used_codes[old]
        if jti in self.used_codes:
            return False
        self.used_codes[jti] = now + CODE_LIFETIME_S
        return True


def issuer_of(request: Request) -> SmartDemoIssuer:
    issuer: SmartDemoIssuer | None = getattr(request.app.state, "smart_demo", None)
    if issuer is None:
        raise SmartDemoOff("Set ONCORESPONSE_SMART_DEMO_LAUNCH=true (development) to use the demo EHR launch")
    return issuer


def origin_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def iss_of(request: Request) -> str:
    return f"{origin_of(request)}/smart"


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 section 4.2, S256: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@router.get("/ehr")
async def ehr_launch(
    request: Request, patient: Annotated[str, Query(pattern=PATIENT_ID_PATTERN)]
) -> RedirectResponse:
    """The simulated EHR opens the app for `patient` (EHR launch)."""
    launch = issuer_of(request).sign({"aud": "launch", "patient": patient}, lifetime_s=LAUNCH_LIFETIME_S)
    query = urlencode({"iss": iss_of(request), "launch": launch})
    return RedirectResponse(f"{APP_LAUNCH_PATH}?{query}", status_code=302)


@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> JSONResponse:
    issuer_of(request)
    base = iss_of(request)
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "grant_types_supported": ["authorization_code"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["launch", "launch/patient", *APP_SCOPES],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "context-ehr-patient",
                "context-standalone-patient",
                "permission-v2",
                "permission-patient",
            ],
        }
    )


def _redirect_with(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)


def _trusted_redirect(request: Request, redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    return f"{parts.scheme}://{parts.netloc}" == origin_of(request) and parts.path == APP_REDIRECT_PATH


def _patient_form(query: dict[str, str]) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in query.items()
        if k != "patient"
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Choose a patient</title>'
        '<link rel="stylesheet" href="/static/patient/patient.css"></head><body><main>'
        "<h1>Demo EHR: choose a patient</h1>"
        '<form method="get" action="/smart/authorize">'
        f'{hidden}<label for="patient">Patient id</label> <input id="patient" name="patient" required '
        f'pattern="[A-Za-z0-9\\-.]{{1,64}}"> <button type="submit">Open the lesion view</button>'
        "</form></main></body></html>"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.get("/authorize", response_model=None)
async def authorize(request: Request) -> RedirectResponse | HTMLResponse:
    issuer = issuer_of(request)
    query = dict(request.query_params)
    redirect_uri = query.get("redirect_uri", "")
    if query.get("client_id") != CLIENT_ID or not _trusted_redirect(request, redirect_uri):
        # RFC 6749 section 4.1.2.1: never redirect to an unverified URI.
        raise SmartRequestInvalid("Unknown client_id or redirect_uri (the demo knows the patient view only)")
    state = query.get("state", "")

    def refuse(error: str, description: str) -> RedirectResponse:
        return _redirect_with(
            redirect_uri, {"error": error, "error_description": description, "state": state}
        )

    scopes = query.get("scope", "").split()
    if query.get("response_type") != "code":
        return refuse("unsupported_response_type", "response_type must be code")
    if query.get("aud") != iss_of(request):
        return refuse("invalid_request", "aud must be the FHIR base URL the app was launched with")
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return refuse("invalid_request", "PKCE with code_challenge_method S256 is required")
    if "launch" in query:
        try:
            patient = str(issuer.read(query["launch"], audience="launch")["patient"])
        except (jwt.InvalidTokenError, KeyError):
            return refuse("invalid_request", "launch is unknown or expired")
    elif "launch/patient" in scopes:
        if "patient" not in query:
            return _patient_form(query)
        patient = query["patient"]
    else:
        return refuse("invalid_scope", "Ask for launch (EHR launch) or launch/patient (standalone launch)")
    granted = [s for s in scopes if s in APP_SCOPES or s in ("launch", "launch/patient")]
    code = issuer.sign(
        {
            "aud": "code",
            "jti": secrets.token_urlsafe(16),
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "code_challenge": query["code_challenge"],
            "patient": patient,
            "scope": " ".join(granted),
        },
        lifetime_s=CODE_LIFETIME_S,
    )
    return _redirect_with(redirect_uri, {"code": code, "state": state})


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )


MAX_TOKEN_REQUEST_BYTES: Final = 16 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The `application/x-www-form-urlencoded` body (RFC 6749 section 4.1.3), first value of each."""
    body = await request.body()
    if len(body) > MAX_TOKEN_REQUEST_BYTES:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


@router.post("/token")
async def token(request: Request) -> JSONResponse:
    issuer = issuer_of(request)
    form = await _form(request)
    grant_type, code, redirect_uri = (
        form.get("grant_type", ""),
        form.get("code", ""),
        form.get("redirect_uri", ""),
    )
    client_id, code_verifier = form.get("client_id", ""), form.get("code_verifier", "")
    if grant_type != "authorization_code":
        return _oauth_error("unsupported_grant_type", "grant_type must be authorization_code")
    try:
        claims = issuer.read(code, audience="code")
    except jwt.InvalidTokenError:
        return _oauth_error("invalid_grant", "The code is unknown or expired")
    if claims.get("client_id") != client_id or claims.get("redirect_uri") != redirect_uri:
        return _oauth_error(
            "invalid_grant", "client_id or redirect_uri differ from the authorisation request"
        )
    if not 43 <= len(code_verifier) <= 128 or not hmac.compare_digest(
        pkce_challenge(code_verifier), str(claims.get("code_challenge"))
    ):
        return _oauth_error("invalid_grant", "code_verifier does not match the code_challenge (PKCE S256)")
    if not issuer.spend(str(claims.get("jti"))):
        return _oauth_error("invalid_grant", "The code was already used")
    scope = str(claims["scope"])
    access = issuer.sign(
        {"aud": ACCESS_AUDIENCE, "sub": client_id, "patient": claims["patient"], "scope": scope},
        lifetime_s=TOKEN_LIFETIME_S,
    )
    return JSONResponse(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "scope": scope,
            "patient": claims["patient"],
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
