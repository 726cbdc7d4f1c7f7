"""FHIR alert channel: a Communication and a Flag on the FHIR server (docs/fhir-contract.md section 3).

Both are written in ONE transaction Bundle as conditional creates on the alert identifier
(system `codes.IDENTIFIER_ALERT`, value `application.alerts.alert_identifier`), so delivering
the same alert again (a retry, or a worker that crashed after the write and before recording
it) matches the existing resources instead of duplicating them.

Communication: status `completed`, category `alert`
(http://terminology.hl7.org/CodeSystem/communication-category), priority `urgent`, `subject` the
patient, `recipient` the responsible clinician, `about` the AtypicalResponse Observation, `sent`,
`payload.contentString` the finding and suggested next step (`application.alerts.alert_text`).
Flag: status `active`, category `clinical` (http://terminology.hl7.org/CodeSystem/flag-category
[R]), `code` the finding (`OR/CodeSystem/atypical-response`) with the next step as text, `subject`
the patient, `period.start` the scan date (no `author`: the service is not a clinician), and the core extension
`flag-detail` [R] pointing at the Observation.

Recipient resolution (contract section 3), first match wins:
1. a CareTeam participant whose role is an oncology role (SNOMED codes from settings, default
   309295000 Oncologist; or a role text/display containing "oncolog"), member a Practitioner or
   PractitionerRole, participant period not ended;
2. the `requester` of the patient's ICI MedicationRequest (ATC L01FF*, or a known ICI name),
   active orders first, then the most recently authored;
3. `Patient.generalPractitioner` (first Practitioner/PractitionerRole/Organization).
Nobody -> `RecipientUnknown` (the worker holds and reports the alert).

Decision (finding the CareTeam): the CareTeams are READ BY THE REFERENCES the patient's own
resources carry - `MedicationRequest.performer` of the ICI orders and `Observation.performer` of
ECOG observations (LOINC 89247-1) - instead of searching `CareTeam?patient=`. sekmet-fhir 0.1.1
defines no CareTeam search parameters and, in lenient mode, ignores an unknown parameter and
would answer every CareTeam on the server; `_has` needs CareTeam search support as well. Searching
MedicationRequest and Observation by `patient` (and `code`) works on both HAPI and sekmet. A
CareTeam whose `subject` names another patient is ignored.

The AtypicalResponse Observation is found by its identifier (`outbound.assessment_identifier`
over patient, ``atypical-response/<kind>``, "", definition, timepoint date). If it is not on the
server (yet), the delivery fails and is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

import structlog

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.drug_terminology import drug_terminology
from service.adapters.fhir.errors import FhirNotFound, MalformedResource
from service.adapters.fhir.outbound import assessment_identifier
from service.application.alerts import KIND_DISPLAY, NEXT_STEP_TEXT, RecipientUnknown, alert_text
from service.application.errors import UpstreamRejected, UpstreamUnavailable
from service.application.ports import PendingAlert

__all__ = [
    "DEFAULT_ONCOLOGY_ROLE_CODES",
    "FhirAlertChannel",
    "alert_resources",
    "resolve_recipient",
]

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]

DEFAULT_ONCOLOGY_ROLE_CODES: Final = ("309295000",)  # [R] SNOMED CT Oncologist (occupation)
FLAG_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/flag-category"  # [R]
EXT_FLAG_DETAIL: Final = "http://hl7.org/fhir/StructureDefinition/flag-detail"  # [R] core extension
_RECIPIENT_TYPES: Final = ("Practitioner", "PractitionerRole")
_INACTIVE_TEAM: Final = frozenset({"inactive", "entered-in-error", "suspended"})
_ACTIVE_ORDER: Final = frozenset({"active", "on-hold"})


def _reference(value: object) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        ref: str = value["reference"]
        return ref
    return None


def _split(ref: str) -> tuple[str, str] | None:
    """`Type/id` (also the tail of an absolute URL); None for other shapes."""
    parts = ref.rstrip("/").split("/")
    if len(parts) < 2 or not parts[-1] or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def _refs(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [r for r in (_reference(i) for i in items) if r is not None]


def _codings(concept: object) -> list[JsonDict]:
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _is_ici(request: JsonDict) -> bool:
    """A PD-1/PD-L1 inhibitor as the reader recognises one (the package's drug ValueSets)."""
    concept = request.get("medicationCodeableConcept")
    text = concept.get("text") if isinstance(concept, dict) else None
    match = drug_terminology().classify(_codings(concept), text)
    return match is not None and match.drug.is_ici


def _is_oncology_role(role: object, role_codes: frozenset[str]) -> bool:
    roles = role if isinstance(role, list) else [role]
    for concept in roles:
        for coding in _codings(concept):
            if coding.get("system") == codes.SNOMED and coding.get("code") in role_codes:
                return True
            display = coding.get("display")
            if isinstance(display, str) and "oncolog" in display.lower():
                return True
        text = concept.get("text") if isinstance(concept, dict) else None
        if isinstance(text, str) and "oncolog" in text.lower():
            return True
    return False


def _period_ended(participant: JsonDict, today: date) -> bool:
    period = participant.get("period")
    end = period.get("end") if isinstance(period, dict) else None
    return isinstance(end, str) and end[:10] < today.isoformat()


def _team_recipient(team: JsonDict, patient_id: str, role_codes: frozenset[str], today: date) -> str | None:
    if team.get("status") in _INACTIVE_TEAM:
        return None
    subject = _reference(team.get("subject"))
    if subject is not None and _split(subject) != ("Patient", patient_id):
        return None  # a team of another patient: never address its members
    for participant in team.get("participant", []) or []:
        if not isinstance(participant, dict) or _period_ended(participant, today):
            continue
        member = _reference(participant.get("member"))
        parts = _split(member) if member else None
        if parts and parts[0] in _RECIPIENT_TYPES and _is_oncology_role(participant.get("role"), role_codes):
            return f"{parts[0]}/{parts[1]}"
    return None


async def _search(client: FhirClient, resource_type: str, params: Mapping[str, str]) -> list[JsonDict]:
    return [r async for r in client.search(resource_type, params, issues=[])]


async def resolve_recipient(
    client: FhirClient,
    patient_id: str,
    *,
    role_codes: Iterable[str] = DEFAULT_ONCOLOGY_ROLE_CODES,
    today: date | None = None,
) -> tuple[str, str]:
    """(`Type/id` of the responsible clinician, how it was found); `RecipientUnknown` if nobody."""
    day = today or datetime.now(UTC).date()
    wanted = frozenset(role_codes)
    orders = [
        r
        for r in await _search(client, "MedicationRequest", {"patient": patient_id, "_count": "100"})
        if r.get("resourceType") == "MedicationRequest" and _is_ici(r)
    ]
    ecog = await _search(
        client,
        "Observation",
        {"patient": patient_id, "code": f"{codes.LOINC}|{codes.LOINC_ECOG}", "_count": "100"},
    )
    team_ids: dict[str, None] = {}
    for resource in [*orders, *ecog]:
        for ref in _refs(resource.get("performer")):
            parts = _split(ref)
            if parts and parts[0] == "CareTeam":
                team_ids[parts[1]] = None
    for team_id in team_ids:
        try:
            team = await client.read("CareTeam", team_id)
        except (FhirNotFound, MalformedResource):
            continue
        found = _team_recipient(team, patient_id, wanted, day)
        if found is not None:
            return found, "care-team-oncologist"
    orders.sort(key=lambda r: (r.get("status") in _ACTIVE_ORDER, str(r.get("authoredOn", ""))), reverse=True)
    for order in orders:
        requester = _reference(order.get("requester"))
        parts = _split(requester) if requester else None
        if parts and parts[0] in _RECIPIENT_TYPES:
            return f"{parts[0]}/{parts[1]}", "ici-order-requester"
    try:
        patient = await client.read("Patient", patient_id)
    except MalformedResource:
        patient = {}
    for ref in _refs(patient.get("generalPractitioner")):
        parts = _split(ref)
        if parts and parts[0] in (*_RECIPIENT_TYPES, "Organization"):
            return f"{parts[0]}/{parts[1]}", "general-practitioner"
    raise RecipientUnknown(
        "no oncology CareTeam member, ICI order requester or general practitioner found for the patient"
    )


def _conditional_create(resource: JsonDict) -> JsonDict:
    identifier = resource["identifier"][0]
    seed = f"{resource['resourceType']}|{identifier['system']}|{identifier['value']}"
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}",
        },
    }


