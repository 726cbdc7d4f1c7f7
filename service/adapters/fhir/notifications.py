"""Subscription rest-hook notifications -> which patients changed (FHIR R4 Subscription, R5 Backport).

Shapes understood (`read_notification`):

- R4 criteria-based rest-hook (FHIR R4 Subscription, `channel.payload` empty or a MIME type):
  - empty body (payload none): a ping with no patient -> `poll=True` (the caller runs the
    `_lastUpdated` poll at once);
  - a resource (payload `application/fhir+json`): its patient (`Patient.id`, `subject`,
    `patient`);
  - a Bundle (any type but the Backport history shape below): each entry's resource as above.
- R5 Backport topic-based (HL7 FHIR Subscriptions R5 Backport IG, R4 profile): a Bundle of type
  `history` whose first entry is a `Parameters` (SubscriptionStatus) with `type`
  (`event-notification`, `handshake`, `heartbeat`, `query-status`, `query-event`) and
  `notification-event` parts carrying `focus` (a Reference):
  - `handshake`/`heartbeat`/`query-*`: acknowledged, nothing scheduled;
  - `event-notification`: for each event, the patient of the focused resource when the Bundle
    carries it (`full-resource` payload), else of the focus reference itself: `Patient/<id>`
    directly, any other `Type/<id>` is returned in `to_resolve` (the caller reads it to find its
    patient); an event without focus (`empty` payload) -> `poll=True`.

Anything else (not JSON, not a resource, a Backport Bundle without the Parameters) raises
`BadNotification` with a text for the OperationOutcome answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from service.adapters.fhir.inbound import patient_of, reference_key

__all__ = ["BadNotification", "Notification", "read_notification"]

JsonDict = dict[str, Any]

_NOTHING_TO_DO: Final = frozenset({"handshake", "heartbeat", "query-status", "query-event"})


class BadNotification(ValueError):
    """A body that is no notification we understand; the message is safe to answer."""


@dataclass(slots=True)
class Notification:
    kind: str  # "ping" | "resource" | "bundle" | "backport-<type>"
    patient_ids: list[str] = field(default_factory=list)
    to_resolve: list[str] = field(default_factory=list)  # `Type/id` references whose patient is unknown
    poll: bool = False

    def add_patient(self, patient_id: str) -> None:
        if patient_id not in self.patient_ids:
            self.patient_ids.append(patient_id)


def _patient_of_resource(resource: JsonDict) -> str | None:
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    return patient_of(resource)


def _parameter_value(part: JsonDict) -> Any:
    return next((v for k, v in part.items() if k.startswith("value")), None)


def _backport(bundle: JsonDict, status: JsonDict) -> Notification:
    parameters = status.get("parameter")
    if not isinstance(parameters, list):
        raise BadNotification("SubscriptionStatus Parameters has no parameter list")
    kind = next(
        (_parameter_value(p) for p in parameters if isinstance(p, dict) and p.get("name") == "type"),
        None,
    )
    if not isinstance(kind, str):
        raise BadNotification("SubscriptionStatus has no notification type")
    note = Notification(f"backport-{kind}")
    if kind in _NOTHING_TO_DO:
        return note
    if kind != "event-notification":
        raise BadNotification(f"unknown notification type {kind!r}")
    carried: dict[str, JsonDict] = {}
    for entry in bundle.get("entry", [])[1:]:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            rid = resource.get("id")
            if isinstance(rid, str):
                carried[f"{resource['resourceType']}/{rid}"] = resource
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str) and (key := reference_key(full_url)) is not None:
                carried.setdefault(key, resource)
    events = [p for p in parameters if isinstance(p, dict) and p.get("name") == "notification-event"]
    if not events:
        note.poll = True
    for event in events:
        parts = event.get("part")
        focus = next(
            (
                p.get("valueReference")
                for p in (parts if isinstance(parts, list) else [])
                if isinstance(p, dict) and p.get("name") == "focus"
            ),
            None,
        )
        reference = focus.get("reference") if isinstance(focus, dict) else None
        key = reference_key(reference) if isinstance(reference, str) else None
        if key is None:
            note.poll = True
            continue
        resource = carried.get(key)
        patient = _patient_of_resource(resource) if resource is not None else None
        if patient is not None:
            note.add_patient(patient)
        elif key.startswith("Patient/"):
            note.add_patient(key.removeprefix("Patient/"))
        elif key not in note.to_resolve:
            note.to_resolve.append(key)
    return note


def read_notification(body: Any) -> Notification:
    """Which patients a rest-hook notification names (see module doc); `BadNotification` otherwise."""
    if body is None:
        return Notification("ping", poll=True)
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadNotification("the body is not a FHIR resource")
    if body["resourceType"] != "Bundle":
        note = Notification("resource")
        patient = _patient_of_resource(body)
        if patient is None:
            raise BadNotification(f"the {body['resourceType']} names no patient")
        note.add_patient(patient)
        return note
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise BadNotification("Bundle.entry is not a list")
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    if (
        body.get("type") == "history"
        and isinstance(first, dict)
        and first.get("resourceType") == "Parameters"
    ):
        return _backport(body, first)
    if (
        body.get("type") == "history"
        and isinstance(first, dict)
        and first.get("resourceType") == "SubscriptionStatus"
    ):
        raise BadNotification("R5 SubscriptionStatus notifications are not supported; use the R4 Backport")
    note = Notification("bundle")
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            patient = _patient_of_resource(resource)
            if patient is not None:
                note.add_patient(patient)
    if not note.patient_ids:
        note.poll = True
    return note
