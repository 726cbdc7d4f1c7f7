"""Ports: what the use cases need from the outside world, in domain terms only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from service.domain.model import PatientTimeline
from service.domain.results import DataIssue, PatientAssessment


@dataclass(frozen=True, slots=True)
class PatientRef:
    """A patient on the FHIR server (`Patient/<id>`)."""

    patient_id: str


@dataclass(frozen=True, slots=True)
class PatientInput:
    """What the source could read for one patient: a timeline or the reasons why not."""

    ref: PatientRef
    timeline: PatientTimeline | None
    issues: tuple[DataIssue, ...] = ()
    # How the input names the resources behind `Type/id` references, where it differs (a posted
    # Bundle's `urn:uuid:` or absolute fullUrls): results point at the input's own resources.
    reference_forms: Mapping[str, str] = field(default_factory=dict)
    # `Condition/<id>` of the primary cancer the tumour type was read from (focus of the written
    # disease status), when the input has one.
    primary_cancer_ref: str | None = None


@dataclass(frozen=True, slots=True)
class WriteSummary:
    """What one patient's write did. `failure` set: the patient's results are not all on the server
    (the server's own text); `permission`: the permission it refused, when that is the reason."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    issues: tuple[DataIssue, ...] = field(default_factory=tuple)
    failure: str | None = None
    permission: str | None = None


class MeasurementSource(Protocol):
    """Reads patients' lesions, scans, therapy, labs and outcomes."""

    def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]: ...

    async def timeline_for(self, patient: PatientRef) -> PatientInput: ...


class AssessmentWriter(Protocol):
    """Writes assessments back (FHIR Observations), idempotently."""

    async def write(
        self, assessment: PatientAssessment, patient: PatientInput, *, run_id: str | None = None
    ) -> WriteSummary: ...


@dataclass(frozen=True, slots=True)
class RunState:
    """A run as the store last saw it: `running` with no end is one still going or one that died."""

    run_id: str
    status: str  # running | succeeded | partial | failed (aborted)
    started_at: datetime
    finished_at: datetime | None
    patients_failed: int


class PatientLeases(Protocol):
    """Claims on patients shared by every sync process (database): a run works on a patient only
    if it gets the patient's lease, which it does not while another run holds it or when a run
    that overlapped it has done the patient; leases end with the run (or expire if it dies)."""

    async def acquire(self, patient_id: str, run_id: str, run_started_at: datetime) -> bool: ...

    async def release(self, run_id: str) -> None: ...


class AssessmentStore(Protocol):
    """Keeps the latest assessment per patient and the bookkeeping of every run (database)."""

    async def start_run(self, trigger: str, *, run_id: str | None = None, patients_total: int = 0) -> str: ...

    async def record(self, assessments: Sequence[PatientAssessment], *, run_id: str) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        *,
        patients_total: int,
        patients_assessed: int,
        patients_failed: int,
        observations_created: int = 0,
        observations_unchanged: int = 0,
        aborted: bool = False,
    ) -> None: ...

    async def last_run(self) -> RunState | None: ...

    async def close_stale_runs(self, older_than_s: float) -> int: ...


# --- alerts (service/application/alerts.py) -------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert to put in the outbox: once per patient, finding and timepoint (contract section 3).

    `payload` is plain JSON (built by `application.alerts.alert_payload`); the outbox stores it
    as it is and the delivery channels render it.
    """

    patient_id: str
    kind: str  # AtypicalKind value: "DR" or "PsPD"
    timepoint_date: date
    payload: Mapping[str, Any]


@runtime_checkable
class OutboxAssessmentStore(AssessmentStore, Protocol):
    """An `AssessmentStore` that also records alerts IN THE SAME TRANSACTION as the assessments.

    Returns how many alerts were new (a duplicate of an already recorded alert is skipped).
    """

    async def record_with_alerts(
        self, assessments: Sequence[PatientAssessment], *, run_id: str, alerts: Sequence[AlertRecord]
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An outbox alert handed to the delivery channels."""

    id: int
    patient_id: str
    patient_key: str
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    channels: Mapping[str, Mapping[str, Any]]


class AlertOutbox(Protocol):
    """The outbox table, seen by the delivery worker."""

    async def claim_due(self, *, limit: int = 50, lease_s: float = 300.0) -> Sequence[PendingAlert]: ...

    async def record_channel(self, alert_id: int, channel: str, state: Mapping[str, Any]) -> None: ...

    async def mark_delivered(self, alert_id: int) -> None: ...

    async def mark_failed(self, alert_id: int, error: str, *, retry_at: datetime | None = None) -> None: ...

    async def hold(self, alert_id: int, reason: str, *, recheck_at: datetime | None = None) -> None: ...

    async def release_rechecks(self) -> int: ...

    async def give_up(self, alert_id: int, error: str) -> None: ...


class AlertChannel(Protocol):
    """One way of telling the clinician (FHIR Communication + Flag, a signed webhook).

    `deliver` returns what to remember about the delivery (references, status; no patient
    data beyond FHIR references). It raises `RecipientUnknown` when nobody can be addressed,
    or any `ApplicationError` / `OSError` for a failure worth retrying.
    """

    name: str

    async def deliver(self, alert: PendingAlert) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """One changed input resource, as a `_lastUpdated` search found it (docs/fhir/subscriptions.md)."""

    version_key: str  # `Type/id/_history/<versionId>`, or `Type/id@<lastUpdated>` without a versionId
    patient_id: str | None
    last_updated: datetime | None  # the FHIR server's `meta.lastUpdated` (aware), when it gave one


class ChangeFeed(Protocol):
    """The input resources changed at or after `since` (the server's clock), our own results excluded."""

    def changes(self, *, since: datetime) -> AsyncIterator[ResourceChange]: ...


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """One of the service's own Subscriptions on the FHIR server, as the server reports it."""

    subscription_id: str
    criteria: str
    status: str  # FHIR R4 subscription-status: requested | active | error | off
    error: str | None = None


class SubscriptionRegistry(Protocol):
    """The service's own Subscriptions on the FHIR server (docs/fhir/subscriptions.md)."""

    async def ensure(self) -> Sequence[SubscriptionState]:
        """Create the missing ones and ask again for those the server turned off or in error."""
        ...

    async def states(self) -> Sequence[SubscriptionState]: ...