def alert_resources(
    alert: PendingAlert,
    *,
    recipient: str,
    observation: str,
    sent: datetime,
    viewer_url: str | None = None,
) -> tuple[JsonDict, JsonDict]:
    """(Communication, Flag) of one alert (module doc). `viewer_url`, when the service's public URL
    is known, is the patient view's SMART launch URL, added as a second payload (an Attachment)."""
    payload = alert.payload
    identifier = [{"system": codes.IDENTIFIER_ALERT, "value": payload["alert_id"]}]
    subject = {"reference": f"Patient/{alert.patient_id}"}
    kind = alert.kind
    finding = {
        "coding": [{"system": codes.CS_ATYPICAL_RESPONSE, "code": kind, "display": KIND_DISPLAY[kind]}],
        "text": f"{KIND_DISPLAY[kind]} on immunotherapy: {NEXT_STEP_TEXT[kind]}",
    }
    communication: JsonDict = {
        "resourceType": "Communication",
        "identifier": identifier,
        "status": "completed",
        "category": [
            {"coding": [{"system": codes.COMMUNICATION_CATEGORY, "code": "alert", "display": "Alert"}]}
        ],
        "priority": "urgent",
        "subject": subject,
        "about": [{"reference": observation}],
        "recipient": [{"reference": recipient}],
        "sent": sent.isoformat(),
        "topic": finding,
        "payload": [{"contentString": alert_text(payload)}],
    }
    if viewer_url:
        communication["payload"].append(
            {
                "contentAttachment": {
                    "contentType": "text/html",
                    "url": viewer_url,
                    "title": "Lesion view (SMART on FHIR app): worksheet, spider plot and rule trace",
                }
            }
        )
    flag: JsonDict = {
        "resourceType": "Flag",
        "identifier": identifier,
        "extension": [{"url": EXT_FLAG_DETAIL, "valueReference": {"reference": observation}}],
        "status": "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}],
        "code": finding,
        "subject": subject,
        "period": {"start": payload["scan"]["date"]},
    }
    return communication, flag


