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
from service.adapters.fhir.writer import (
    FhirAssessmentWriter,
    WriteOptions,
    WriteStrategy,
    permission_hint,
    provenance_tag,
    transaction_bundle,
)
from service.application.ports import PatientRef
from service.domain.results import Response
from tests.unit.fhir.conftest import patient_resources
from tests.unit.fhir.test_outbound import assessment, patient_input

BASE = "http://127.0.0.1:8080/fhir"
RECORDED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


SEKMET_LIKE: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {"type": t, "searchParam": [{"name": "patient"}], "searchInclude": ["*"]}
                for t in (
                    "Patient",
                    "Condition",
                    "MedicationAdministration",
                    "MedicationRequest",
                    "ImagingStudy",
                    "Observation",
                    "Procedure",
                    "BodyStructure",
                    "Medication",
                )
            ],
        }
    ],
}
HAPI_LIKE = copy.deepcopy(SEKMET_LIKE)
for _res in HAPI_LIKE["rest"][0]["resource"]:
    if _res["type"] == "Observation":
        _res["searchInclude"] = ["Observation:focus", "Observation:subject"]


def _matches(resource: dict[str, Any], name: str, system: str, value: str) -> bool:
    """A conditional create's `identifier=` or `_tag=` criterion."""
    if name == "identifier":
        found = resource.get("identifier", [])
        return any(i.get("system") == system and i.get("value") == value for i in found)
    if name == "_tag":
        found = resource.get("meta", {}).get("tag", [])
        return any(t.get("system") == system and t.get("code") == value for t in found)
    return False


