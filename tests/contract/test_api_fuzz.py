"""Schemathesis against the whole HTTP API, with the clinical API's tokens off and on.

Every operation of the app's own OpenAPI document gets generated requests (valid and invalid
values, the bounds of every integer and string parameter; at most `EXAMPLES` per operation so the
run stays short enough for CI). Checks: no server error (5xx), and every answer conforms to the
documented response schema. The store holds the stats cohort of the API tests and one DR alert,
so the endpoints do real work; the research portal is configured with its token key.

Where an operation documents a 503 (no FHIR server configured for `/sync`, `/readyz` when a
dependency is down), that answer is the documented one and allowed; any other 5xx fails.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.api.auth import StatsConfig
from service.bootstrap import Container
from service.config import Settings
from tests.unit.alerts.test_api import record_dr_alert
from tests.unit.api.jwts import public_pem
from tests.unit.api.test_clinical_auth import ISSUER as CLINICAL_ISSUER
from tests.unit.api.test_clinical_auth import KEY as CLINICAL_KEY
from tests.unit.api.test_clinical_auth import READ, WRITE
from tests.unit.api.test_clinical_auth import token as clinical_token
from tests.unit.api.test_stats_api import ISSUER as STATS_ISSUER
from tests.unit.api.test_stats_api import RSA_KEY, cohort
from tests.unit.api.test_stats_api import token as stats_token

EXAMPLES = 30


def _settings(tmp: Path, auth: str) -> Settings:
    return Settings(
        environment="test",
        api_auth=auth,  # type: ignore[arg-type]
        api_jwt_public_key=SecretStr(public_pem(CLINICAL_KEY)),
        api_jwt_issuer=CLINICAL_ISSUER,
        database_url=f"sqlite:///{tmp / 'fuzz.db'}",
        log_json=False,
    )


def _seed(settings: Settings) -> None:
    async def seed() -> None:
        async with Container(settings) as box:
            assert box.store is not None
            await box.store.record(cohort(), run_id="fuzz")
            await record_dr_alert(box)

    migrate(settings.database_url)
    anyio.run(seed)


def _app(auth: str) -> tuple[Settings, Any, Any]:
    """The app of one auth mode and its schemathesis schema, built at import (parametrize needs
    the schema then); the database is created and seeded by `seeded` before the first request."""
    settings = _settings(Path(tempfile.mkdtemp(prefix=f"oncoresponse-fuzz-{auth}-")), auth)
    app = create_app(settings)
    app.state.stats_config = StatsConfig(jwt_public_key_pem=public_pem(RSA_KEY), jwt_issuer=STATS_ISSUER)
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    return settings, app, schema


SETTINGS_OFF, APP_OFF, SCHEMA_OFF = _app("off")
SETTINGS_JWT, APP_JWT, SCHEMA_JWT = _app("jwt")


@pytest.fixture(scope="module", autouse=True)
def seeded() -> Iterator[None]:
    for config in (SETTINGS_OFF, SETTINGS_JWT):
        _seed(config)
    yield
    for config in (SETTINGS_OFF, SETTINGS_JWT):
        shutil.rmtree(Path(config.database_url.removeprefix("sqlite:///")).parent, ignore_errors=True)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


def _check(case: Any, clinical: dict[str, str]) -> None:
    sent = {"Authorization": f"Bearer {stats_token()}"} if case.path.startswith("/stats/") else clinical
    response = case.call(headers={**(case.headers or {}), **sent})
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code == 503 and "503" in documented:
        return  # the documented "not configured / unavailable" answer (module docstring)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


@SCHEMA_OFF.parametrize()
@FUZZ
def test_tokens_off_no_server_error_and_every_answer_as_documented(case: Any) -> None:
    _check(case, {})


@SCHEMA_JWT.parametrize()
@FUZZ
def test_tokens_on_no_server_error_and_every_answer_as_documented(case: Any) -> None:
    _check(case, clinical_token(f"{READ} {WRITE}"))
