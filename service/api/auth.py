"""OAuth2 bearer JWTs for the research portal (`/stats/*`), and the portal's settings.

- The token is verified against ONE configured public key (PEM) with an asymmetric algorithm
  only: RS256 for an RSA key, ES256 for an EC P-256 key. `none` and HMAC (HS*) tokens are refused
  before any key is used (the classic "public key as HMAC secret" confusion), as is any other
  algorithm. `exp`, `iss`, `aud` and `sub` are required; `iss` and `aud` must match the settings;
  a small leeway absorbs clock skew.
- Scopes come from `scope` (space-separated, RFC 8693 / RFC 9068) or `scp` (list or string).
  Statistics need `read_scope`; `approved_scope` (a study with ethics approval and a data-use
  agreement) lowers the minimum cell size to `min_cell_count_approved`. `trusted_scope` (an
  audited trusted analyst, docs/privacy/disclosure-control.md) sees exact, unsuppressed counts;
  every other caller sees counts perturbed by the cell-key method.
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.analytics.privacy import DEFAULT_THRESHOLD, Thresholds
from service.api.security import ClinicalInsufficientScope as InsufficientScope
from service.api.security import ClinicalNotAuthenticated, scopes_of, verified_claims
from service.application.errors import NotConfigured
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
    # ONCORESPONSE_STATS_TRUSTED_SCOPE: exact counts, no suppression (audited trusted analysts)
    trusted_scope: str = "stats.trusted-analyst"
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
        trusted_scope=settings.stats_trusted_scope,
        min_cell_count=settings.stats_min_cell_count,
        min_cell_count_approved=settings.stats_min_cell_count_approved,
        cache_entries=settings.stats_cache_entries,
        data_version_ttl_s=settings.stats_data_version_ttl_s,
    )


class NotAuthenticated(ClinicalNotAuthenticated):
    headers: Mapping[str, str] = {"WWW-Authenticate": 'Bearer realm="oncoresponse-stats"'}


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    threshold: int
    exact: bool = False  # a trusted analyst: exact counts (threshold 1), else cell-key perturbation


def verify_token(token: str, config: StatsConfig) -> Principal:
    """Verify a bearer token and return the caller (module docstring); raises problem errors.

    The signature check is remembered per token until it expires (`security.verified_claims`).
    """
    if not config.jwt_public_key_pem or not config.jwt_issuer:
        raise NotConfigured("The statistics portal has no token issuer configured")
    claims = verified_claims(
        token,
        public_key_pem=config.jwt_public_key_pem,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        leeway_s=config.jwt_leeway_s,
        refused=NotAuthenticated,
    )
    scopes = scopes_of(claims)
    if config.read_scope not in scopes:
        raise InsufficientScope(f"Statistics need the scope {config.read_scope!r}", config.read_scope)
    if config.trusted_scope in scopes:
        return Principal(str(claims["sub"]), scopes, 1, exact=True)
    return Principal(str(claims["sub"]), scopes, config.thresholds().for_roles(sorted(scopes)))


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
