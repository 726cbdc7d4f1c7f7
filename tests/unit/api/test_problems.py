"""Bad input gets a clear RFC 9457 problem (STYLE.md section 6), never a 500."""

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


async def test_body_that_is_not_json_is_a_400_naming_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", content=b"{not json", headers=FHIR)
    body = assert_problem(r, 400, "/problems/invalid-input")
    assert "not valid JSON" in str(body["detail"])


async def test_a_resource_that_is_not_a_bundle_is_named(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", json={"resourceType": "Patient", "id": "x"}, headers=FHIR)
    body = assert_problem(r, 400, "/problems/invalid-input")
    assert "Expected a FHIR Bundle, got 'Patient'" in str(body["detail"])


async def test_bundle_entry_must_be_an_array(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", json={"resourceType": "Bundle", "entry": {"a": 1}}, headers=FHIR)
    body = assert_problem(r, 400, "/problems/invalid-input")
    assert "Bundle.entry" in str(body["detail"])


async def test_bundle_without_patients_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/$assess", json={"resourceType": "Bundle", "type": "collection", "entry": []}, headers=FHIR
    )
    body = assert_problem(r, 400, "/problems/invalid-input")
    assert "no Patient" in str(body["detail"])


async def test_wrong_media_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, "/problems/unsupported-media-type")


async def test_invalid_query_parameter_is_422_with_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/$assess?as_of=yesterday", json={"resourceType": "Bundle"}, headers=FHIR)
    body = assert_problem(r, 422, "/problems/request-validation")
    assert isinstance(body["errors"], list)
    assert body["errors"][0]["loc"] == ["query", "as_of"]


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
