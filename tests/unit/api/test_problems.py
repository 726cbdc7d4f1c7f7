"""Bad input gets a clear RFC 9457 problem (docs/architecture.md), never a 500; on the FHIR
operation `$assess` the same failures are a FHIR OperationOutcome (R4 IssueType codes)."""

from __future__ import annotations

import httpx
import pytest

FHIR = {"Content-Type": "application/fhir+json"}


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["type"] == type_
    assert body["status"] == status
    assert body["instance"] == response.headers["x-request-id"]
    return body


def assert_outcome(response: httpx.Response, status: int, code: str) -> str:
    """An OperationOutcome with an error issue of type `code`; returns its diagnostics."""
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", code)
    return str(issue["diagnostics"])


async def test_body_that_is_not_json_is_a_400_naming_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", content=b"{not json", headers=FHIR)
    assert "not valid JSON" in assert_outcome(r, 400, "invalid")


async def test_a_resource_that_is_not_a_bundle_is_named(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", json={"resourceType": "Patient", "id": "x"}, headers=FHIR)
    assert "Expected a FHIR Bundle, got 'Patient'" in assert_outcome(r, 400, "invalid")


async def test_bundle_entry_must_be_an_array(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", json={"resourceType": "Bundle", "entry": {"a": 1}}, headers=FHIR)
    assert "Bundle.entry" in assert_outcome(r, 400, "invalid")


async def test_bundle_without_patients_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/$assess", json={"resourceType": "Bundle", "type": "collection", "entry": []}, headers=FHIR
    )
    assert "no Patient" in assert_outcome(r, 400, "invalid")


async def test_wrong_media_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_outcome(r, 415, "not-supported")


async def test_invalid_query_parameter_is_422_with_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess?as_of=yesterday", json={"resourceType": "Bundle"}, headers=FHIR)
    assert_outcome(r, 422, "invalid")
    issues = r.json()["issue"]
    assert issues[1]["expression"] == ["query.as_of"]


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/no-such-thing")
    assert_problem(r, 404, "/problems/not-found")


async def test_sync_without_a_fhir_server_is_503_not_configured(client: httpx.AsyncClient) -> None:
    r = await client.post("/sync", json={})
    body = assert_problem(r, 503, "/problems/not-configured")
    assert "ONCORESPONSE_FHIR_BASE_URL" in str(body["detail"])


@pytest.mark.parametrize("request_id", ["abc-123", "x" * 65, "bad id!"])
async def test_request_id_is_echoed_only_when_plain(client: httpx.AsyncClient, request_id: str) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": request_id})
    echoed = r.headers["x-request-id"]
    if request_id == "abc-123":
        assert echoed == request_id
    else:
        assert echoed.startswith("req-")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("offset=2147483647", 200),  # the largest offset accepted
        ("offset=2147483648", 422),  # just above it
        ("offset=9223372036854775808", 422),  # 2^63: was a 500 from the database driver
        ("offset=-1", 422),
    ],
)
async def test_alert_paging_bounds_are_422_not_500(
    client: httpx.AsyncClient, query: str, status: int
) -> None:
    r = await client.get(f"/alerts?{query}")
    assert r.status_code == status, r.text


@pytest.mark.parametrize(
    ("alert_id", "status"),
    [("9223372036854775807", 404), ("9223372036854775808", 422), ("0", 422)],  # BIGINT max, max + 1
)
async def test_alert_id_bounds(client: httpx.AsyncClient, alert_id: str, status: int) -> None:
    r = await client.get(f"/alerts/{alert_id}")
    assert r.status_code == status, r.text
