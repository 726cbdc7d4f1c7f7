"""OAuth2 bearer JWTs for the research portal (`/stats/*`), and the portal's settings.

- The token is verified against ONE configured public key (PEM) with an asymmetric algorithm
  only: RS256 for an RSA key, ES256 for an EC P-256 key. `none` and HMAC (HS*) tokens are refused
  before any key is used (the classic "public key as HMAC secret" confusion), as is any other
  algorithm. `exp`, `iss`, `aud` and `sub` are required; `iss` and `aud` must match the settings;
  a small leeway absorbs clock skew.
- Scopes come from `scope` (space-separated, RFC 8693 / RFC 9068) or `scp` (list or string).
  Statistics need `read_scope`; `approved_scope` (a study with ethics approval and a data-use
  agreement) lowers the minimum cell size to `min_cell_count_approved`.
- Failures are problem+json: 401 `/problems/not-authenticated` (with a `WWW-Authenticate:
  Bearer` challenge in `headers`), 403 `/problems/insufficient-scope`, 503 when no key is set.
  The principal recorded in the audit log is the token's `sub` (a researcher, never a patient).
- A verified token is remembered (bounded LRU keyed by the token text and the configuration)
  until its `exp` plus the leeway: neither its signature nor its claims can change, so the portal's
  every query re-checking the RSA/EC signature was waste. Only `exp` is checked again; failures
  are never remembered.

`StatsConfig` holds the portal's settings until `service.config.Settings` carries them (the lead
wires them; see the field comments for the environment variable names and defaults). The app
reads it from `app.state.stats_config`, else uses the defaults (no key: the portal is closed).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.analytics.privacy import DEFAULT_THRESHOLD, Thresholds
from service.application.errors import ApplicationError, NotConfigured
from service.config import Settings


@dataclass(frozen=True, slots=True)
class StatsConfig:
    # ONCORESPONSE_STATS_JWT_PUBLIC_KEY (PEM; secret-like, no default: without it /stats answers 503)
    jwt_public_key_pem: str | None = None
    # ONCORESPONSE_STATS_JWT_ISSUER (required together with the key)
    jwt_issuer: str | None = None
    # ONCORESPONSE_STATS_JWT_AUDIENCE
    jwt_audience: str = "oncoresponse-stats"
    # ONCORESPONSE_STATS_JWT_LEEWAY_S
    jwt_leeway_s: int = 30
    # ONCORESPONSE_STATS_READ_SCOPE
    read_scope: str = "stats.read"
    # ONCORESPONSE_STATS_APPROVED_SCOPE
    approved_scope: str = "stats.approved-study"
    # ONCORESPONSE_STATS_MIN_CELL_COUNT: counts 1 to this - 1 are suppressed (11: counts 1-10)
    min_cell_count: int = DEFAULT_THRESHOLD
    # ONCORESPONSE_STATS_MIN_CELL_COUNT_APPROVED: for `approved_scope` (1 = no suppression)
    min_cell_count_approved: int = 1
    # ONCORESPONSE_STATS_CACHE_ENTRIES: results kept per cohort filter + data version
    cache_entries: int = 256
    # ONCORESPONSE_STATS_DATA_VERSION_TTL_S: how long a data-version lookup is trusted (new
    # assessments reach the portal within this delay)
    data_version_ttl_s: float = 2.0

    def thresholds(self) -> Thresholds:
        return Thresholds({self.approved_scope: self.min_cell_count_approved}, default=self.min_cell_count)


def stats_config_from(settings: Settings) -> StatsConfig:
    """The portal's configuration from the service settings (`ONCORESPONSE_STATS_*`)."""
    key = settings.stats_jwt_public_key
    return StatsConfig(
        jwt_public_key_pem=key.get_secret_value() if key is not None else None,
        jwt_issuer=settings.stats_jwt_issuer,
        jwt_audience=settings.stats_jwt_audience,
        jwt_leeway_s=settings.stats_jwt_leeway_s,
        read_scope=settings.stats_read_scope,
        approved_scope=settings.stats_approved_scope,
        min_cell_count=settings.stats_min_cell_count,
        min_cell_count_approved=settings.stats_min_cell_count_approved,
        cache_entries=settings.stats_cache_entries,
        data_version_ttl_s=settings.stats_data_version_ttl_s,
    )


class NotAuthenticated(ApplicationError):
    problem_type = "/problems/not-authenticated"
    title = "Not authenticated"
    status = 401
    headers: Mapping[str, str] = {"WWW-Authenticate": 'Bearer realm="oncoresponse-stats"'}


class InsufficientScope(ApplicationError):
    problem_type = "/problems/insufficient-scope"
    title = "Insufficient scope"
    status = 403

    def __init__(self, detail: str, scope: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    threshold: int


_ALGORITHM_OF_KEY = {rsa.RSAPublicKey: "RS256", ec.EllipticCurvePublicKey: "ES256"}


@functools.lru_cache(maxsize=8)
def _public_key(pem: str) -> tuple[Any, str]:
    key = load_pem_public_key(pem.encode())
    for kind, algorithm in _ALGORITHM_OF_KEY.items():
        if isinstance(key, kind):
            return key, algorithm
    raise NotConfigured("the portal's JWT public key is neither RSA nor EC")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found)


def verify_token(token: str, config: StatsConfig) -> Principal:
    """Verify a bearer token and return the caller (module docstring); raises problem errors."""
    principal, valid_until = _verified(token, config)
    if time.time() >= valid_until:
        raise NotAuthenticated("The bearer token has expired")
    return principal


@functools.lru_cache(maxsize=1024)
def _verified(token: str, config: StatsConfig) -> tuple[Principal, float]:
    """The caller and the time (epoch seconds) from which the token is expired; cached (module
    docstring): `lru_cache` keeps only results, so a refused token is checked in full every time."""
    if not config.jwt_public_key_pem or not config.jwt_issuer:
        raise NotConfigured("The statistics portal has no token issuer configured")
    key, algorithm = _public_key(config.jwt_public_key_pem)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("The bearer token is malformed") from exc
    if header.get("alg") != algorithm:
        raise NotAuthenticated(f"Tokens must be signed with {algorithm}")
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            leeway=config.jwt_leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("The bearer token has expired") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthenticated(f"The bearer token was rejected: {type(exc).__name__}") from exc
    scopes = scopes_of(claims)
    if config.read_scope not in scopes:
        raise InsufficientScope(f"Statistics need the scope {config.read_scope!r}", config.read_scope)
    principal = Principal(str(claims["sub"]), scopes, config.thresholds().for_roles(sorted(scopes)))
    return principal, float(claims["exp"]) + config.jwt_leeway_s


_bearer = HTTPBearer(auto_error=False, scheme_name="PortalBearer", description="OAuth2 access token (JWT)")


def stats_config(request: Request) -> StatsConfig:
    config = getattr(request.app.state, "stats_config", None)
    return config if isinstance(config, StatsConfig) else StatsConfig()


async def require_researcher(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("A bearer token is required")
    return verify_token(credentials.credentials, stats_config(request))


ResearcherDep = Annotated[Principal, Depends(require_researcher)]
