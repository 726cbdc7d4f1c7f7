"""Authentication of the clinical API: `/sync`, `/$assess`, `/alerts*`, `/patients/*`.

These endpoints read and change patient data, so they take an OAuth2 bearer JWT issued by the
hospital's authorisation server, verified like the research portal's tokens (`auth.py`): one
configured public key, RS256 (RSA) or ES256 (EC P-256) only, `none` and HMAC refused before any
key is used, `exp`/`iss`/`aud`/`sub` required, a small leeway for clock skew.

Scopes (`scope` or `scp`): `ONCORESPONSE_API_READ_SCOPE` (default `oncoresponse.read`) to read
alerts and lesion tables; `ONCORESPONSE_API_WRITE_SCOPE` (default `oncoresponse.write`) to run a
sync or an assessment and to acknowledge, retry or deliver alerts. The write scope does not imply
the read scope: an integration engine that only triggers syncs need not read alerts.

Failures are problem+json: 401 `/problems/not-authenticated` with a `WWW-Authenticate: Bearer`
challenge, 403 `/problems/insufficient-scope` naming the scope, 503 when `jwt` is chosen but no
key or issuer is configured (closed, never open by accident). `ONCORESPONSE_API_AUTH=off` opens
the endpoints for development and tests only; `Settings` refuses it in production.

The token's `sub` is who acknowledged an alert; nothing of the token is logged.

Not covered here: `/stats/*` (own tokens, `auth.py`), CDS Hooks (EHR-signed JWTs,
`adapters/alerts/cds_jwt.py`), the FHIR subscription hook (shared token set in the Subscription's
`channel.header`), and `/healthz`, `/readyz`, `/metrics` (no patient data; keep them on the
internal network).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.application.errors import ApplicationError, NotConfigured
from service.config import Settings


class ClinicalNotAuthenticated(ApplicationError):
    problem_type = "/problems/not-authenticated"
    title = "Not authenticated"
    status = 401
    headers: Mapping[str, str] = {"WWW-Authenticate": 'Bearer realm="oncoresponse"'}


class ClinicalInsufficientScope(ApplicationError):
    problem_type = "/problems/insufficient-scope"
    title = "Insufficient scope"
    status = 403

    def __init__(self, detail: str, scope: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


@dataclass(frozen=True, slots=True)
class ApiAuthConfig:
    """The clinical API's token settings (`ONCORESPONSE_API_*`, see `service.config`)."""

    enabled: bool = True
    public_key_pem: str | None = None
    issuer: str | None = None
    audience: str = "oncoresponse"
    leeway_s: int = 30
    read_scope: str = "oncoresponse.read"
    write_scope: str = "oncoresponse.write"

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiAuthConfig:
        key = settings.api_jwt_public_key
        return cls(
            enabled=settings.api_auth == "jwt",
            public_key_pem=key.get_secret_value() if key is not None else None,
            issuer=settings.api_jwt_issuer,
            audience=settings.api_jwt_audience,
            leeway_s=settings.api_jwt_leeway_s,
            read_scope=settings.api_read_scope,
            write_scope=settings.api_write_scope,
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called: the token's subject and scopes (`anonymous` when authentication is off)."""

    subject: str
    scopes: frozenset[str]


ANONYMOUS = Caller("anonymous", frozenset())
_ALGORITHM_OF_KEY = {rsa.RSAPublicKey: "RS256", ec.EllipticCurvePublicKey: "ES256"}


@functools.lru_cache(maxsize=8)
def _public_key(pem: str) -> tuple[Any, str]:
    key = load_pem_public_key(pem.encode())
    for kind, algorithm in _ALGORITHM_OF_KEY.items():
        if isinstance(key, kind):
            return key, algorithm
    raise NotConfigured("the configured JWT public key is neither RSA nor EC P-256")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes of `scope` (space-separated, RFC 9068) and `scp` (list or string)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found)


def verify_caller(token: str, config: ApiAuthConfig) -> Caller:
    """The verified caller of a bearer token; raises the problem errors of the module docstring."""
    if not config.public_key_pem or not config.issuer:
        raise NotConfigured("The clinical API has no token issuer configured (ONCORESPONSE_API_JWT_*)")
    claims = verified_claims(
        token,
        public_key_pem=config.public_key_pem,
        issuer=config.issuer,
        audience=config.audience,
        leeway_s=config.leeway_s,
        refused=ClinicalNotAuthenticated,
    )
    return Caller(str(claims["sub"]), scopes_of(claims))


def verified_claims(
    token: str,
    *,
    public_key_pem: str,
    issuer: str,
    audience: str,
    leeway_s: int,
    refused: type[ApplicationError],
) -> Mapping[str, Any]:
    """`decode_claims`, remembered per token and settings until the token expires.

    A signature check costs about a millisecond (RS256) per request; a token is presented many
    times in its lifetime. Only successes are remembered (`lru_cache` keeps no exceptions), so a
    refused token is checked in full each time; expiry is checked on every call.
    """
    try:
        claims, valid_until = _cached_claims(token, public_key_pem, issuer, audience, leeway_s)
    except _Refused as exc:
        raise refused(exc.detail) from None
    if time.time() >= valid_until:
        raise refused("The bearer token has expired")
    return claims


class _Refused(ApplicationError):
    """A refused token inside the cache; re-raised as the caller's own 401 problem."""


@functools.lru_cache(maxsize=1024)
def _cached_claims(
    token: str, public_key_pem: str, issuer: str, audience: str, leeway_s: int
) -> tuple[Mapping[str, Any], float]:
    claims = decode_claims(
        token,
        public_key_pem=public_key_pem,
        issuer=issuer,
        audience=audience,
        leeway_s=leeway_s,
        refused=_Refused,
    )
    return MappingProxyType(claims), float(claims["exp"]) + leeway_s


def decode_claims(
    token: str,
    *,
    public_key_pem: str,
    issuer: str,
    audience: str,
    leeway_s: int,
    refused: type[ApplicationError],
) -> dict[str, Any]:
    """The verified claims of a JWT signed with the one configured key (module docstring rules).

    Raises `refused` (a 401 problem of the caller's realm) for anything wrong with the token,
    `NotConfigured` for a key that is neither RSA nor EC.
    """
    key, algorithm = _public_key(public_key_pem)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise refused("The bearer token is malformed") from exc
    if header.get("alg") != algorithm:  # before any key is used: no `none`, no HMAC confusion
        raise refused(f"Tokens must be signed with {algorithm}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise refused("The bearer token has expired") from exc
    except jwt.PyJWTError as exc:
        raise refused(f"The bearer token was rejected: {type(exc).__name__}") from exc
    return claims


_bearer = HTTPBearer(auto_error=False, scheme_name="ClinicalBearer", description="OAuth2 access token (JWT)")


def _config(request: Request) -> ApiAuthConfig:
    config = getattr(request.app.state, "api_auth", None)
    return config if isinstance(config, ApiAuthConfig) else ApiAuthConfig()


def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: str) -> Caller:
    config = _config(request)
    if not config.enabled:
        return ANONYMOUS
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ClinicalNotAuthenticated("A bearer token is required")
    caller = verify_caller(credentials.credentials, config)
    needed = config.read_scope if scope == "read" else config.write_scope
    if needed not in caller.scopes:
        raise ClinicalInsufficientScope(f"This needs the scope {needed!r}", needed)
    return caller


async def require_read(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    return _caller(request, credentials, "read")


async def require_write(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    return _caller(request, credentials, "write")


ReaderDep = Annotated[Caller, Depends(require_read)]
WriterDep = Annotated[Caller, Depends(require_write)]
