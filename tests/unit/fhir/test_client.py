"""FhirClient against pytest-httpx (docs/architecture.md sections 4 and 10): paging, retries, errors, re-auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from service.adapters.fhir.client import FhirClient, RetryPolicy, create_http_client, server_wait_s
from service.adapters.fhir.errors import (
    FhirNotFound,
    FhirOutcomeUnknown,
    FhirRejected,
    FhirUnavailable,
    MalformedResource,
)
from service.application.errors import UpstreamRejected
from service.domain.results import DataIssue

BASE = "https://fhir.example.org/r4"


class Sleeps:
    """Instant, recorded sleeps (docs/architecture.md: retry sleeps are instant)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(timeout_s=2.0) as client:
        yield client


@pytest.fixture
def fhir_client(http: httpx.AsyncClient, sleeps: Sleeps) -> FhirClient:
    return FhirClient(
        http, BASE, retry=RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=8.0), sleep=sleeps
    )


def bundle(ids: list[str], next_url: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Observation", "id": i}, "search": {"mode": "match"}} for i in ids
        ],
    }
    if next_url:
        result["link"] = [
            {"relation": "self", "url": f"{BASE}/Observation"},
            {"relation": "next", "url": next_url},
        ]
    return result


def outcome(code: str, *, text: str | None = None, diagnostics: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code}
    if text:
        issue["details"] = {"text": text}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


PAGE1 = f"{BASE}/Observation?patient=p1"
PAGE2 = f"{BASE}/?_getpages=abc&_getpagesoffset=2"
PAGE3 = f"{BASE}/?_getpages=abc&_getpagesoffset=3"


async def ids_of(client: FhirClient, issues: list[DataIssue] | None = None) -> list[str]:
    return [r["id"] async for r in client.search("Observation", {"patient": "p1"}, issues=issues)]


