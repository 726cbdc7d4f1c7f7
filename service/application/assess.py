"""Use cases: assess patients, and synchronise a FHIR server (pull, assess, write back).

One patient's failure never aborts the others (contract section 1): unusable input becomes a
`DataIssue`; an unexpected engine error is logged (by patient key only), counted, and reported
as an issue for that patient.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import anyio
import structlog

from service.application import clock
from service.application.errors import UpstreamNotFound, UpstreamRejected
from service.application.ports import (
    AlertRecord,
    AssessmentStore,
    AssessmentWriter,
    MeasurementSource,
    OutboxAssessmentStore,
    PatientInput,
    PatientLeases,
    PatientRef,
    RunState,
)
from service.application.privacy import patient_key
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import DataIssue, PatientAssessment

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PatientOutcome:
    """The result for one patient: an assessment, or why there is none."""

    input: PatientInput
    assessment: PatientAssessment | None
    issues: tuple[DataIssue, ...]

    @property
    def lesion_data_used(self) -> bool:
        """Assessed in the sense a summary counts: a baseline was found and lesions were read.

        An assessment without either (every measurement lost, no scan before treatment) is
        written as NE but is not counted as assessed (docs/fhir/data-integrity.md).
        """
        found = self.assessment
        return found is not None and found.baseline_date is not None and bool(found.lesions)

    @property
    def not_assessed_reason(self) -> str | None:
        """Why the patient is not counted as assessed: the code of its first error issue (the
        input's come first, so the cause before its consequence), else its first warning."""
        if self.lesion_data_used:
            return None
        for severity in ("error", "warning"):
            for issue in self.issues:
                if issue.severity == severity:
                    return issue.code
        return "no-lesion-data"


def not_assessed_reasons(outcomes: Iterable[PatientOutcome]) -> dict[str, int]:
    """How many patients were not assessed, by reason (`PatientOutcome.not_assessed_reason`)."""
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        reason = outcome.not_assessed_reason
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items()))


class AssessPatients:
    """Run the response engine over already-read patients (no I/O)."""

    def __init__(self, params: AssessmentParameters, *, key_salt: str) -> None:
        self._params = params
        self._salt = key_salt

    def one(self, patient: PatientInput, *, as_of: date) -> PatientOutcome:
        issues = list(patient.issues)
        if patient.timeline is None:
            return PatientOutcome(patient, None, tuple(issues))
        try:
            assessment = assess(patient.timeline, self._params, as_of=as_of)
        except Exception:  # a domain exception is a bug: report it for this patient only
            log.exception("assessment.failed", patient_key=patient_key(patient.ref.patient_id, self._salt))
            issues.append(
                DataIssue(
                    "error",
                    "assessment-failed",
                    "The response engine failed on this patient; the error was logged",
                    f"Patient/{patient.ref.patient_id}",
                )
            )
            return PatientOutcome(patient, None, tuple(issues))
        return PatientOutcome(patient, assessment, tuple(issues) + assessment.issues)

    def __call__(self, patients: Sequence[PatientInput], *, as_of: date) -> list[PatientOutcome]:
        return [self.one(p, as_of=as_of) for p in patients]


@dataclass(slots=True)
class SyncReport:
    run_id: str
    patients_seen: int = 0
    patients_assessed: int = 0
    patients_failed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    issues: list[DataIssue] = field(default_factory=list)
    elapsed_s: float = 0.0
    alerts_recorded: int = 0  # new outbox alerts
    writes_failed: int = 0  # patients assessed whose results did not all reach the server
    permissions: list[str] = field(default_factory=list)  # each refused permission, once
    previous_run: RunState | None = None  # the run before this one, as the store last saw it
    stale_runs_closed: int = 0  # runs left `running` too long (a killed process), now marked failed
    # Patients not counted as assessed (in `patients_failed`), by reason: `not_assessed_reasons`.
    not_assessed: dict[str, int] = field(default_factory=dict)
    patients_leased_elsewhere: int = 0  # skipped: another sync run holds the patient's lease


