"""The clinical API takes OAuth2 bearer JWTs (service/api/security.py).

/sync, /$assess, /alerts* and /patients/* read or change patient data: without a valid token of
the configured issuer they answer 401 problem+json (RFC 6750 `WWW-Authenticate: Bearer`), with a
token lacking the scope 403 (RFC 6750 section 3.1 `insufficient_scope`), and with no key configured
503 (closed, never open by accident). `ONCORESPONSE_API_AUTH=off` is refused in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.bootstrap import Container
from service.config import Settings
from tests.unit.alerts.test_api import record_dr_alert
from tests.unit.api.jwts import public_pem, signed_jwt

ISSUER = "https://auth.hospital.example"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
READ, WRITE = "oncoresponse.read", "oncoresponse.write"


def token(
    scope: str,
    *,
    key: Any = KEY,
    algorithm: str = "ES256",
    audience: str = "oncoresponse",
    issuer: str = ISSUER,
    expires_in: timedelta = timedelta(minutes=5),
    subject: str = "dr-meyer",
) -> dict[str, str]:
    signed = signed_jwt(
        key, algorithm, subject=subject, issuer=issuer, audience=audience, scope=scope, expires_in=expires_in
    )
    return {"Authorization": f"Bearer {signed}"}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": f"sqlite:///{tmp_path / 'auth.db'}",
        "log_json": False,
        "api_jwt_public_key": SecretStr(public_pem(KEY)),
        "api_jwt_issuer": ISSUER,
    }
    values.update(overrides)
    return Settings(**values)


async def _client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    migrate(settings.database_url)
    async with Container(settings) as box:
        await record_dr_alert(box)
        assert box.outbox is not None
        (alert,), _ = await box.outbox.list_alerts()
        transport = httpx.ASGITransport(app=create_app(settings, container=box), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, alert.id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    async for pair in _client(settings_for(tmp_path)):
        yield pair


def _is_problem(response: httpx.Response, status: int, problem_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(problem_type)


ENDPOINTS = [
    ("GET", "/alerts", READ),
    ("GET", "/alerts/{id}", READ),
    ("GET", "/patients/p-dr/lesion-table", READ),
    ("POST", "/alerts/{id}/acknowledge", WRITE),
    ("POST", "/alerts/{id}/retry", WRITE),
    ("POST", "/alerts/deliver", WRITE),
    ("POST", "/sync", WRITE),
    ("POST", "/$assess", WRITE),
]


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
async def test_no_token_is_401_with_a_bearer_challenge(
    api: tuple[httpx.AsyncClient, int], method: str, path: str, scope: str
) -> None:
    http, alert_id = api
    response = await http.request(method, path.format(id=alert_id), json={})
    _is_problem(response, 401, "/problems/not-authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
async def test_a_token_without_the_scope_is_403_naming_it(
    api: tuple[httpx.AsyncClient, int], method: str, path: str, scope: str
) -> None:
    # RFC 6750 section 3.1: insufficient_scope, with the scope needed. Write does not imply read.
    http, alert_id = api
    other = READ if scope == WRITE else WRITE
    response = await http.request(method, path.format(id=alert_id), json={}, headers=token(other))
    _is_problem(response, 403, "/problems/insufficient-scope")
    assert f'scope="{scope}"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "bad",
    [
        {"key": OTHER_KEY},  # signed by someone else
        {"audience": "oncoresponse-stats"},  # a portal token is not a clinical token
        {"issuer": "https://evil.example"},
        {"expires_in": timedelta(minutes=-5)},
        {"key": "a-guessed-shared-secret-32-bytes-long", "algorithm": "HS256"},  # HMAC with a guessed secret
    ],
)
async def test_forged_foreign_or_expired_tokens_are_401(api: tuple[httpx.AsyncClient, int], bad: Any) -> None:
    http, _ = api
    response = await http.get("/alerts", headers=token(READ, **bad))
    _is_problem(response, 401, "/problems/not-authenticated")


async def test_unsigned_token_is_401(api: tuple[httpx.AsyncClient, int]) -> None:
    http, _ = api
    unsigned = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": "oncoresponse", "scope": READ}, "", algorithm="none"
    )
    response = await http.get("/alerts", headers={"Authorization": f"Bearer {unsigned}"})
    _is_problem(response, 401, "/problems/not-authenticated")


async def test_valid_tokens_read_and_the_acknowledgement_records_the_token_subject(
    api: tuple[httpx.AsyncClient, int],
) -> None:
    http, alert_id = api
    listed = await http.get("/alerts", headers=token(READ))
    assert listed.status_code == 200
    assert listed.json()["total"] == 1
    table = await http.get("/patients/p-dr/lesion-table", headers=token(READ))
    assert table.status_code == 200
    # The body cannot claim somebody else: the authenticated subject is recorded.
    acknowledged = await http.post(
        f"/alerts/{alert_id}/acknowledge",
        json={"by": "someone-else"},
        headers=token(WRITE, subject="dr-meyer"),
    )
    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"] == "dr-meyer"


async def test_without_a_configured_key_the_api_is_closed_not_open(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, api_jwt_public_key=None, api_jwt_issuer=None)
    async for http, _ in _client(settings):
        response = await http.get("/alerts", headers=token(READ))
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_auth_off_opens_the_api_for_development(tmp_path: Path) -> None:
    async for http, alert_id in _client(settings_for(tmp_path, api_auth="off")):
        assert (await http.get("/alerts")).status_code == 200
        acknowledged = await http.post(f"/alerts/{alert_id}/acknowledge", json={"by": "dev"})
        assert acknowledged.json()["acknowledged_by"] == "dev"


def test_auth_off_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="API_AUTH=off"):
        Settings(environment="production", api_auth="off", patient_key_salt=SecretStr("a-real-salt-123"))
