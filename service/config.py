"""Settings: the only reader of environment variables (prefix ``ONCORESPONSE_``).

Every variable is documented in `deploy/env.example`. Tests construct `Settings(...)` directly;
the running service uses the cached `get_settings()`.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.domain.dissociated import REGISTRY as DR_DEFINITIONS
from service.domain.parameters import AssessmentParameters

_PLACEHOLDERS = frozenset({"", "change-me", "changeme", "secret", "password", "dev-salt"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ONCORESPONSE_",
        env_nested_delimiter="__",
        extra="forbid",
        secrets_dir=None,
    )

    # A checkout runs as `development` (placeholders allowed, loopback only: `serve` refuses another
    # address); the container image and the Kubernetes ConfigMap set `production` (docs/operations.md).
    environment: Literal["development", "test", "production"] = "development"

    # --- FHIR server ---------------------------------------------------------------------------
    fhir_base_url: AnyHttpUrl | None = None
    fhir_timeout_s: float = Field(default=10.0, gt=0)
    fhir_max_retries: int = Field(default=4, ge=0, le=10)
    fhir_page_size: int = Field(default=200, ge=1, le=1000)
    fhir_bearer_token: SecretStr | None = None
    sync_concurrency: int = Field(default=8, ge=1, le=64)
    # A sync's claim on a patient outlives a process that died for this long (persistence/leases.py)
    sync_lease_s: int = Field(default=900, ge=10, le=86_400)

    # --- persistence and privacy ---------------------------------------------------------------
    database_url: str = "sqlite:///./var/oncoresponse.db"
    patient_key_salt: SecretStr = SecretStr("dev-salt")

    # --- clinical API authentication (service/api/security.py) ---------------------------------
    # `jwt`: /sync, /$assess, /alerts and /patients/* need an OAuth2 bearer JWT of the hospital's
    # authorisation server; `off` (development and tests only, refused in production) opens them.
    api_auth: Literal["jwt", "off"] = "jwt"
    api_jwt_public_key: SecretStr | None = None  # PEM (RSA -> RS256, EC P-256 -> ES256)
    api_jwt_issuer: str | None = None
    api_jwt_audience: str = "oncoresponse"
    api_jwt_leeway_s: int = Field(default=30, ge=0, le=600)
    api_read_scope: str = "oncoresponse.read"  # GET /alerts, /patients/{id}/lesion-table
    api_write_scope: str = "oncoresponse.write"  # POST /sync, /$assess, /alerts/...
    # Largest request body, enforced while it streams in (api/middleware.py: 413 before reading more)
    api_max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024**3)

    # --- HTTP server and logging ---------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: AnyHttpUrl | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # /metrics answers only "Authorization: Bearer <this>" when set (Prometheus: `authorization`
    # with `credentials_file`); unset = open, for a scrape inside the cluster network only.
    metrics_token: SecretStr | None = None
    log_json: bool = True

    # --- response engine -----------------------------------------------------------------------
    timepoint_window_days: int = Field(default=7, ge=0, le=60)
    baseline_window_days: int = Field(default=28, ge=0, le=120)
    confirmation_min_days: int = Field(default=28, ge=1, le=120)
    min_sd_days: int = Field(default=42, ge=0, le=365)
    icpd_min_days: int = Field(default=28, ge=0, le=120)
    icpd_max_days: int | None = Field(default=None, ge=1, le=730)
    dr_definition: str = "bernard-tessier"

    # --- demo / tests: the FHIR server the demo starts (sekmet-fhir, own virtual environment) --
    sekmet_version: str = "0.1.1"

    # --- alerts and CDS Hooks (service/application/alerts.py, adapters/alerts/) -------
    alerts_enabled: bool = True
    alert_worker_interval_s: float = Field(default=30.0, ge=0)  # 0 = no background worker (cron)
    alert_max_attempts: int = Field(default=8, ge=1, le=50)
    alert_retry_base_s: float = Field(default=30.0, gt=0)
    alert_retry_max_s: float = Field(default=3600.0, gt=0)
    alert_held_recheck_s: float = Field(default=3600.0, ge=0)  # 0 = held until POST /alerts/{id}/retry
    alert_oncology_role_codes: list[str] = Field(default_factory=lambda: ["309295000"])
    alert_webhook_urls: list[AnyHttpUrl] = Field(default_factory=list)
    alert_webhook_secret: SecretStr | None = None
    alert_webhook_timeout_s: float = Field(default=10.0, gt=0)
    cds_hooks_trusted_issuers: dict[str, str] = Field(default_factory=dict)
    cds_hooks_jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    cds_hooks_lesion_table_url: str | None = None

    # --- FHIR integration (adapters/fhir/ transport, smart, bulk; subscriptions) ---------
    fhir_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    fhir_smart_client_id: str | None = None
    fhir_smart_private_key: SecretStr | None = None  # PEM; enables SMART Backend Services auth
    fhir_smart_key_id: str | None = None
    fhir_smart_algorithm: Literal["RS384", "ES384"] = "RS384"
    fhir_smart_token_url: AnyHttpUrl | None = None  # default: from .well-known/smart-configuration
    fhir_smart_scopes: str | None = None  # default: adapters/fhir/smart.py DEFAULT_SCOPES
    fhir_bulk_page_lines: int = Field(default=1000, ge=1, le=100_000)
    fhir_bulk_max_wait_s: float = Field(default=3600.0, gt=0)
    subscription_hook_token: SecretStr | None = None  # the hook answers 503 while unset
    reassess_debounce_s: float = Field(default=10.0, ge=0)  # longest debounce window
    reassess_quiet_s: float = Field(default=2.0, ge=0)  # window closes after this long without news
    # `_lastUpdated` polling while no Subscription of ours is active (and Subscription checks)
    fhir_poll_interval_s: float = Field(default=60.0, ge=0)  # 0 = no polling
    subscription_endpoint: AnyHttpUrl | None = None  # our hook as the FHIR server reaches it
    subscription_register: bool = True  # False: only check the Subscriptions found at the endpoint
    subscription_payload: Literal["empty", "full-resource"] = "full-resource"
    subscription_criteria: list[str] = Field(
        default_factory=lambda: ["Observation?", "DiagnosticReport?", "ImagingStudy?"]
    )

    # --- FHIR write-back (adapters/fhir/writer.py, pacing.py; docs/fhir/write-back.md) ---------
    fhir_write_timeout_s: float = Field(default=60.0, gt=0)  # writes; fhir_timeout_s is for reads
    fhir_max_wait_s: float = Field(default=120.0, ge=0)  # total retry/throttling wait of one request
    fhir_write_strategy: Literal["auto", "transaction", "chunked", "batch", "single"] = "auto"
    fhir_write_max_entries: int | None = Field(default=None, ge=1, le=10_000)  # per Bundle
    fhir_write_max_attempts: int = Field(default=5, ge=1, le=50)  # per patient
    sync_stale_run_s: float = Field(default=86_400.0, ge=0)  # a run `running` longer ended uncleanly

    # --- research portal statistics: OAuth2 bearer JWTs, small-cell suppression ----
    stats_jwt_public_key: SecretStr | None = None  # PEM; without it /stats answers 503
    stats_jwt_issuer: str | None = None
    stats_jwt_audience: str = "oncoresponse-stats"
    stats_jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    stats_read_scope: str = "stats.read"
    stats_approved_scope: str = "stats.approved-study"
    stats_trusted_scope: str = "stats.trusted-analyst"  # exact counts (docs/privacy/disclosure-control.md)
    stats_min_cell_count: int = Field(default=11, ge=1, le=1000)  # counts 1..n-1 are suppressed
    stats_min_cell_count_approved: int = Field(default=1, ge=1, le=1000)
    stats_cache_entries: int = Field(default=256, ge=0, le=100_000)
    stats_data_version_ttl_s: float = Field(default=2.0, ge=0)

    # --- patient view (SMART on FHIR app): a local EHR-launch simulator for the demo and tests --
    smart_demo_launch: bool = False  # serves /smart/* (authorize, token); refused in production

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        secret = self.alert_webhook_secret.get_secret_value() if self.alert_webhook_secret else ""
        if self.alert_webhook_urls and not secret:
            raise ValueError("ONCORESPONSE_ALERT_WEBHOOK_SECRET is required when webhook URLs are set")
        if self.environment == "production" and self.alert_webhook_urls and secret in _PLACEHOLDERS:
            raise ValueError("ONCORESPONSE_ALERT_WEBHOOK_SECRET must be a real secret in production")
        return self

    @field_validator("dr_definition")
    @classmethod
    def _known_dr_definition(cls, value: str) -> str:
        if value not in DR_DEFINITIONS:
            known = ", ".join(sorted(DR_DEFINITIONS))
            raise ValueError(f"unknown dissociated-response definition {value!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> Settings:
        if self.environment == "production" and self.patient_key_salt.get_secret_value() in _PLACEHOLDERS:
            raise ValueError(
                "ONCORESPONSE_PATIENT_KEY_SALT must be set to a real secret in production "
                "(set ONCORESPONSE_ENVIRONMENT=development for local use)"
            )
        return self

    @model_validator(mode="after")
    def _clinical_api_is_protected_in_production(self) -> Settings:
        if self.environment == "production" and self.api_auth == "off":
            raise ValueError("ONCORESPONSE_API_AUTH=off is for development and tests; production needs jwt")
        if self.api_jwt_public_key is not None and not self.api_jwt_issuer:
            raise ValueError("ONCORESPONSE_API_JWT_ISSUER is required with ONCORESPONSE_API_JWT_PUBLIC_KEY")
        return self

    @model_validator(mode="after")
    def _no_demo_launch_in_production(self) -> Settings:
        if self.environment == "production" and self.smart_demo_launch:
            raise ValueError(
                "ONCORESPONSE_SMART_DEMO_LAUNCH is a demo EHR simulator; production uses the EHR's"
            )
        return self

    @model_validator(mode="after")
    def _stats_key_needs_issuer(self) -> Settings:
        if self.stats_jwt_public_key is not None and not self.stats_jwt_issuer:
            raise ValueError(
                "ONCORESPONSE_STATS_JWT_ISSUER is required with ONCORESPONSE_STATS_JWT_PUBLIC_KEY"
            )
        return self

    @model_validator(mode="after")
    def _subscription_needs_hook_token(self) -> Settings:
        if self.subscription_endpoint is not None and self.subscription_hook_token is None:
            raise ValueError(
                "ONCORESPONSE_SUBSCRIPTION_HOOK_TOKEN is required with ONCORESPONSE_SUBSCRIPTION_ENDPOINT"
            )
        return self

    def assessment_parameters(self) -> AssessmentParameters:
        return AssessmentParameters(
            timepoint_window_days=self.timepoint_window_days,
            baseline_window_days=self.baseline_window_days,
            confirmation_min_days=self.confirmation_min_days,
            min_sd_days=self.min_sd_days,
            icpd_min_days=self.icpd_min_days,
            icpd_max_days=self.icpd_max_days,
            dr_definition=self.dr_definition,
        )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