def _entry_status(entry: object) -> tuple[int | None, str | None]:
    response = entry.get("response") if isinstance(entry, dict) else None
    if not isinstance(response, dict):
        return None, None
    status = response.get("status")
    head = status.strip().split(" ", 1)[0] if isinstance(status, str) else ""
    location = response.get("location")
    ref = None
    if isinstance(location, str):
        parts = _split(location.split("/_history", 1)[0])
        ref = f"{parts[0]}/{parts[1]}" if parts else None
    return (int(head) if head.isdigit() else None), ref


class FhirAlertChannel:
    """`AlertChannel` that writes the Communication and the Flag (see module doc)."""

    name = "fhir"

    def __init__(
        self,
        client: FhirClient,
        *,
        role_codes: Iterable[str] = DEFAULT_ONCOLOGY_ROLE_CODES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        viewer_url: str | None = None,
    ) -> None:
        self._client = client
        self._role_codes = tuple(role_codes)
        self._clock = clock
        self._viewer_url = viewer_url

    async def find_observation(self, alert: PendingAlert) -> str:
        finding = alert.payload["finding"]
        value = assessment_identifier(
            alert.patient_id,
            f"{codes.CODE_ATYPICAL_RESPONSE}/{alert.kind}",
            "",
            finding["definition"],
            date.fromisoformat(alert.payload["scan"]["date"]),
        )
        found = await _search(
            self._client, "Observation", {"identifier": f"{codes.IDENTIFIER_ASSESSMENT}|{value}"}
        )
        for resource in found:
            if resource.get("resourceType") == "Observation" and isinstance(resource.get("id"), str):
                return f"Observation/{resource['id']}"
        raise UpstreamUnavailable("the AtypicalResponse Observation is not on the FHIR server yet")

    async def deliver(self, alert: PendingAlert) -> Mapping[str, Any]:
        now = self._clock()
        recipient, how = await resolve_recipient(
            self._client, alert.patient_id, role_codes=self._role_codes, today=now.date()
        )
        observation = await self.find_observation(alert)
        communication, flag = alert_resources(
            alert, recipient=recipient, observation=observation, sent=now, viewer_url=self._viewer_url
        )
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [_conditional_create(communication), _conditional_create(flag)],
        }
        response = await self._client.transaction(bundle)
        entries = response.get("entry")
        answered = entries if isinstance(entries, list) else []
        if len(answered) != 2:
            raise UpstreamRejected("the transaction response does not answer both entries")
        statuses = [_entry_status(e) for e in answered]
        if any(status not in (200, 201) for status, _ in statuses):
            raise UpstreamRejected(f"the server answered {[s for s, _ in statuses]} to the alert")
        log.info(
            "alert.fhir_written",
            patient_key=alert.patient_key,
            recipient_source=how,
            created=sum(1 for s, _ in statuses if s == 201),
        )
        return {
            "recipient": recipient,
            "recipient_source": how,
            "about": observation,
            "communication": statuses[0][1],
            "flag": statuses[1][1],
        }
