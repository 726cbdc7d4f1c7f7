"""`POST /fhir/subscription-hook`: a FHIR conversation (OperationOutcome answers), bearer-protected."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.bootstrap import Container
from service.config import Settings

HOOK = "/fhir/subscription-hook"
AUTH = {"Authorization": "Bearer s3cret", "Content-Type": "application/fhir+json"}


@pytest.fixture
async def hook(app_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        database_url=app_settings.database_url,
        log_json=False,
        fhir_base_url="http://127.0.0.1:9/fhir",
        subscription_hook_token="s3cret",
        fhir_http_transport="httpx",
        reassess_debounce_s=3600.0,  # nothing runs during the test: we look at the queue
        alerts_enabled=False,
    )
    migrate(settings.database_url)
    async with Container(settings) as box:
        app = create_app(settings, container=box)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, box


def outcome_text(reply: httpx.Response) -> str:
    body: dict[str, Any] = reply.json()
    assert body["resourceType"] == "OperationOutcome"
    assert reply.headers["content-type"].startswith("application/fhir+json")
    return str(body["issue"][0]["details"]["text"])


async def test_notification_schedules_its_patient(hook: tuple[httpx.AsyncClient, Container]) -> None:
    client, box = hook
    body = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}
    reply = await client.post(HOOK, content=orjson.dumps(body), headers=AUTH)
    assert reply.status_code == 200
    assert "1 patient(s) scheduled" in outcome_text(reply)
    assert box.require_reassess().pending == 1
    await client.post(HOOK, content=orjson.dumps(body), headers=AUTH)
    assert box.require_reassess().pending == 1  # debounced: still one pending re-assessment


async def test_empty_ping_requests_a_poll(hook: tuple[httpx.AsyncClient, Container]) -> None:
    client, _ = hook
    reply = await client.post(HOOK, content=b"", headers=AUTH)
    assert reply.status_code == 200
    assert "poll requested" in outcome_text(reply)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic s3cret"])
async def test_hook_needs_the_shared_bearer_token(
    hook: tuple[httpx.AsyncClient, Container], authorization: str | None
) -> None:
    client, box = hook
    headers = {"Content-Type": "application/fhir+json"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"resourceType": "Patient", "id": "p1"}
    reply = await client.post(HOOK, content=orjson.dumps(body), headers=headers)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    outcome_text(reply)
    assert box.require_reassess().pending == 0


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"<xml/>", 400), (b'{"resourceType": "Observation", "id": "x"}', 400), (b"[1]", 400)],
    ids=["not-json", "no-patient", "not-a-resource"],
)
async def test_bad_notifications_get_an_operation_outcome(
    hook: tuple[httpx.AsyncClient, Container], content: bytes, status: int
) -> None:
    client, _ = hook
    reply = await client.post(HOOK, content=content, headers=AUTH)
    assert reply.status_code == status
    assert outcome_text(reply)


async def test_hook_without_a_configured_token_is_unavailable(client: httpx.AsyncClient) -> None:
    reply = await client.post(HOOK, content=b"", headers=AUTH)
    assert reply.status_code == 503
    assert outcome_text(reply) == "The subscription hook is not configured"


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_r4_payload_sent_to_the_resource_path_schedules_its_patient(
    hook: tuple[httpx.AsyncClient, Container], method: str
) -> None:
    """FHIR R4 rest-hook with payload: the server sends the resource to `<endpoint>/<type>/<id>`."""
    client, box = hook
    body = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}
    reply = await client.request(method, f"{HOOK}/Observation/o1", content=orjson.dumps(body), headers=AUTH)
    assert reply.status_code == 200
    assert "1 patient(s) scheduled" in outcome_text(reply)
    assert box.require_reassess().due_at("p1") is not None


async def test_a_signed_report_closes_the_patients_debounce_window(
    hook: tuple[httpx.AsyncClient, Container],
) -> None:
    client, box = hook
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
    }
    await client.put(f"{HOOK}/DiagnosticReport/r1", content=orjson.dumps(report), headers=AUTH)
    due = box.require_reassess().due_at("p1")
    assert due is not None
    assert due <= time.monotonic()  # not the 3600 s debounce of this fixture


@pytest.mark.parametrize("path", ["observation/o1", "Observation/o%201", "Observation/" + "x" * 65])
async def test_a_resource_path_that_is_no_fhir_type_and_id_gets_an_operation_outcome(
    hook: tuple[httpx.AsyncClient, Container], path: str
) -> None:
    client, box = hook
    reply = await client.put(f"{HOOK}/{path}", content=b"", headers=AUTH)
    assert reply.status_code == 400
    assert "does not name a FHIR resource" in outcome_text(reply)
    assert box.require_reassess().pending == 0


async def test_resource_path_needs_the_bearer_token(hook: tuple[httpx.AsyncClient, Container]) -> None:
    client, _ = hook
    reply = await client.put(f"{HOOK}/Observation/o1", content=b"")
    assert reply.status_code == 401
