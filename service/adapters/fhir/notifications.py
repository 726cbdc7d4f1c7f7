"""Subscription rest-hook notifications -> which patients changed (FHIR R4 Subscription, Backport IG).

Shapes understood (`read_notification`; docs/fhir/subscriptions.md):

- R4 criteria-based rest-hook (FHIR R4 Subscription, `channel.payload` empty or a MIME type):
  - empty body (payload none): a ping with no patient -> `poll=True` (the caller runs the
    `_lastUpdated` poll at once);
  - a resource (payload `application/fhir+json`), POSTed to the endpoint or PUT/POSTed to
    `<endpoint>/<type>/<id>` as R4 specifies (`named` is that `Type/id`): its patient
    (`Patient.id`, `subject`, `patient`); a resource naming no patient is resolved by `named`;
  - an empty body PUT/POSTed to `<endpoint>/<type>/<id>`: `named` itself (a Patient directly,
    anything else resolved by a read);
  - a Bundle (any type but the Backport history shapes below): each entry's resource as above.
- Subscriptions R5 Backport IG, topic-based: a Bundle of type `history` whose first entry is the
  notification status, either an R4 `Parameters` (backport SubscriptionStatus profile) or an R4B
  `SubscriptionStatus`, with the type (`event-notification`, `handshake`, `heartbeat`,
  `query-status`, `query-event`) and the events' `focus` references:
  - `handshake`/`heartbeat`/`query-*`: acknowledged, nothing scheduled;
  - `event-notification`: for each event, the patient of the focused resource when the Bundle
    carries it (`full-resource` payload), else of the focus reference itself: `Patient/<id>`
    directly, any other `Type/<id>` is returned in `to_resolve` (the caller reads it to find its
    patient); an event without focus (`empty` payload) -> `poll=True`.

A carried resource that ends a radiology read (a DiagnosticReport `final`/`amended`/`corrected`, an
ImagingStudy `available`) puts its patient in `study_final` too: the re-assessment's debounce
window closes at once (docs/operations/alert-latency.md). One of the service's own result
Observations is ignored (it changes no input).

Anything else (not JSON, not a resource, a Backport Bundle without its status) raises
`BadNotification` with a text for the OperationOutcome answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from service.adapters.fhir.inbound import patient_of, reference_key
from service.adapters.fhir.source import _ours

__all__ = ["BadNotification", "Notification", "read_notification"]

JsonDict = dict[str, Any]

_NOTHING_TO_DO: Final = frozenset({"handshake", "heartbeat", "query-status", "query-event"})
_REPORT_SIGNED: Final = frozenset({"final", "amended", "corrected"})


class BadNotification(ValueError):
    """A body that is no notification we understand; the message is safe to answer."""


@dataclass(slots=True)
class Notification:
    kind: str  # "ping" | "resource" | "bundle" | "backport-<type>"
    patient_ids: list[str] = field(default_factory=list)
    to_resolve: list[str] = field(default_factory=list)  # `Type/id` references whose patient is unknown
    poll: bool = False
    study_final: list[str] = field(default_factory=list)  # patients whose read was just signed

    def add_patient(self, patient_id: str) -> None:
        if patient_id not in self.patient_ids:
            self.patient_ids.append(patient_id)

    def add_resource(self, resource: JsonDict) -> bool:
        """Add the resource's patient (and whether it ends a read); False when it names none.

        One of our own results (written back by a re-assessment) changes no input: ignored.
        """
        if _ours(resource):
            return True
        patient = _patient_of_resource(resource)
        if patient is None:
            return False
        self.add_patient(patient)
        if _ends_a_read(resource) and patient not in self.study_final:
            self.study_final.append(patient)
        return True

    def add_reference(self, key: str) -> None:
        """A `Type/id` without its resource: a Patient directly, anything else to resolve."""
        if key.startswith("Patient/"):
            self.add_patient(key.removeprefix("Patient/"))
        elif key not in self.to_resolve:
            self.to_resolve.append(key)


def _patient_of_resource(resource: JsonDict) -> str | None:
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    return patient_of(resource)


def _ends_a_read(resource: JsonDict) -> bool:
    """A signed radiology report, or an imaging study whose images are all available."""
    status = resource.get("status")
    if resource.get("resourceType") == "DiagnosticReport":
        return status in _REPORT_SIGNED
    return resource.get("resourceType") == "ImagingStudy" and status == "available"


def _parameter_value(part: JsonDict) -> Any:
    return next((v for k, v in part.items() if k.startswith("value")), None)


def _focus_of(event_parts: Any) -> str | None:
    focus = next(
        (
            p.get("valueReference")
            for p in (event_parts if isinstance(event_parts, list) else [])
            if isinstance(p, dict) and p.get("name") == "focus"
        ),
        None,
    )
    reference = focus.get("reference") if isinstance(focus, dict) else None
    return reference if isinstance(reference, str) else None


@dataclass(frozen=True, slots=True)
class _Status:
    """What a notification's status says: its type and each event's focus reference (or None)."""

    kind: Any
    focuses: list[str | None]


def _r4_status(status: JsonDict) -> _Status:
    """Type and event focus references of a backport SubscriptionStatus `Parameters` (R4)."""
    parameters = status.get("parameter")
    if not isinstance(parameters, list):
        raise BadNotification("SubscriptionStatus Parameters has no parameter list")
    kind = next(
        (_parameter_value(p) for p in parameters if isinstance(p, dict) and p.get("name") == "type"),
        None,
    )
    events = [p for p in parameters if isinstance(p, dict) and p.get("name") == "notification-event"]
    return _Status(kind, [_focus_of(e.get("part")) for e in events])


def _r4b_status(status: JsonDict) -> _Status:
    """Type and event focus references of an R4B `SubscriptionStatus`."""
    events = status.get("notificationEvent")
    focuses: list[str | None] = []
    for event in events if isinstance(events, list) else []:
        focus = event.get("focus") if isinstance(event, dict) else None
        reference = focus.get("reference") if isinstance(focus, dict) else None
        focuses.append(reference if isinstance(reference, str) else None)
    return _Status(status.get("type"), focuses)


def _backport(bundle: JsonDict, status: _Status) -> Notification:
    kind, focuses = status.kind, status.focuses
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
    if not focuses:
        note.poll = True
    for reference in focuses:
        key = reference_key(reference) if reference is not None else None
        if key is None:
            note.poll = True
            continue
        resource = carried.get(key)
        if resource is None or not note.add_resource(resource):
            note.add_reference(key)
    return note


def read_notification(body: Any, *, named: str | None = None) -> Notification:
    """Which patients a rest-hook notification names (see module doc); `BadNotification` otherwise.

    `named` is the `Type/id` of the request path when the server sent to `<endpoint>/<type>/<id>`.
    """
    if body is None:
        if named is None:
            return Notification("ping", poll=True)
        note = Notification("resource")
        note.add_reference(named)
        return note
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadNotification("the body is not a FHIR resource")
    if body["resourceType"] != "Bundle":
        note = Notification("resource")
        if not note.add_resource(body):
            if named is None:
                raise BadNotification(f"the {body['resourceType']} names no patient")
            note.add_reference(named)
        return note
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise BadNotification("Bundle.entry is not a list")
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    if body.get("type") == "history" and isinstance(first, dict):
        if first.get("resourceType") == "Parameters":
            return _backport(body, _r4_status(first))
        if first.get("resourceType") == "SubscriptionStatus":
            return _backport(body, _r4b_status(first))
    note = Notification("bundle")
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            note.add_resource(resource)
    if not note.patient_ids:
        note.poll = True
    return note
