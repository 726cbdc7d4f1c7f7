"""FhirMeasurementSource and FhirAssessmentWriter against a small in-test FHIR server (pytest-httpx).

The fake server answers like sekmet-fhir: `patient=` searches for the six searched types,
`_id=a,b` searches, reads, paging with `_count`; it cannot search BodyStructure by patient.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient, create_http_client
from service.adapters.fhir.errors import FhirNotFound
from service.adapters.fhir.inbound import patient_of
from service.adapters.fhir.outbound import observation_full_url
from service.adapters.fhir.resources import validate_resource
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.writer import FhirAssessmentWriter, transaction_bundle
from service.application.ports import PatientRef
from tests.unit.fhir.conftest import patient_resources
from tests.unit.fhir.test_outbound import assessment, patient_input

BASE = "http://127.0.0.1:8080/fhir"
RECORDED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeServer:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.searches: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/fhir/").split("/")
        params = dict(request.url.params)
        if len(parts) == 2:
            found = [r for r in self.resources if r["resourceType"] == parts[0] and r["id"] == parts[1]]
            if not found:
                return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
            return httpx.Response(200, json=found[0])
        rtype = parts[0]
        self.searches.append((rtype, params))
        if rtype == "BodyStructure" and "patient" in params:
            return httpx.Response(
                400, json={"resourceType": "OperationOutcome", "issue": [{"code": "not-supported"}]}
            )
        matches = [r for r in self.resources if r["resourceType"] == rtype]
        if "patient" in params:
            matches = [r for r in matches if patient_of(r) == params["patient"]]
        if "_id" in params:
            wanted = params["_id"].split(",")
            matches = [r for r in matches if r["id"] in wanted]
        offset = int(params.get("_offset", "0"))
        count = int(params.get("_count", "1000"))
        page = matches[offset : offset + count]
        body: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
        }
        if offset + count < len(matches):
            nxt = request.url.copy_merge_params({"_offset": str(offset + count)})
            body["link"] = [{"relation": "next", "url": str(nxt)}]
        return httpx.Response(200, json=body)


@pytest.fixture
async def client() -> AsyncIterator[FhirClient]:
    async with create_http_client() as http:
        yield FhirClient(http, BASE)


def server_with(httpx_mock: HTTPXMock, resources: list[dict[str, Any]]) -> FakeServer:
    server = FakeServer(resources)
    httpx_mock.add_callback(server, is_reusable=True)
    return server


# --- source -------------------------------------------------------------------------------------------
async def test_timeline_for_reads_every_contract_resource(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    server = server_with(httpx_mock, patient_resources())
    source = FhirMeasurementSource(client, page_size=3, id_chunk_size=3)
    result = await source.timeline_for(PatientRef("p1"))
    assert result.timeline is not None
    tl = result.timeline
    assert tl.treatment_start == date(2024, 3, 4)
    assert {les.lesion_id for les in tl.lesions} == {"L1", "L2", "L3", "L4"}
    assert len([m for s in tl.scans for m in s.measurements]) == 5
    assert tl.profile.tumour_type is not None
    # BodyStructures come by _id in chunks of 3 (4 ids -> 2 searches), never by patient.
    lesion_searches = [p for t, p in server.searches if t == "BodyStructure"]
    assert [sorted(p["_id"].split(",")) for p in lesion_searches] in (
        [["bs1", "bs2", "bs3"], ["bs4"]],
        [["bs4"], ["bs1", "bs2", "bs3"]],
    )
    searched = {t for t, p in server.searches if p.get("patient") == "p1"}
    assert searched == {
        "Condition",
        "MedicationAdministration",
        "MedicationRequest",
        "ImagingStudy",
        "Observation",
        "Procedure",
    }
    # the Encounter is not searched, so the last contact is the latest searched date
    assert tl.last_contact == date(2024, 4, 29)


async def test_foreign_body_structure_is_dropped(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    resources = patient_resources()
    next(r for r in resources if r["id"] == "bs4")["patient"] = {"reference": "Patient/someone-else"}
    server_with(httpx_mock, resources)
    result = await FhirMeasurementSource(client).timeline_for(PatientRef("p1"))
    assert result.timeline is not None
    assert "L4" not in {les.lesion_id for les in result.timeline.lesions}
    codes_by_ref = {(i.code, i.ref) for i in result.issues}
    assert {("foreign-lesion", "BodyStructure/bs4"), ("lesion-not-found", "Observation/m5")} <= codes_by_ref


async def test_unknown_patient_is_not_found(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    server_with(httpx_mock, patient_resources())
    with pytest.raises(FhirNotFound):
        await FhirMeasurementSource(client).timeline_for(PatientRef("nobody"))


async def test_patients_pages_and_filters_by_last_updated(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    resources = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(5)]
    server = server_with(httpx_mock, resources)
    source = FhirMeasurementSource(client, page_size=2)
    since = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    refs = [ref async for ref in source.patients(since=since)]
    assert refs == [PatientRef(f"p{i}") for i in range(5)]
    assert server.searches[0] == ("Patient", {"_count": "2", "_lastUpdated": "gt2024-05-01T08:00:00+00:00"})
    assert len(server.searches) == 3  # 2 + 2 + 1


async def test_patients_since_must_be_aware(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        [ref async for ref in FhirMeasurementSource(client).patients(since=datetime(2024, 5, 1))]  # noqa: DTZ001


# --- writer -----------------------------------------------------------------------------------------
def test_transaction_bundle_is_conditional_and_valid() -> None:
    bundle = transaction_bundle(assessment(), patient_input(), version="0.1.0", recorded=RECORDED)
    validate_resource(bundle)
    entries = bundle["entry"]
    observations = [e for e in entries if e["resource"]["resourceType"] == "Observation"]
    for entry in observations:
        identifier = entry["resource"]["identifier"][0]
        assert entry["request"] == {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": f"identifier={codes.IDENTIFIER_ASSESSMENT}|{identifier['value']}",
        }
        assert entry["fullUrl"] == observation_full_url(entry["resource"])
    device = entries[0]
    assert device["request"]["ifNoneExist"] == f"identifier={codes.IDENTIFIER_DEVICE}|oncoresponse-0.1.0"
    provenance = entries[-1]
    assert provenance["request"] == {"method": "POST", "url": "Provenance"}
    assert [t["reference"] for t in provenance["resource"]["target"]] == [e["fullUrl"] for e in observations]
    assert provenance["resource"]["agent"][0]["who"]["reference"] == device["fullUrl"]


def test_rerun_sends_the_same_conditional_creates() -> None:
    first = transaction_bundle(assessment(), patient_input(), version="0.1.0", recorded=RECORDED)
    again = transaction_bundle(
        assessment(), patient_input(), version="0.1.0", recorded=datetime(2024, 6, 1, tzinfo=UTC)
    )
    assert [e.get("request") for e in first["entry"][:-1]] == [e.get("request") for e in again["entry"][:-1]]


async def test_write_counts_created_and_unchanged(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        sent.append(body)
        statuses = []
        for position, entry in enumerate(body["entry"]):
            existing = entry["resource"]["resourceType"] == "Observation" and position % 2 == 0
            statuses.append({"response": {"status": "200 OK" if existing else "201 Created"}})
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": statuses}
        )

    httpx_mock.add_callback(answer, method="POST", url=f"{BASE}/")
    writer = FhirAssessmentWriter(client, version="0.1.0", clock=lambda: RECORDED)
    summary = await writer.write(assessment(), patient_input())
    kinds = [e["resource"]["resourceType"] for e in sent[0]["entry"]]
    observation_positions = [i for i, k in enumerate(kinds) if k == "Observation"]
    assert summary.unchanged == len([i for i in observation_positions if i % 2 == 0])
    assert summary.created == len([i for i in observation_positions if i % 2 == 1])
    assert summary.created + summary.unchanged == len(observation_positions) == 9
    assert summary.updated == 0
    assert summary.issues == ()


async def test_write_reports_a_short_transaction_response(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    reply = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201"}}],
    }
    httpx_mock.add_response(method="POST", url=f"{BASE}/", json=reply)
    summary = await FhirAssessmentWriter(client, version="0.1.0", clock=lambda: RECORDED).write(
        assessment(), copy.deepcopy(patient_input())
    )
    assert "transaction-response-mismatch" in {i.code for i in summary.issues}
