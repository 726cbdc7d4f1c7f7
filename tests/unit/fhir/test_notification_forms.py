"""Every Subscription notification form names the changed patient (docs/fhir/subscriptions.md).

Shapes as FHIR R4 (Subscription, rest-hook channel: the resource is PUT/POSTed to
`<endpoint>/<type>/<id>` when `payload` is set, an empty POST otherwise) and the Subscriptions R5
Backport IG (history Bundles whose first entry is the status: R4 `Parameters` or R4B
`SubscriptionStatus`; payload `empty`, `id-only` or `full-resource`).
"""

from __future__ import annotations

from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.notifications import BadNotification, read_notification

BASE = "http://ehr.example/fhir"
OBSERVATION = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}


def r4b_status(kind: str, focuses: list[str | None]) -> dict[str, Any]:
    events = [
        {"eventNumber": str(n), **({"focus": {"reference": f}} if f else {})}
        for n, f in enumerate(focuses, start=1)
    ]
    return {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": kind,
        "subscription": {"reference": f"{BASE}/Subscription/s1"},
        "topic": "http://example.org/SubscriptionTopic/lesion-measured",
        "notificationEvent": events,
    }


def history(status: dict[str, Any], *carried: dict[str, Any]) -> dict[str, Any]:
    entries = [{"fullUrl": "urn:uuid:0b1c", "resource": status}]
    entries += [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in carried]
    return {"resourceType": "Bundle", "type": "history", "entry": entries}


def test_r4_payload_put_to_the_resource_path_names_its_patient() -> None:
    note = read_notification(OBSERVATION, named="Observation/o1")
    assert (note.patient_ids, note.to_resolve, note.poll) == (["p1"], [], False)


def test_r4_empty_body_on_the_resource_path_is_resolved_by_that_path() -> None:
    note = read_notification(None, named="ImagingStudy/s9")
    assert (note.patient_ids, note.to_resolve, note.poll) == ([], ["ImagingStudy/s9"], False)


def test_r4_empty_body_on_a_patient_path_is_that_patient() -> None:
    assert read_notification(None, named="Patient/p4").patient_ids == ["p4"]


def test_r4_payload_naming_no_patient_falls_back_to_the_path() -> None:
    note = read_notification({"resourceType": "Observation", "id": "o1"}, named="Observation/o1")
    assert note.to_resolve == ["Observation/o1"]


def test_r4b_subscription_status_id_only_event_is_resolved() -> None:
    note = read_notification(history(r4b_status("event-notification", [f"{BASE}/Observation/o1"])))
    assert (note.kind, note.to_resolve) == ("backport-event-notification", ["Observation/o1"])


def test_r4b_subscription_status_full_resource_event_names_the_patient() -> None:
    note = read_notification(
        history(r4b_status("event-notification", [f"{BASE}/Observation/o1"]), OBSERVATION)
    )
    assert (note.patient_ids, note.to_resolve) == (["p1"], [])


def test_r4b_subscription_status_empty_event_asks_for_a_poll() -> None:
    assert read_notification(history(r4b_status("event-notification", [None]))).poll


def test_r4b_handshake_schedules_nothing() -> None:
    note = read_notification(history(r4b_status("handshake", [])))
    assert (note.patient_ids, note.to_resolve, note.poll) == ([], [], False)


def test_r4b_status_without_type_is_refused() -> None:
    status = r4b_status("event-notification", [])
    del status["type"]
    with pytest.raises(BadNotification):
        read_notification(history(status))


@pytest.mark.parametrize(
    ("resource_type", "status", "ends_the_read"),
    [
        ("DiagnosticReport", "final", True),  # FHIR R4 diagnostic-report-status: signed
        ("DiagnosticReport", "amended", True),
        ("DiagnosticReport", "corrected", True),
        ("DiagnosticReport", "preliminary", False),  # verified, not final
        ("DiagnosticReport", "partial", False),
        ("ImagingStudy", "available", True),  # FHIR R4 imagingstudy-status
        ("ImagingStudy", "registered", False),
        ("Observation", "final", False),  # one measurement: more of the same read may follow
    ],
)
def test_a_signed_report_or_available_study_closes_the_read(
    resource_type: str, status: str, ends_the_read: bool
) -> None:
    resource = {
        "resourceType": resource_type,
        "id": "r1",
        "status": status,
        "subject": {"reference": "Patient/p1"},
    }
    assert (read_notification(resource).study_final == ["p1"]) is ends_the_read


def test_our_own_result_observation_changes_no_input() -> None:
    ours = {
        "resourceType": "Observation",
        "id": "r1",
        "identifier": [{"system": codes.IDENTIFIER_ASSESSMENT, "value": "x"}],
        "subject": {"reference": "Patient/p1"},
    }
    note = read_notification(ours, named="Observation/r1")
    assert (note.patient_ids, note.to_resolve, note.poll) == ([], [], False)