# --- paging ---------------------------------------------------------------------------------------
async def test_search_follows_next_links(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(url=PAGE1, json=bundle(["a", "b"], next_url=PAGE2))
    httpx_mock.add_response(url=PAGE2, json=bundle(["c"], next_url=PAGE3))
    httpx_mock.add_response(url=PAGE3, json=bundle(["d"]))
    assert await ids_of(fhir_client) == ["a", "b", "c", "d"]
    assert fhir_client.issues == []


async def test_search_sends_fhir_json_accept(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(url=PAGE1, json=bundle([]))
    await ids_of(fhir_client)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Accept"] == "application/fhir+json"


async def test_next_link_to_another_server_is_not_followed(
    httpx_mock: HTTPXMock, fhir_client: FhirClient
) -> None:
    httpx_mock.add_response(url=PAGE1, json=bundle(["a"], next_url="https://evil.example.com/steal?page=2"))
    issues: list[DataIssue] = []
    assert await ids_of(fhir_client, issues) == ["a"]
    assert [i.code for i in issues] == ["foreign-next-link"]


async def test_repeating_next_link_ends_the_search(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(url=PAGE1, json=bundle(["a"], next_url=PAGE2))
    httpx_mock.add_response(url=PAGE2, json=bundle(["b"], next_url=PAGE2))
    issues: list[DataIssue] = []
    assert await ids_of(fhir_client, issues) == ["a", "b"]
    assert [i.code for i in issues] == ["malformed-page"]


# --- malformed pages and entries ------------------------------------------------------------------
async def test_malformed_entries_are_skipped_and_reported(
    httpx_mock: HTTPXMock, fhir_client: FhirClient
) -> None:
    page = bundle(["a", "b"])
    page["entry"].insert(1, {"fullUrl": f"{BASE}/Observation/x", "search": {"mode": "match"}})  # no resource
    page["entry"].append("garbage")
    page["entry"].append(
        {"resource": outcome("informational", text="results truncated"), "search": {"mode": "outcome"}}
    )
    httpx_mock.add_response(url=PAGE1, json=page)
    issues: list[DataIssue] = []
    assert await ids_of(fhir_client, issues) == ["a", "b"]
    assert [(i.code, i.ref) for i in issues] == [
        ("malformed-entry", "Observation search page 1 entry 1"),
        ("malformed-entry", "Observation search page 1 entry 3"),
        ("server-outcome", "Observation search page 1 entry 4"),
    ]
    assert issues[2].message == "results truncated"
    assert fhir_client.skipped == 2


@pytest.mark.parametrize(
    "second_page",
    [b"<html>proxy error</html>", orjson.dumps({"resourceType": "OperationOutcome", "issue": []})],
    ids=["not-json", "not-a-bundle"],
)
async def test_malformed_page_ends_the_search_without_raising(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, second_page: bytes
) -> None:
    httpx_mock.add_response(url=PAGE1, json=bundle(["a"], next_url=PAGE2))
    httpx_mock.add_response(url=PAGE2, content=second_page)
    assert await ids_of(fhir_client) == ["a"]
    assert [(i.code, i.ref) for i in fhir_client.take_issues()] == [
        ("malformed-page", "Observation search page 2")
    ]
    assert fhir_client.issues == []


async def test_read_of_a_non_json_body_is_malformed(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", content=b"not json")
    with pytest.raises(MalformedResource) as caught:
        await fhir_client.read("Patient", "p1")
    assert caught.value.ref == "Patient/p1"


# --- retries --------------------------------------------------------------------------------------
async def test_429_waits_for_retry_after(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=429, headers={"Retry-After": "3"})
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert (await fhir_client.read("Patient", "p1"))["id"] == "p1"
    assert sleeps.calls == [3.0]  # the server's delay, not our 0.5 s backoff


async def test_retry_after_longer_than_the_wait_budget_gives_up_at_once(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    # RetryPolicy.max_wait_s (120 s here) bounds the total wait of one request.
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=429, headers={"Retry-After": "121"})
    with pytest.raises(FhirUnavailable) as caught:
        await fhir_client.read("Patient", "p1")
    assert (caught.value.upstream_status, caught.value.retry_after_s) == (429, 121.0)
    assert sleeps.calls == []
    assert len(httpx_mock.get_requests()) == 1


async def test_503_then_success(httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps) -> None:
    httpx_mock.add_response(url=PAGE1, status_code=503)
    httpx_mock.add_response(url=PAGE1, json=bundle(["a"]))
    assert await ids_of(fhir_client) == ["a"]
    assert sleeps.calls == [0.5]


async def test_timeout_then_success(httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=PAGE1)
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=PAGE1)
    httpx_mock.add_response(url=PAGE1, json=bundle(["a"]))
    assert await ids_of(fhir_client) == ["a"]
    assert sleeps.calls == [0.5, 1.0]  # exponential backoff


async def test_retries_are_bounded_then_unavailable(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    for _ in range(4):
        httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=502)
    with pytest.raises(FhirUnavailable) as caught:
        await fhir_client.read("Patient", "p1")
    assert caught.value.upstream_status == 502
    assert len(httpx_mock.get_requests()) == 4
    assert sleeps.calls == [0.5, 1.0, 2.0]


async def test_backoff_is_capped(httpx_mock: HTTPXMock, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    client = FhirClient(
        http, BASE, retry=RetryPolicy(max_attempts=6, base_delay_s=1.0, max_delay_s=4.0), sleep=sleeps
    )
    for _ in range(5):
        httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=504)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    await client.read("Patient", "p1")
    assert sleeps.calls == [1.0, 2.0, 4.0, 4.0, 4.0]


async def test_transport_errors_exhausted_are_unavailable(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    for _ in range(4):
        httpx_mock.add_exception(httpx.ConnectTimeout("no route"), url=f"{BASE}/metadata")
    with pytest.raises(FhirUnavailable, match="ConnectTimeout"):
        await fhir_client.capabilities()
    assert len(sleeps.calls) == 3


# --- errors ---------------------------------------------------------------------------------------
async def test_422_with_operation_outcome_is_rejected_with_its_text(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    body = outcome("processing", text="Observation.code: required binding not met")
    body["issue"][0]["expression"] = ["SECRET-RAW-BODY-MARKER"]
    httpx_mock.add_response(method="POST", url=f"{BASE}/", status_code=422, json=body)
    with pytest.raises(FhirRejected) as caught:
        await fhir_client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert caught.value.issue_codes == ("processing",)
    assert caught.value.text == "Observation.code: required binding not met"
    assert caught.value.upstream_status == 422
    # docs/architecture.md: FhirRejected is rendered as a 502 problem with the upstream issue codes.
    assert isinstance(caught.value, UpstreamRejected)
    assert caught.value.status == 502
    assert "SECRET-RAW-BODY-MARKER" not in str(caught.value)  # never the raw body
    assert sleeps.calls == []  # a 4xx is not retried


async def test_rejection_text_falls_back_to_diagnostics(
    httpx_mock: HTTPXMock, fhir_client: FhirClient
) -> None:
    httpx_mock.add_response(
        url=PAGE1, status_code=400, json=outcome("invalid", diagnostics="Unknown search parameter")
    )
    with pytest.raises(FhirRejected, match="Unknown search parameter"):
        await ids_of(fhir_client)


async def test_404_is_not_found(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/gone", status_code=404, json=outcome("not-found"))
    with pytest.raises(FhirNotFound) as caught:
        await fhir_client.read("Patient", "gone")
    assert caught.value.ref == "Patient/gone"


# --- authorisation --------------------------------------------------------------------------------
async def test_401_reauthorises_once(httpx_mock: HTTPXMock, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    calls: list[bool] = []

    async def tokens(refresh: bool) -> str:
        calls.append(refresh)
        return "fresh" if refresh else "stale"

    client = FhirClient(http, BASE, sleep=sleeps, token_provider=tokens)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=401)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    await client.read("Patient", "p1")
    assert calls == [False, True]
    sent = [r.headers["Authorization"] for r in httpx_mock.get_requests()]
    assert sent == ["Bearer stale", "Bearer fresh"]
    assert sleeps.calls == []


async def test_second_401_is_rejected(httpx_mock: HTTPXMock, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    async def tokens(refresh: bool) -> str:
        return "token"

    client = FhirClient(http, BASE, sleep=sleeps, token_provider=tokens)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=401)
    httpx_mock.add_response(
        url=f"{BASE}/Patient/p1", status_code=401, json=outcome("login", text="token expired")
    )
    with pytest.raises(FhirRejected) as caught:
        await client.read("Patient", "p1")
    assert (caught.value.upstream_status, caught.value.issue_codes, caught.value.text) == (
        401,
        ("login",),
        "token expired",
    )


# --- other operations -----------------------------------------------------------------------------
async def test_transaction_posts_fhir_json_to_the_base(
    httpx_mock: HTTPXMock, fhir_client: FhirClient
) -> None:
    reply = {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    httpx_mock.add_response(method="POST", url=f"{BASE}/", json=reply)
    sent = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    assert await fhir_client.transaction(sent) == reply
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert orjson.loads(request.content) == sent


async def test_capabilities(httpx_mock: HTTPXMock, fhir_client: FhirClient) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
    )
    assert (await fhir_client.capabilities())["fhirVersion"] == "4.0.1"


# --- throttling fields and write timeouts (docs/fhir/write-back.md) -------------------------------
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        # draft-ietf-httpapi-ratelimit-headers, structured fields: quota exhausted (r=0), resets in t
        ({"RateLimit": '"fhirInteractions";r=0;t=52'}, 52.0),
        ({"RateLimit": '"burst";r=5;t=1, "daily";r=0;t=3600'}, 3600.0),  # the exhausted quota
        ({"RateLimit": '"fhirInteractions";r=3;t=52'}, None),  # quota left: no wait asked
        ({"RateLimit": '"q";r=0', "RateLimit-Policy": '"q";q=100;w=60'}, 60.0),  # no t: the window
        # the earlier draft's dictionary form
        ({"RateLimit": "limit=100, remaining=0, reset=30"}, 30.0),
        ({"RateLimit-Reset": "12"}, 12.0),
        ({"X-RateLimit-Reset": "20"}, 20.0),
        ({"X-RateLimit-Reset": "1700000090"}, 90.0),  # a Unix time, 90 s from "now" below
        ({"Retry-After": "5", "RateLimit": '"q";r=0;t=52'}, 5.0),  # Retry-After first
        ({}, None),
    ],
)
def test_server_wait_is_read_from_every_throttling_field(
    headers: dict[str, str], expected: float | None
) -> None:
    assert server_wait_s(headers, now=1_700_000_000.0) == expected


async def test_429_with_only_ratelimit_waits_beyond_the_retry_count(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    # Throttling is bounded by the total wait (120 s here), not by max_attempts (4).
    for _ in range(5):
        httpx_mock.add_response(
            url=f"{BASE}/Patient/p1", status_code=429, headers={"RateLimit": '"fhirInteractions";r=0;t=20'}
        )
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert (await fhir_client.read("Patient", "p1"))["id"] == "p1"
    assert sleeps.calls == [20.0] * 5


async def test_throttling_stops_when_the_next_wait_passes_the_budget(
    httpx_mock: HTTPXMock, fhir_client: FhirClient, sleeps: Sleeps
) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=f"{BASE}/Patient/p1", status_code=429, headers={"RateLimit-Reset": "50"})
    with pytest.raises(FhirUnavailable) as caught:
        await fhir_client.read("Patient", "p1")
    assert sleeps.calls == [50.0, 50.0]  # a third 50 s would make 150 s > 120 s
    assert caught.value.retry_after_s == 50.0


async def test_a_write_whose_answer_times_out_is_not_repeated(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    # The server may have committed it: the writer reads the state again instead (writer.py).
    client = FhirClient(http, BASE, sleep=sleeps, write_timeout_s=60.0)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/")
    with pytest.raises(FhirOutcomeUnknown):
        await client.write_bundle({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert len(httpx_mock.get_requests()) == 1
    assert sleeps.calls == []
    request = httpx_mock.get_requests()[0]
    assert request.extensions["timeout"]["read"] == 60.0  # the write timeout, not the read one (2 s)


async def test_a_write_that_could_not_connect_is_retried(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    client = FhirClient(http, BASE, sleep=sleeps)
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE}/")
    httpx_mock.add_response(url=f"{BASE}/", json={"resourceType": "Bundle", "type": "transaction-response"})
    answer = await client.write_bundle({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert answer["type"] == "transaction-response"
    assert sleeps.calls == [0.5]
