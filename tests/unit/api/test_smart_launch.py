"""The demo EHR-launch simulator follows SMART App Launch 2.x, OAuth 2.0 (RFC 6749) and PKCE (RFC 7636).

Each test states one rule of those specifications and would fail if the simulator broke it:
an unverified redirect URI is never redirected to, PKCE S256 is required, the verifier must hash
to the challenge, a code is single use, and the access token is bound to the launch's patient.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.api.routers.smart_launch import CLIENT_ID, pkce_challenge
from service.bootstrap import Container
from service.config import Settings

ORIGIN = "http://testserver"
REDIRECT = f"{ORIGIN}/app/patient/"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
SCOPE = "launch patient/Observation.rs patient/Patient.rs"


@pytest.fixture
async def smart(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        environment="development",
        api_auth="off",
        smart_demo_launch=True,
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        log_json=False,
    )
    migrate(settings.database_url)
    async with Container(settings) as box:
        transport = httpx.ASGITransport(app=create_app(settings, container=box), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
            yield http


def test_s256_challenge_matches_rfc7636_appendix_b() -> None:
    # RFC 7636 appendix B: this verifier hashes to this challenge.
    assert pkce_challenge(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_is_unpadded_base64url_sha256() -> None:
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"x" * 43).digest()).rstrip(b"=").decode()
    assert pkce_challenge("x" * 43) == expected


async def launch_code(http: httpx.AsyncClient, patient: str, **overrides: str) -> httpx.Response:
    ehr = await http.get("/smart/ehr", params={"patient": patient})
    assert ehr.status_code == 302
    launch_query = parse_qs(urlsplit(ehr.headers["location"]).query)
    assert launch_query["iss"] == [f"{ORIGIN}/smart"]
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "s1",
        "aud": f"{ORIGIN}/smart",
        "code_challenge": pkce_challenge(VERIFIER),
        "code_challenge_method": "S256",
        "launch": launch_query["launch"][0],
    }
    params.update(overrides)
    return await http.get("/smart/authorize", params=params)


def query_of(answer: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


async def exchange(http: httpx.AsyncClient, code: str, verifier: str = VERIFIER) -> httpx.Response:
    return await http.post(
        "/smart/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        },
    )


async def test_discovery_announces_ehr_and_standalone_launch_with_s256_only(smart: httpx.AsyncClient) -> None:
    config = (await smart.get("/smart/.well-known/smart-configuration")).json()
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"launch-ehr", "launch-standalone", "context-ehr-patient", "permission-v2"} <= set(
        config["capabilities"]
    )


async def test_ehr_launch_gives_a_token_for_the_launch_patient(smart: httpx.AsyncClient) -> None:
    answer = await launch_code(smart, "pat-1")
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(REDIRECT)
    query = query_of(answer)
    assert query["state"] == "s1"
    token = await exchange(smart, query["code"])
    assert token.status_code == 200
    assert token.json()["patient"] == "pat-1"
    assert token.json()["token_type"] == "Bearer"
    assert token.headers["cache-control"] == "no-store"
    assert "patient/Observation.rs" in token.json()["scope"].split()


async def test_unknown_redirect_uri_is_refused_without_redirecting(smart: httpx.AsyncClient) -> None:
    answer = await launch_code(smart, "pat-1", redirect_uri="https://attacker.example/app/patient/")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "location" not in answer.headers


@pytest.mark.parametrize("method", ["plain", ""])
async def test_pkce_s256_is_required(smart: httpx.AsyncClient, method: str) -> None:
    answer = await launch_code(smart, "pat-1", code_challenge_method=method)
    assert answer.status_code == 302
    assert query_of(answer)["error"] == "invalid_request"


async def test_wrong_verifier_gets_invalid_grant(smart: httpx.AsyncClient) -> None:
    code = query_of(await launch_code(smart, "pat-1"))["code"]
    token = await exchange(smart, code, verifier=VERIFIER[:-1] + "A")
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_grant"


async def test_a_code_is_single_use(smart: httpx.AsyncClient) -> None:
    code = query_of(await launch_code(smart, "pat-1"))["code"]
    assert (await exchange(smart, code)).status_code == 200
    again = await exchange(smart, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_aud_must_be_the_launch_iss(smart: httpx.AsyncClient) -> None:
    answer = await launch_code(smart, "pat-1", aud="https://other-ehr.example/fhir")
    assert query_of(answer)["error"] == "invalid_request"


async def test_token_of_one_patient_cannot_read_another_patients_worksheet(smart: httpx.AsyncClient) -> None:
    code = query_of(await launch_code(smart, "pat-1"))["code"]
    access = (await exchange(smart, code)).json()["access_token"]
    other = await smart.get("/patients/pat-2/worksheet", headers={"Authorization": f"Bearer {access}"})
    assert other.status_code == 403
    assert other.headers["content-type"].startswith("application/problem+json")
    missing = await smart.get("/patients/pat-1/worksheet")
    assert missing.status_code == 401


async def test_standalone_launch_asks_for_the_patient(smart: httpx.AsyncClient) -> None:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "launch/patient patient/Observation.rs",
        "state": "s2",
        "aud": f"{ORIGIN}/smart",
        "code_challenge": pkce_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    form = await smart.get("/smart/authorize", params=params)
    assert form.status_code == 200
    assert '<label for="patient">' in form.text
    chosen = await smart.get("/smart/authorize", params={**params, "patient": "pat-9"})
    token = await exchange(smart, query_of(chosen)["code"])
    assert token.json()["patient"] == "pat-9"


def test_demo_launch_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="SMART_DEMO_LAUNCH"):
        Settings(environment="production", smart_demo_launch=True, patient_key_salt="a-real-secret-value")
