"""SMART Backend Services authorisation (HL7 SMART App Launch 2.x, "Backend Services").

`SmartBackendAuth` is a `TokenProvider` for `FhirClient`: it obtains an access token with the
OAuth 2.0 client-credentials grant authenticated by a signed JWT (`client_assertion_type`
`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), signed RS384 or ES384 with the
service's private key (pyjwt), and reuses it until shortly before it expires.

- Token endpoint: configured, else `token_endpoint` of `[base]/.well-known/smart-configuration`
  (read once).
- Assertion claims (SMART Backend Services section "Authenticating to the token endpoint"):
  `iss` = `sub` = client id, `aud` = token endpoint URL, `exp` = now + 5 minutes at most (we
  use 4), a fresh random `jti`; header `kid` (when configured) and `typ` `JWT`.
- Scopes: SMART v2 `system/<Type>.<perms>` (e.g. `system/Observation.rs system/Observation.cu`);
  the server may grant fewer (logged as the number granted, not the list).
- Reuse: the token is reused until `expires_in` minus a safety margin (default 60 s); after a
  401 `FhirClient` calls the provider with `refresh=True`, which discards it and fetches anew.
  Concurrent callers share one fetch (lock).
- Errors: a token endpoint that refuses (4xx) raises `FhirRejected` with the OAuth `error`
  code and `error_description` text; transport errors and 5xx raise `FhirUnavailable`. The
  token, the assertion and the key never reach logs or messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio
import httpx
import jwt
import orjson
import structlog

from service.adapters.fhir import codes
from service.adapters.fhir.errors import FhirRejected, FhirUnavailable

__all__ = ["ASSERTION_TYPE", "DEFAULT_SCOPES", "SmartBackendAuth", "SmartCredentials"]

log = structlog.get_logger(__name__)

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S: Final = 240
# What the service reads and writes, each scope's reason in docs/fhir/write-back.md: reads of the
# clinical types and Groups; results created and amended; Provenance and Device created
# conditionally (a conditional create searches first: `s`); StructureDefinition read because
# servers that check `meta.profile` resolve our profiles with the caller's rights.
DEFAULT_SCOPES: Final = " ".join(
    [
        *(f"system/{t}.rs" for t in (*codes.READ_TYPES, "Group")),
        "system/Observation.cu",
        "system/Provenance.cs",
        "system/Device.crs",
        "system/StructureDefinition.rs",
    ]
)


@dataclass(frozen=True, slots=True)
class SmartCredentials:
    client_id: str
    private_key_pem: str
    algorithm: Literal["RS384", "ES384"] = "RS384"
    key_id: str | None = None
    scopes: str = DEFAULT_SCOPES
    token_url: str | None = None


class SmartBackendAuth:
    """Client-credentials tokens with a signed JWT assertion, reused until expiry (see module doc)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        fhir_base_url: str,
        credentials: SmartCredentials,
        *,
        clock: Callable[[], float] = time.time,
        expiry_margin_s: float = 60.0,
    ) -> None:
        self._http = http
        self._base = fhir_base_url.rstrip("/")
        self._credentials = credentials
        self._clock = clock
        self._margin = expiry_margin_s
        self._token_url = credentials.token_url
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()
        self.fetches = 0

    async def __call__(self, refresh: bool) -> str:
        async with self._lock:
            if refresh:
                self._token = None
            if self._token is None or self._clock() >= self._expires_at:
                self._token, self._expires_at = await self._fetch()
            return self._token

    def assertion(self, token_url: str) -> str:
        """The signed client assertion (public for tests and for the conformance check)."""
        now = int(self._clock())
        claims = {
            "iss": self._credentials.client_id,
            "sub": self._credentials.client_id,
            "aud": token_url,
            "exp": now + ASSERTION_LIFETIME_S,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        headers: dict[str, Any] = {"typ": "JWT"}
        if self._credentials.key_id:
            headers["kid"] = self._credentials.key_id
        return jwt.encode(
            claims, self._credentials.private_key_pem, algorithm=self._credentials.algorithm, headers=headers
        )

    async def token_url(self) -> str:
        if self._token_url is None:
            url = f"{self._base}/.well-known/smart-configuration"
            body = await self._post_or_get("GET", url)
            endpoint = body.get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint:
                raise FhirRejected(("not-supported",), "smart-configuration names no token_endpoint")
            self._token_url = endpoint
        return self._token_url

    async def _fetch(self) -> tuple[str, float]:
        url = await self.token_url()
        form = {
            "grant_type": "client_credentials",
            "scope": self._credentials.scopes,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(url),
        }
        body = await self._post_or_get("POST", url, form=form)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FhirRejected(("login",), "token endpoint answered without an access_token")
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 300.0
        granted = body.get("scope")
        self.fetches += 1
        log.info(
            "fhir.token",
            lifetime_s=lifetime,
            scopes_granted=len(granted.split()) if isinstance(granted, str) else None,
        )
        return token, self._clock() + max(0.0, lifetime - self._margin)

    async def _post_or_get(self, method: str, url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as exc:
            raise FhirUnavailable(f"authorisation server: {type(exc).__name__}") from exc
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code >= 500:
            raise FhirUnavailable(
                f"authorisation server: HTTP {response.status_code}", status=response.status_code
            )
        if response.status_code >= 400 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            text = body.get("error_description") if isinstance(body, dict) else None
            raise FhirRejected(
                (error,) if isinstance(error, str) else ("login",),
                text
                if isinstance(text, str) and text
                else f"authorisation server: HTTP {response.status_code}",
                status=response.status_code,
            )
        return body