class FakeServer:
    """A small FHIR server: reads, searches, paging, `_lastUpdated`, identifier, `_include`, transactions.

    Transactions are atomic: conditional creates on `ifNoneExist=identifier=...`, `PUT` with
    `ifMatch` (412 for the whole Bundle on a version mismatch), version ids and lastUpdated.
    """

    def __init__(self, resources: list[dict[str, Any]], capability: dict[str, Any] | None = None) -> None:
        self.resources = resources
        self.capability = capability or SEKMET_LIKE
        self.searches: list[tuple[str, dict[str, str]]] = []
        self.transactions: list[dict[str, Any]] = []
        self.conflicts_left = 0  # answer this many transactions with 412 first
        self.clock = 0

    def tick(self) -> str:
        self.clock += 1
        return f"2024-05-01T10:00:{self.clock:02d}+00:00"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return self.transaction(orjson.loads(request.content))
        parts = request.url.path.removeprefix("/fhir/").split("/")
        params = dict(request.url.params)
        if parts == ["metadata"]:
            return httpx.Response(200, json=self.capability)
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
        if "_lastUpdated" in params:
            after = params["_lastUpdated"].removeprefix("gt")
            matches = [r for r in matches if r.get("meta", {}).get("lastUpdated", "") > after]
        if "identifier" in params:
            system, _, value = params["identifier"].partition("|")
            matches = [
                r
                for r in matches
                if any(i["system"] == system and value in ("", i["value"]) for i in r.get("identifier", []))
            ]
        offset = int(params.get("_offset", "0"))
        count = int(params.get("_count", "1000"))
        page = matches[offset : offset + count]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in page]
        if params.get("_include") == "Observation:focus":
            focus = {f["reference"] for r in page for f in r.get("focus", [])}
            entries += [
                {"resource": r, "search": {"mode": "include"}}
                for r in self.resources
                if f"{r['resourceType']}/{r['id']}" in focus
            ]
        body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        if offset + count < len(matches):
            nxt = request.url.copy_merge_params({"_offset": str(offset + count)})
            body["link"] = [{"relation": "next", "url": str(nxt)}]
        return httpx.Response(200, json=body)

    def transaction(self, bundle: dict[str, Any]) -> httpx.Response:
        self.transactions.append(bundle)
        if self.conflicts_left:
            self.conflicts_left -= 1
            return httpx.Response(
                412, json={"resourceType": "OperationOutcome", "issue": [{"code": "conflict"}]}
            )
        staged = copy.deepcopy(self.resources)
        mapping: dict[str, str] = {}
        answers: list[dict[str, Any]] = []
        for entry in bundle["entry"]:
            resource, request = copy.deepcopy(entry["resource"]), entry["request"]
            rtype = resource["resourceType"]
            if request["method"] == "PUT":
                rid = request["url"].split("/")[1]
                current = next(r for r in staged if r["resourceType"] == rtype and r["id"] == rid)
                if request.get("ifMatch") != f'W/"{current["meta"]["versionId"]}"':
                    return httpx.Response(
                        412, json={"resourceType": "OperationOutcome", "issue": [{"code": "conflict"}]}
                    )
                version = str(int(current["meta"]["versionId"]) + 1)
                resource["meta"] = {
                    **resource.get("meta", {}),
                    "versionId": version,
                    "lastUpdated": self.tick(),
                }
                staged[staged.index(current)] = resource
                answers.append(
                    {"response": {"status": "200 OK", "location": f"{rtype}/{rid}/_history/{version}"}}
                )
                continue
            condition = request.get("ifNoneExist", "")
            name, _, token = condition.partition("=")
            system, _, value = token.partition("|")
            existing = [r for r in staged if r["resourceType"] == rtype and _matches(r, name, system, value)]
            if condition and existing:
                mapping[entry.get("fullUrl", "")] = f"{rtype}/{existing[0]['id']}"
                answers.append({"response": {"status": "200 OK", "location": f"{rtype}/{existing[0]['id']}"}})
                continue
            resource["id"] = f"{rtype.lower()}-{len(staged)}"
            resource["meta"] = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": self.tick()}
            if "fullUrl" in entry:
                mapping[entry["fullUrl"]] = f"{rtype}/{resource['id']}"
            staged.append(resource)
            answers.append({"response": {"status": "201 Created", "location": f"{rtype}/{resource['id']}"}})
        for resource in staged:  # resolve urn:uuid references like a server does
            for key in ("derivedFrom", "hasMember", "target"):
                for ref in resource.get(key, []):
                    ref["reference"] = mapping.get(ref["reference"], ref["reference"])
            for agent in resource.get("agent", []):
                agent["who"]["reference"] = mapping.get(agent["who"]["reference"], agent["who"]["reference"])
        self.resources[:] = staged
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        )

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["resourceType"] == resource_type]


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