class SyncPatients:
    """Pull patients from the FHIR server, assess them and write the results back.

    Patients are processed with bounded concurrency; results are recorded in the store after
    each write. Re-running is safe: the writer uses conditional creates on our identifiers.
    With `leases`, syncs of several processes share the work: a patient is read, assessed and
    written only by the run holding its lease; the others skip it (`patients_leased_elsewhere`).
    Leases end when the run's patients are done (or expire, if the process dies); a run started
    later takes them again.
    """

    def __init__(
        self,
        source: MeasurementSource,
        writer: AssessmentWriter,
        store: AssessmentStore | None,
        assessor: AssessPatients,
        *,
        concurrency: int = 8,
        key_salt: str,
        plan_alerts: Callable[[PatientAssessment], Sequence[AlertRecord]] | None = None,
        stale_run_s: float = 0.0,
        leases: PatientLeases | None = None,
    ) -> None:
        self._leases = leases
        self._source = source
        self._writer = writer
        self._store = store
        self._assessor = assessor
        self._concurrency = concurrency
        self._salt = key_salt
        # Alerts are recorded with the assessments in one transaction: only a store
        # that can do that may be combined with an alert planner.
        if plan_alerts is not None and not isinstance(store, OutboxAssessmentStore):
            raise TypeError("alerts need a store with record_with_alerts (transactional outbox)")
        self._plan_alerts = plan_alerts
        self._stale_run_s = stale_run_s  # runs `running` for longer are marked failed (0: never)

    async def __call__(
        self,
        *,
        as_of: date,
        since: datetime | None = None,
        only: Sequence[PatientRef] | None = None,
        progress: Callable[[int], None] | None = None,
        trigger: str = "sync",
    ) -> SyncReport:
        report = SyncReport(run_id=uuid.uuid4().hex)
        started = time.perf_counter()
        if self._store is not None:
            if self._stale_run_s > 0:
                report.stale_runs_closed = await self._store.close_stale_runs(self._stale_run_s)
            report.previous_run = await self._store.last_run()
            await self._store.start_run(trigger, run_id=report.run_id)
        try:
            await self._run(report, as_of=as_of, since=since, only=only, progress=progress)
        except BaseException as exc:
            # Aborted (server gone, interrupted, a bug): the run is closed as failed, never left running.
            if self._store is not None:
                with anyio.CancelScope(shield=True):
                    await self._finish(report, aborted=True)
            log.warning("sync.aborted", run_id=report.run_id, error=_innermost_error_name(exc))
            raise
        report.elapsed_s = time.perf_counter() - started
        log.info(
            "sync.finished",
            run_id=report.run_id,
            patients=report.patients_seen,
            assessed=report.patients_assessed,
            failed=report.patients_failed,
            writes_failed=report.writes_failed,
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            elapsed_ms=round(report.elapsed_s * 1000),
        )
        return report

    async def _finish(self, report: SyncReport, *, aborted: bool) -> None:
        if self._store is None:
            return
        await self._store.finish_run(
            report.run_id,
            patients_total=report.patients_seen,
            patients_assessed=report.patients_assessed,
            patients_failed=report.patients_failed,
            observations_created=report.created,
            observations_unchanged=report.unchanged,
            aborted=aborted,
        )

    async def _run(
        self,
        report: SyncReport,
        *,
        as_of: date,
        since: datetime | None,
        only: Sequence[PatientRef] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        limiter = anyio.CapacityLimiter(self._concurrency)
        run_started_at = clock.now()
        assessed: list[PatientAssessment] = []

        async def handle(ref: PatientRef) -> None:
            async with limiter:
                if self._leases is not None and not await self._leases.acquire(
                    ref.patient_id, report.run_id, run_started_at
                ):
                    report.patients_leased_elsewhere += 1
                    return
                outcome = await self._one(ref, as_of=as_of, report=report)
            if outcome is not None:
                assessed.append(outcome)
            if progress is not None:
                progress(1)

        async with anyio.create_task_group() as tg:
            if only is not None:
                for ref in only:
                    report.patients_seen += 1
                    tg.start_soon(handle, ref)
            else:
                async for ref in self._source.patients(since=since):
                    report.patients_seen += 1
                    tg.start_soon(handle, ref)
        if self._leases is not None:
            await self._leases.release(report.run_id)
        if self._store is not None:
            if self._plan_alerts is not None and isinstance(self._store, OutboxAssessmentStore):
                alerts = [alert for a in assessed for alert in self._plan_alerts(a)]
                report.alerts_recorded = await self._store.record_with_alerts(
                    assessed, run_id=report.run_id, alerts=alerts
                )
            elif assessed:
                await self._store.record(assessed, run_id=report.run_id)
            await self._finish(report, aborted=False)

    async def _one(self, ref: PatientRef, *, as_of: date, report: SyncReport) -> PatientAssessment | None:
        key = patient_key(ref.patient_id, self._salt)
        try:
            patient = await self._source.timeline_for(ref)
        except (UpstreamRejected, UpstreamNotFound) as exc:
            # One patient the server will not give us is reported; the run goes on.
            # An unavailable server (UpstreamUnavailable) ends the run instead.
            report.patients_failed += 1
            report.not_assessed["patient-unreadable"] = report.not_assessed.get("patient-unreadable", 0) + 1
            report.issues.append(
                DataIssue("error", "patient-unreadable", exc.detail, f"Patient/{ref.patient_id}")
            )
            log.warning("sync.patient_unreadable", patient_key=key, problem=exc.problem_type)
            return None
        outcome = self._assessor.one(patient, as_of=as_of)
        report.issues.extend(outcome.issues)
        reason = outcome.not_assessed_reason
        if reason is not None:
            report.patients_failed += 1
            report.not_assessed[reason] = report.not_assessed.get(reason, 0) + 1
        if outcome.assessment is None:
            log.info("sync.patient_skipped", patient_key=key, issues=len(outcome.issues))
            return None
        summary = await self._writer.write(outcome.assessment, patient, run_id=report.run_id)
        report.created += summary.created
        report.updated += summary.updated
        report.unchanged += summary.unchanged
        report.issues.extend(summary.issues)
        if summary.failure is not None:
            # Not recorded (nor alerted): the next run writes it again, from what is on the server.
            if reason is None:  # a patient not assessed is already counted as failed
                report.patients_failed += 1
            report.writes_failed += 1
            if summary.permission is not None and summary.permission not in report.permissions:
                report.permissions.append(summary.permission)
                log.error("sync.write_forbidden", permission=summary.permission)
            log.warning("sync.write_failed", patient_key=key, created=summary.created)
            return None
        if reason is None:
            report.patients_assessed += 1
        log.info(
            "assessment.written",
            patient_key=key,
            response_group=outcome.assessment.response_group.value,
            created=summary.created,
            unchanged=summary.unchanged,
        )
        return outcome.assessment


def _innermost_error_name(error: BaseException) -> str:
    """The type of what went wrong, looking inside the exception groups that task groups raise."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return type(error).__name__
