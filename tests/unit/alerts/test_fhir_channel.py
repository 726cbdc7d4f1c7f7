"""FHIR alert channel: recipient resolution (contract section 3) and the Communication/Flag written.

A tiny in-memory FHIR server (httpx.MockTransport) answers the searches and reads the channel makes.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.flag import Flag

from service.adapters.alerts.fhir import FhirAlertChannel, alert_resources, resolve_recipient
from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.outbound import assessment_identifier
from service.application.alerts import RecipientUnknown
from service.application.ports import PendingAlert

BASE = "http://fhir.test/fhir"
ONCOLOGIST = {"coding": [{"system": codes.SNOMED, "code": "309295000", "display": "Oncologist"}]}
GP_ROLE = {"coding": [{"system": codes.SNOMED, "code": "62247001"}]}
PEMBRO = {"coding": [{"system": codes.ATC, "code": "L01FF02"}], "text": "pembrolizumab"}
TP = date(2024, 4, 30)


def order(
    requester: str | None, team: str | None = "team-1", drug: dict[str, Any] = PEMBRO
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": drug,
        "authoredOn": "2024-01-01",
    }
    if requester:
        res["requester"] = {"reference": requester}
    if team:
        res["performer"] = {"reference": f"CareTeam/{team}"}
    return res


def team(subject: str = "Patient/p1", role: dict[str, Any] = ONCOLOGIST) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": "team-1",
        "status": "active",
        "subject": {"reference": subject},
        "participant": [
            {"role": [GP_ROLE], "member": {"reference": "Practitioner/gp"}},
            {"role": [role], "member": {"reference": "Practitioner/onc"}},
        ],
    }


class FakeFhir:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.transactions: list[dict[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir").strip("/")
        if request.method == "POST" and path == "":
            bundle = json.loads(request.content)
            self.transactions.append(bundle)
            entries = [
                {
                    "response": {
                        "status": "201 Created",
                        "location": f"{e['resource']['resourceType']}/x{i}/_history/1",
                    }
                }
                for i, e in enumerate(bundle["entry"])
            ]
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
            )
        parts = path.split("/")
        if len(parts) == 2:
            for r in self.resources:
                if (r["resourceType"], r["id"]) == tuple(parts):
                    return httpx.Response(200, json=r)
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        params = dict(request.url.params)
        found = [r for r in self.resources if r["resourceType"] == parts[0]]
        if "patient" in params:
            found = [
                r for r in found if r.get("subject", {}).get("reference") == f"Patient/{params['patient']}"
            ]
        if "identifier" in params:
            system, value = params["identifier"].split("|")
            found = [r for r in found if {"system": system, "value": value} in r.get("identifier", [])]
        return httpx.Response(
            200,
            json={"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]},
        )


def client(resources: list[dict[str, Any]]) -> tuple[FhirClient, FakeFhir]:
    fake = FakeFhir(resources)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return FhirClient(http, BASE), fake


PATIENT = {"resourceType": "Patient", "id": "p1", "generalPractitioner": [{"reference": "Practitioner/gp"}]}


async def test_the_oncologist_of_the_care_team_is_the_recipient() -> None:
    fhir, _ = client([PATIENT, order("Practitioner/requester"), team()])
    assert await resolve_recipient(fhir, "p1") == ("Practitioner/onc", "care-team-oncologist")


async def test_a_care_team_of_another_patient_is_never_used_then_the_ici_requester() -> None:
    fhir, _ = client([PATIENT, order("Practitioner/requester"), team(subject="Patient/someone-else")])
    assert await resolve_recipient(fhir, "p1") == ("Practitioner/requester", "ici-order-requester")


async def test_without_oncology_role_the_ici_requester_then_the_gp() -> None:
    fhir, _ = client([PATIENT, order("Practitioner/requester"), team(role=GP_ROLE)])
    assert (await resolve_recipient(fhir, "p1"))[0] == "Practitioner/requester"
    chemo = {"coding": [{"system": codes.ATC, "code": "L01XA01"}], "text": "cisplatin"}
    fhir, _ = client([PATIENT, order("Practitioner/requester", team=None, drug=chemo)])
    assert await resolve_recipient(fhir, "p1") == ("Practitioner/gp", "general-practitioner")


@pytest.mark.parametrize(
    "drug",
    [
        {"coding": [{"system": codes.RXNORM, "code": "1547545"}]},  # RxNorm IN pembrolizumab, code only
        {"coding": [{"system": codes.RXNORM, "code": "99999999", "display": "Keytruda"}]},  # brand name
    ],
)
async def test_an_ici_order_is_recognised_however_it_is_coded(drug: dict[str, Any]) -> None:
    # The same drug ValueSets as the reader (docs/fhir/drug-terminology.md).
    fhir, _ = client([PATIENT, order("Practitioner/requester", team=None, drug=drug)])
    assert await resolve_recipient(fhir, "p1") == ("Practitioner/requester", "ici-order-requester")


async def test_nobody_to_address_raises_recipient_unknown() -> None:
    fhir, _ = client([{"resourceType": "Patient", "id": "p1"}])
    with pytest.raises(RecipientUnknown):
        await resolve_recipient(fhir, "p1")


def pending() -> PendingAlert:
    payload = {
        "alert_id": "c" * 32,
        "finding": {"kind": "DR", "display": "Dissociated response", "definition": "bernard-tessier"},
        "scan": {"timepoint_index": 2, "date": TP.isoformat()},
        "lesions": {"growing": [{"lesion_id": "L3", "status": "new"}], "shrinking": [{"lesion_id": "L1"}]},
        "next_step": {"text": "Reassess with imaging in 4-8 weeks.", "source": "Guan 2024"},
    }
    return PendingAlert(1, "p1", "k" * 16, "DR", payload, 0, {})


def test_communication_and_flag_follow_contract_section_3_and_validate_as_r4b() -> None:
    comm, flag = alert_resources(
        pending(),
        recipient="Practitioner/onc",
        observation="Observation/o1",
        sent=datetime(2024, 5, 3, tzinfo=UTC),
    )
    Communication.model_validate(comm)
    Flag.model_validate(flag)
    assert comm["status"] == "completed"
    assert comm["priority"] == "urgent"
    assert comm["category"][0]["coding"][0]["code"] == "alert"
    assert comm["recipient"] == [{"reference": "Practitioner/onc"}]
    assert comm["about"] == [{"reference": "Observation/o1"}]
    assert comm["subject"] == flag["subject"] == {"reference": "Patient/p1"}
    assert "4-8 weeks" in comm["payload"][0]["contentString"]
    assert comm["identifier"] == [{"system": codes.IDENTIFIER_ALERT, "value": "c" * 32}]
    assert flag["status"] == "active"


def test_communication_links_the_patient_view_when_the_public_url_is_known() -> None:
    comm, _ = alert_resources(
        pending(),
        recipient="Practitioner/onc",
        observation="Observation/o1",
        sent=datetime(2024, 5, 3, tzinfo=UTC),
        viewer_url="https://onco.example.org/app/patient/launch",
    )
    Communication.model_validate(comm)  # R4 Communication.payload.content[x] may be an Attachment
    assert "4-8 weeks" in comm["payload"][0]["contentString"]
    link = comm["payload"][1]["contentAttachment"]
    assert link["url"] == "https://onco.example.org/app/patient/launch"
    assert link["contentType"] == "text/html"


async def test_deliver_writes_one_transaction_of_two_conditional_creates_about_our_observation() -> None:
    ident = assessment_identifier("p1", "atypical-response/DR", "", "bernard-tessier", TP)
    obs = {
        "resourceType": "Observation",
        "id": "o9",
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": codes.IDENTIFIER_ASSESSMENT, "value": ident}],
    }
    fhir, fake = client([PATIENT, order("Practitioner/requester"), team(), obs])
    detail = await FhirAlertChannel(fhir).deliver(pending())
    (bundle,) = fake.transactions
    assert [e["request"]["ifNoneExist"] for e in bundle["entry"]] == [
        f"identifier={codes.IDENTIFIER_ALERT}|{'c' * 32}"
    ] * 2
    assert bundle["entry"][0]["resource"]["about"] == [{"reference": "Observation/o9"}]
    assert detail["recipient"] == "Practitioner/onc"
    assert detail["communication"] == "Communication/x0"
    assert detail["flag"] == "Flag/x1"