async def test_patients_pages_through_every_patient(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    server = server_with(httpx_mock, [{"resourceType": "Patient", "id": f"p{i}"} for i in range(5)])
    refs = [ref async for ref in FhirMeasurementSource(client, page_size=2).patients()]
    assert refs == [PatientRef(f"p{i}") for i in range(5)]
    assert [t for t, _ in server.searches] == ["Patient"] * 3  # 2 + 2 + 1


def _changed(resource: dict[str, Any], when: str) -> dict[str, Any]:
    return {**resource, "meta": {"versionId": "2", "lastUpdated": when}}


async def test_incremental_sync_lists_patients_whose_clinical_resources_changed(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    # `_lastUpdated` on the clinical types, not only on Patient; our own results are no change.
    old, new = "2024-04-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00"
    resources = [
        {"resourceType": "Patient", "id": "untouched", "meta": {"lastUpdated": old}},
        {"resourceType": "Patient", "id": "renamed", "meta": {"lastUpdated": new}},
        {"resourceType": "Patient", "id": "rescanned", "meta": {"lastUpdated": old}},
        {"resourceType": "Patient", "id": "remeasured", "meta": {"lastUpdated": old}},
        {"resourceType": "Patient", "id": "written-back", "meta": {"lastUpdated": old}},
        _changed(
            {"resourceType": "ImagingStudy", "id": "s1", "subject": {"reference": "Patient/rescanned"}}, new
        ),
        _changed(
            {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/remeasured"}}, new
        ),
        _changed(
            {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/remeasured"}}, new
        ),
        _changed(
            {
                "resourceType": "Observation",
                "id": "ours",
                "subject": {"reference": "Patient/written-back"},
                "identifier": [{"system": codes.IDENTIFIER_ASSESSMENT, "value": "x"}],
            },
            new,
        ),
        _changed(
            {"resourceType": "Observation", "id": "o3", "subject": {"reference": "Patient/untouched"}}, old
        ),
    ]
    server = server_with(httpx_mock, resources)
    since = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    refs = [ref async for ref in FhirMeasurementSource(client, page_size=2).patients(since=since)]
    assert refs == [PatientRef("renamed"), PatientRef("rescanned"), PatientRef("remeasured")]
    searched = dict(server.searches)
    assert searched["Patient"]["_lastUpdated"] == "gt2024-05-01T08:00:00+00:00"
    assert searched["Observation"]["_elements"] == "subject,identifier"
    assert {"Condition", "ImagingStudy", "Procedure", "BodyStructure", "MedicationRequest"} <= searched.keys()


async def test_focus_include_is_used_when_the_server_offers_it(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    server = server_with(httpx_mock, patient_resources())
    server.capability = HAPI_LIKE
    result = await FhirMeasurementSource(client).timeline_for(PatientRef("p1"))
    assert result.timeline is not None
    assert {les.lesion_id for les in result.timeline.lesions} == {"L1", "L2", "L3", "L4"}
    observation_search = next(p for t, p in server.searches if t == "Observation")
    assert observation_search["_include"] == "Observation:focus"
    assert [t for t, _ in server.searches if t == "BodyStructure"] == []  # no _id fallback needed


async def test_without_the_include_the_id_fallback_is_used(httpx_mock: HTTPXMock, client: FhirClient) -> None:
    server = server_with(httpx_mock, patient_resources())  # sekmet-like: no Observation:focus
    await FhirMeasurementSource(client).timeline_for(PatientRef("p1"))
    assert "_include" not in next(p for t, p in server.searches if t == "Observation")
    assert [t for t, _ in server.searches if t == "BodyStructure"] == ["BodyStructure"]


async def test_patients_since_must_be_aware(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        [ref async for ref in FhirMeasurementSource(client).patients(since=datetime(2024, 5, 1))]  # noqa: DTZ001


# --- writer -----------------------------------------------------------------------------------------
def test_transaction_bundle_is_conditional_and_valid() -> None:
    bundle, plan = transaction_bundle(
        assessment(), patient_input(), version="0.1.0", recorded=RECORDED, run_id="run-1"
    )
    validate_resource(bundle)
    entries = bundle["entry"]
    observations = [e for e in entries if e["resource"]["resourceType"] == "Observation"]
    # 8 results of our profiles + 1 mCODE CancerDiseaseStatus (one iRECIST timepoint)
    assert len(observations) == len(plan.written) == 9 + 1
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
    # Conditional on the run and the patient: a repeated commit of this run stores no second one.
    tag = provenance_tag("run-1", patient_input().ref.patient_id)
    assert provenance["request"] == {
        "method": "POST",
        "url": "Provenance",
        "ifNoneExist": f"_tag={codes.TAG_WRITE}|{tag}",
    }
    assert provenance["resource"]["meta"]["tag"] == [{"system": codes.TAG_WRITE, "code": tag}]
    assert [t["reference"] for t in provenance["resource"]["target"]] == [e["fullUrl"] for e in observations]
    assert provenance["resource"]["agent"][0]["who"]["reference"] == device["fullUrl"]


def writer(client: FhirClient, strategy: WriteStrategy = WriteStrategy.AUTO) -> FhirAssessmentWriter:
    options = WriteOptions(strategy=strategy, max_attempts=3)
    return FhirAssessmentWriter(client, version="0.1.0", clock=lambda: RECORDED, options=options)


def puts_of(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for t in transactions for e in t["entry"] if e["request"]["method"] == "PUT"]


@pytest.mark.parametrize("strategy", [WriteStrategy.AUTO, WriteStrategy.TRANSACTION])
async def test_first_write_creates_every_result_with_one_provenance(
    httpx_mock: HTTPXMock, client: FhirClient, strategy: WriteStrategy
) -> None:
    server = server_with(httpx_mock, [])
    summary = await writer(client, strategy).write(assessment(), patient_input(), run_id="run-1")
    assert (summary.created, summary.updated, summary.unchanged, summary.failure) == (9 + 1, 0, 0, None)
    assert len(server.of_type("Observation")) == 9 + 1  # + the CancerDiseaseStatus
    (provenance,) = server.of_type("Provenance")
    observation_ids = {f"Observation/{o['id']}" for o in server.of_type("Observation")}
    assert {t["reference"] for t in provenance["target"]} == observation_ids
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"
    (device,) = server.of_type("Device")
    assert provenance["agent"][0]["who"]["reference"] == f"Device/{device['id']}"


async def test_results_are_sent_after_the_results_they_reference(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    # The default (auto) strategy: a result never travels with, or before, a result it references,
    # so an entry a server fails cannot leave a reference to a missing result (docs/fhir/write-back.md).
    server = server_with(httpx_mock, [])
    await writer(client).write(assessment(), patient_input(), run_id="run-1")
    sent: set[str] = set()
    for bundle in server.transactions:
        urls = {e.get("fullUrl") for e in bundle["entry"]}
        for entry in bundle["entry"]:
            for ref in entry["resource"].get("derivedFrom", []) + entry["resource"].get("hasMember", []):
                assert not ref["reference"].startswith("urn:"), "a reference left for the server to resolve"
        sent |= urls
    assert len(server.transactions) > 2  # several dependency levels, then the Provenance


async def test_rerun_with_the_same_results_writes_nothing_at_all(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    # A no-op re-run adds nothing, not even a Provenance.
    server = server_with(httpx_mock, [])
    await writer(client).write(assessment(), patient_input(), run_id="run-1")
    before = copy.deepcopy(server.resources)
    sent = len(server.transactions)
    summary = await writer(client).write(assessment(), patient_input(), run_id="run-2")
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 9 + 1)
    assert len(server.transactions) == sent
    assert server.resources == before


@pytest.mark.parametrize("strategy", [WriteStrategy.AUTO, WriteStrategy.TRANSACTION])
async def test_changed_result_is_amended_in_place_with_if_match(
    httpx_mock: HTTPXMock, client: FhirClient, strategy: WriteStrategy
) -> None:
    # Contract section 2: a re-run that changes a result updates it with status `amended`.
    server = server_with(httpx_mock, [])
    await writer(client, strategy).write(assessment(response=Response.SD), patient_input(), run_id="run-1")
    ids_before = {o["id"] for o in server.of_type("Observation")}
    sent = len(server.transactions)
    summary = await writer(client, strategy).write(
        assessment(response=Response.PR), patient_input(), run_id="run-2"
    )
    assert summary.updated >= 1
    assert summary.created == 0
    assert summary.updated + summary.unchanged == 9 + 1
    assert {o["id"] for o in server.of_type("Observation")} == ids_before  # updated, not duplicated
    tpr = next(
        o for o in server.of_type("Observation") if o["code"]["coding"][0]["code"] == codes.CODE_RECIST11_TPR
    )
    assert tpr["valueCodeableConcept"]["coding"][0]["code"] == "PR"
    assert tpr["status"] == "amended"
    assert tpr["meta"]["versionId"] == "2"
    puts = puts_of(server.transactions[sent:])
    assert len(puts) == summary.updated
    assert all(e["request"]["ifMatch"] == 'W/"1"' for e in puts)
    unchanged = [o for o in server.of_type("Observation") if o["meta"]["versionId"] == "1"]
    assert all(o["status"] == "final" for o in unchanged)
    provenances = server.of_type("Provenance")
    assert len(provenances) == 2
    assert {t["reference"] for t in provenances[-1]["target"]} == {
        f"Observation/{o['id']}" for o in server.of_type("Observation") if o["meta"]["versionId"] == "2"
    }
    assert provenances[-1]["activity"]["coding"][0]["code"] == "UPDATE"


async def test_412_on_the_write_is_retried_after_reading_again(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    # A version conflict (another worker wrote in between) -> re-read, re-plan, write.
    server = server_with(httpx_mock, [])
    await writer(client, WriteStrategy.TRANSACTION).write(assessment(response=Response.SD), patient_input())
    server.conflicts_left = 1
    reads_before = len([p for t, p in server.searches if t == "Observation" and "identifier" in p])
    summary = await writer(client, WriteStrategy.TRANSACTION).write(
        assessment(response=Response.PR), patient_input()
    )
    assert summary.updated >= 1
    assert summary.failure is None
    reads = [p for t, p in server.searches if t == "Observation" and "identifier" in p]
    assert len(reads) - reads_before == 2  # one read per attempt: the 412, then the write
    assert len(server.of_type("Observation")) == 9 + 1  # + the CancerDiseaseStatus


async def test_persistent_412_fails_the_patient_with_the_reason(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    server = server_with(httpx_mock, [])
    server.conflicts_left = 5
    summary = await writer(client, WriteStrategy.TRANSACTION).write(assessment(), patient_input())
    assert summary.failure is not None
    assert "409/412" in summary.failure
    assert "write-failed" in {i.code for i in summary.issues}
    assert len(server.transactions) == 3  # WriteOptions.max_attempts
    assert server.of_type("Observation") == []


async def test_a_short_transaction_response_is_a_failed_write(
    httpx_mock: HTTPXMock, client: FhirClient
) -> None:
    # An entry the server did not answer is not assumed written.
    httpx_mock.add_response(
        method="GET", json={"resourceType": "Bundle", "type": "searchset", "entry": []}, is_reusable=True
    )
    reply = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201", "location": "Device/d1"}}],
    }
    httpx_mock.add_response(method="POST", url=f"{BASE}/", json=reply, is_reusable=True)
    summary = await writer(client, WriteStrategy.TRANSACTION).write(
        assessment(), copy.deepcopy(patient_input())
    )
    assert summary.failure is not None
    assert "no entry for this request" in summary.failure


@pytest.mark.parametrize(
    ("status", "resource_type", "method", "text", "profiled", "expected"),
    [
        # A server resolving meta.profile with the caller's rights needs StructureDefinition read.
        (403, "Observation", "POST", "Forbidden", True, "system/StructureDefinition.rs"),
        (
            403,
            "Observation",
            "POST",
            "cannot read StructureDefinition",
            False,
            "system/StructureDefinition.rs",
        ),
        (403, "Observation", "POST", "Forbidden", False, "system/Observation.c with system/Observation.s"),
        (401, "Observation", "PUT", "", False, "system/Observation.u"),
        (403, "Provenance", "POST", "", False, "system/Provenance.c with system/Provenance.s"),
        (403, "Observation", "GET", "", False, "system/Observation.s"),
    ],
)
def test_a_refused_write_names_the_operation_and_the_likely_scope(
    status: int, resource_type: str, method: str, text: str, profiled: bool, expected: str
) -> None:
    hint = permission_hint(status, resource_type, method, text, profiled=profiled)
    operation = {"POST": "create", "PUT": "update", "GET": "search"}[method]
    assert hint.startswith(f"HTTP {status} on {operation} {resource_type}; likely missing scope ")
    assert expected in hint
