"""Parts of the FHIR adapter: capabilities, SMART Backend Services, aiohttp transport,
Bulk Data export and spool, subscription notifications (pytest-httpx drives the HTTP faults)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pytest_httpx import HTTPXMock

from service.adapters.fhir.bulk import EXPORT_TYPES, BulkMeasurementSource, FhirBulkExport, NdjsonSpool
from service.adapters.fhir.capabilities import parse_capabilities
from service.adapters.fhir.client import FhirClient, RetryPolicy, create_http_client
from service.adapters.fhir.errors import FhirRejected, FhirUnavailable
from service.adapters.fhir.notifications import BadNotification, read_notification
from service.adapters.fhir.smart import ASSERTION_TYPE, SmartBackendAuth, SmartCredentials
from service.adapters.fhir.transport import AiohttpTransport
from service.application.ports import PatientRef
from tests.unit.fhir.conftest import patient_resources, serving

BASE = "https://fhir.example.org/r4"
TOKEN_URL = "https://auth.example.org/token"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(timeout_s=2.0) as client:
        yield client


# --- capabilities -----------------------------------------------------------------------------------
def test_capabilities_name_includes_and_export_operations() -> None:
    caps = parse_capabilities(
        {
            "resourceType": "CapabilityStatement",
            "rest": [
                {
                    "mode": "server",
                    "operation": [{"name": "export"}],
                    "resource": [
                        {
                            "type": "Observation",
                            "searchParam": [{"name": "patient"}, {"name": "focus"}],
                            "searchInclude": ["*", "Observation:focus"],
                        },
                        {"type": "Patient", "operation": [{"name": "export"}]},
                        {"type": "BodyStructure", "searchInclude": ["*"]},
                    ],
                }
            ],
        }
    )
    assert caps.offers_include("Observation:focus")
    assert caps.offers_include("Observation:focus:BodyStructure")
    assert not caps.offers_include("BodyStructure:patient")  # "*" is no offer of a particular include
    assert caps.searchable("Observation", "focus")
    assert caps.searchable("BodyStructure", "_lastUpdated")  # common parameter, assumed
    assert not caps.searchable("BodyStructure", "patient")
    assert caps.offers_operation("export", "Patient")
    assert caps.offers_operation("export")
    assert not caps.offers_operation("export", "Group")


def test_unusable_capability_statement_offers_nothing() -> None:
    caps = parse_capabilities({"resourceType": "OperationOutcome"})
    assert not caps.known
    assert not caps.offers_include("Observation:focus")


async def test_capabilities_are_read_once(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}
    )
    client = FhirClient(http, BASE)
    first = await client.server_capabilities()
    assert await client.server_capabilities() is first
    assert len(httpx_mock.get_requests()) == 1


# --- SMART Backend Services -------------------------------------------------------------------------
def _pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token_reply(token: str, expires_in: int = 300) -> dict[str, Any]:
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": "system/*.rs"}


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
async def test_smart_token_request_carries_a_signed_assertion(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey, algorithm: str
) -> None:
    # SMART App Launch 2.x Backend Services: client_credentials + private_key_jwt (RS384/ES384).
    key: Any = rsa_key if algorithm == "RS384" else ec.generate_private_key(ec.SECP384R1())
    httpx_mock.add_response(url=f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": TOKEN_URL})
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_reply("t1"))
    credentials = SmartCredentials("svc", _pem(key), algorithm=algorithm, key_id="k1")  # type: ignore[arg-type]
    auth = SmartBackendAuth(http, BASE, credentials, clock=lambda: 1_000_000.0)
    assert await auth(False) == "t1"
    sent = httpx_mock.get_requests()[-1]
    form = dict(httpx.QueryParams(sent.content.decode()))
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert "system/Observation.cu" in form["scope"].split()
    header = jwt.get_unverified_header(form["client_assertion"])
    assert (header["alg"], header["kid"], header["typ"]) == (algorithm, "k1", "JWT")
    claims = jwt.decode(
        form["client_assertion"],
        key.public_key(),
        algorithms=[algorithm],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "svc"
    assert claims["exp"] - 1_000_000 <= 300  # SMART: at most five minutes
    assert claims["jti"]


async def test_smart_token_is_reused_until_expiry_then_renewed(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = [1_000_000.0]
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_reply("t1", 300))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_reply("t2", 300))
    credentials = SmartCredentials("svc", _pem(rsa_key), token_url=TOKEN_URL)
    auth = SmartBackendAuth(http, BASE, credentials, clock=lambda: now[0], expiry_margin_s=60)
    assert [await auth(False) for _ in range(3)] == ["t1"] * 3
    now[0] += 239
    assert await auth(False) == "t1"
    now[0] += 2  # within the 60 s margin of expiry
    assert await auth(False) == "t2"
    assert auth.fetches == 2


async def test_401_makes_the_client_fetch_a_new_smart_token(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_reply("old"))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_reply("new"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=401)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    auth = SmartBackendAuth(http, BASE, SmartCredentials("svc", _pem(rsa_key), token_url=TOKEN_URL))
    client = FhirClient(http, BASE, token_provider=auth, sleep=Sleeps())
    await client.read("Patient", "p1")
    reads = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/Patient/p1")]
    assert [r.headers["Authorization"] for r in reads] == ["Bearer old", "Bearer new"]


async def test_refused_token_request_is_rejected_with_the_oauth_error(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=400,
        json={"error": "invalid_client", "error_description": "unknown key"},
    )
    auth = SmartBackendAuth(http, BASE, SmartCredentials("svc", _pem(rsa_key), token_url=TOKEN_URL))
    with pytest.raises(FhirRejected) as caught:
        await auth(False)
    assert caught.value.issue_codes == ("invalid_client",)
    assert caught.value.text == "unknown key"


async def test_token_is_never_sent_to_another_origin(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    async def tokens(refresh: bool) -> str:
        return "secret-token"

    httpx_mock.add_response(url="https://files.example.net/Observation.ndjson", content=b'{"a":1}\n')
    client = FhirClient(http, BASE, token_provider=tokens)
    pages = [
        p async for p in client.stream_pages("https://files.example.net/Observation.ndjson", page_lines=10)
    ]
    assert pages == [[b'{"a":1}']]
    assert "Authorization" not in httpx_mock.get_requests()[0].headers


# --- aiohttp transport ------------------------------------------------------------------------------
@pytest.fixture
async def loopback() -> AsyncIterator[str]:
    """A real aiohttp server on 127.0.0.1 (pytest-httpx does not see the aiohttp transport)."""
    hits = {"flaky": 0}

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"resourceType": "Bundle", "entry": []}), content_type="application/fhir+json"
        )

    async def flaky(request: web.Request) -> web.Response:
        hits["flaky"] += 1
        if hits["flaky"] == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(
            body=b'{"resourceType":"Patient","id":"p1"}', content_type="application/fhir+json"
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=b"{}")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {"method": request.method, "len": len(body), "ct": request.headers.get("Content-Type")}
        )

    app = web.Application()
    app.router.add_get("/fhir/Observation", page)
    app.router.add_get("/fhir/Patient/p1", flaky)
    app.router.add_get("/fhir/slow", slow)
    app.router.add_post("/fhir/", echo)
    async with serving(app, "/fhir") as base:
        yield base


async def test_aiohttp_transport_serves_the_fhir_client(loopback: str) -> None:
    sleeps = Sleeps()
    async with create_http_client(transport="aiohttp", timeout_s=0.5) as http:
        client = FhirClient(http, loopback, sleep=sleeps, retry=RetryPolicy(max_attempts=2))
        assert [r async for r in client.search("Observation", {"patient": "p1"})] == []
        assert (await client.read("Patient", "p1"))["id"] == "p1"  # 503 then success, over aiohttp
        assert sleeps.calls == [0.0]
        reply = await client.send(
            "POST", "", resource_type="Bundle", content=b'{"x":1}', content_type="application/fhir+json"
        )
        assert orjson.loads(reply.content) == {"method": "POST", "len": 7, "ct": "application/fhir+json"}
        with pytest.raises(FhirUnavailable, match="ReadTimeout"):
            await client.send("GET", "slow", resource_type="Binary")


async def test_aiohttp_transport_maps_a_refused_connection_to_connect_error() -> None:
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/unreachable")


# --- Bulk Data --------------------------------------------------------------------------------------
STATUS = f"{BASE}/bulk-status/job1"


def ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in resources) + b"\n"


def manifest(files: dict[str, str], errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "transactionTime": "2024-05-01T00:00:00Z",
        "request": f"{BASE}/Patient/$export",
        "requiresAccessToken": True,
        "output": [{"type": t, "url": u} for t, u in files.items()],
        "error": [{"type": "OperationOutcome", "url": u} for u in (errors or {}).values()],
    }


async def test_patient_export_kicks_off_polls_downloads_and_reports_errors(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    # Bulk Data Access 2.0: 202 + Content-Location, 202 + Retry-After while running, 200 manifest.
    resources = patient_resources()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    files = {t: f"{BASE}/bulk-files/job1/{t}.ndjson" for t in by_type}
    httpx_mock.add_response(
        url=httpx.URL(
            f"{BASE}/Patient/$export",
            params={"_type": ",".join(EXPORT_TYPES), "_outputFormat": "application/fhir+ndjson"},
        ),
        status_code=202,
        headers={"Content-Location": STATUS},
    )
    httpx_mock.add_response(url=STATUS, status_code=202, headers={"Retry-After": "3", "X-Progress": "50%"})
    httpx_mock.add_response(url=STATUS, status_code=202, headers={"X-Progress": "90%"})
    httpx_mock.add_response(url=STATUS, json=manifest(files, {"e": f"{BASE}/bulk-files/job1/errors.ndjson"}))
    for t, url in files.items():
        body = ndjson(by_type[t])
        if t == "Observation":
            body += b"not json at all\n"
        httpx_mock.add_response(url=url, content=body)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Procedure export failed for 1 resource",
            }
        ],
    }
    httpx_mock.add_response(url=f"{BASE}/bulk-files/job1/errors.ndjson", content=ndjson([outcome]))

    sleeps = Sleeps()
    client = FhirClient(http, BASE, sleep=sleeps)
    with NdjsonSpool() as spool:
        exported = await FhirBulkExport(client, sleep=sleeps, page_lines=2).run(spool, "patient")
        assert len(exported.output) == len(files)
        assert sleeps.calls == [3.0, 2.0]  # Retry-After, then our default
        assert spool.stats.max_page <= 2  # never more than one page of lines at once
        assert {i.code for i in spool.stats.issues} == {"malformed-resource", "export-error"}
        assert any("Procedure export failed" in i.message for i in spool.stats.issues)
        kickoff = httpx_mock.get_requests()[0]
        assert kickoff.headers["Prefer"] == "respond-async"
        source = BulkMeasurementSource(spool)
        assert [r async for r in source.patients()] == [PatientRef("p1")]
        result = await source.timeline_for(PatientRef("p1"))
    assert result.timeline is not None
    assert {les.lesion_id for les in result.timeline.lesions} == {"L1", "L2", "L3", "L4"}
    assert all(r.headers.get("Authorization") is None for r in httpx_mock.get_requests())  # no token provider


async def test_export_that_never_finishes_gives_up(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(url=STATUS, status_code=202, headers={"Retry-After": "30"}, is_reusable=True)
    client = FhirClient(http, BASE, sleep=Sleeps())
    with pytest.raises(FhirUnavailable, match="not finished"):
        await FhirBulkExport(client, sleep=Sleeps(), max_wait_s=100).wait(STATUS)


async def test_server_without_async_export_is_rejected(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    httpx_mock.add_response(status_code=200, json={"resourceType": "Bundle"})
    with pytest.raises(FhirRejected, match="without a status location"):
        await FhirBulkExport(FhirClient(http, BASE)).kickoff("group", group_id="g1")


def test_local_folder_is_read_in_pages_with_bad_lines_reported(tmp_path: Path) -> None:
    resources = patient_resources()
    (tmp_path / "Patient.ndjson").write_bytes(
        ndjson([r for r in resources if r["resourceType"] == "Patient"])
    )
    (tmp_path / "Rest.ndjson").write_bytes(
        ndjson([r for r in resources if r["resourceType"] != "Patient"]) + b"\n{broken\n"
    )
    with NdjsonSpool() as spool:
        spool.load_folder(tmp_path, page_lines=5)
        assert spool.stats.max_page == 5
        assert [(i.code, i.ref) for i in spool.stats.issues] == [
            ("malformed-resource", f"Rest.ndjson line {len(resources)}")
        ]
        assert list(spool.patient_ids()) == ["p1"]
        assert len(spool.resources_of("p1")) == len(resources) - sum(
            1 for r in resources if r["resourceType"] == "Medication"
        )


# --- notifications ----------------------------------------------------------------------------------
def backport(
    kind: str, events: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    parameters = [
        {"name": "type", "valueCode": kind},
        *({"name": "notification-event", "part": e["part"]} for e in events),
    ]
    entries = [{"resource": {"resourceType": "Parameters", "parameter": parameters}}, *(extra or [])]
    return {"resourceType": "Bundle", "type": "history", "entry": entries}


def focus(reference: str) -> dict[str, Any]:
    return {"part": [{"name": "focus", "valueReference": {"reference": reference}}]}


def test_empty_r4_ping_asks_for_a_poll() -> None:
    note = read_notification(None)
    assert note.poll
    assert note.patient_ids == []


def test_r4_resource_payload_names_its_patient() -> None:
    note = read_notification(
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p7"}}
    )
    assert note.patient_ids == ["p7"]


def test_r4_bundle_payload_names_every_patient_once() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "ImagingStudy", "id": "s", "subject": {"reference": "Patient/a"}}},
            {"resource": {"resourceType": "BodyStructure", "id": "b", "patient": {"reference": "Patient/a"}}},
            {"resource": {"resourceType": "Patient", "id": "b"}},
        ],
    }
    assert read_notification(bundle).patient_ids == ["a", "b"]


def test_backport_full_resource_event_uses_the_carried_resource() -> None:
    carried = {
        "fullUrl": f"{BASE}/Observation/o9",
        "resource": {"resourceType": "Observation", "id": "o9", "subject": {"reference": "Patient/p9"}},
    }
    note = read_notification(backport("event-notification", [focus(f"{BASE}/Observation/o9")], [carried]))
    assert (note.kind, note.patient_ids, note.to_resolve) == ("backport-event-notification", ["p9"], [])


def test_backport_id_only_event_is_resolved_later_unless_it_is_a_patient() -> None:
    note = read_notification(
        backport(
            "event-notification", [focus("Observation/o1"), focus("Patient/p2"), focus("Observation/o1")]
        )
    )
    assert note.patient_ids == ["p2"]
    assert note.to_resolve == ["Observation/o1"]


def test_backport_handshake_and_heartbeat_schedule_nothing() -> None:
    for kind in ("handshake", "heartbeat"):
        note = read_notification(backport(kind, []))
        assert (note.patient_ids, note.to_resolve, note.poll) == ([], [], False)


def test_backport_empty_payload_asks_for_a_poll() -> None:
    assert read_notification(backport("event-notification", [])).poll


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"no": "resourceType"},
        {"resourceType": "Observation", "id": "o1"},
        {
            "resourceType": "Bundle",
            "type": "history",
            "entry": [{"resource": {"resourceType": "Parameters", "parameter": []}}],
        },
    ],
    ids=["not-a-resource", "no-type", "no-patient", "no-notification-type"],
)
def test_bad_notifications_are_refused(body: Any) -> None:
    with pytest.raises(BadNotification):
        read_notification(body)
