"""Assessment runs and the latest assessment of every patient.

`AssessmentRepository` is the synchronous, Session-based implementation; `SqlAssessmentStore`
is its async facade and implements the `AssessmentStore` port (each call runs in a worker
thread, see `database`). Both share the same method names.

`record` stores one row per patient (`patient_assessments`, primary key `fhir_patient_id`):
a patient seen again is updated in place (INSERT ... ON CONFLICT DO UPDATE), all patients of
one call in ONE transaction, so a failed write leaves the previous run's rows untouched.

Runs: `start_run` opens a run and `finish_run` closes it with its counts. Decision: `record`
also accepts a run id that was never started (the port only has `record`); such a run is
registered in the same transaction as `running`, with the store's `default_trigger` and the
number of patients written, and stays `running` until `finish_run` is called for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.adapters.persistence.database import dialect_insert, make_engine, utc_now
from service.adapters.persistence.keys import check_fhir_id, patient_key
from service.adapters.persistence.outbox import insert_alert
from service.adapters.persistence.summary import (
    assessment_document,
    fingerprint,
    first_dissociated_response,
)
from service.adapters.persistence.tables import (
    AssessmentRunRow,
    PatientAssessmentRow,
    RunStatus,
    RunTrigger,
    StoreVersionRow,
)
from service.application.ports import AlertRecord, RunState
from service.domain.results import DrTrigger, ImmuneResponse, PatientAssessment, Response, ResponseGroup


class UnknownRunError(LookupError):
    """`finish_run` named a run that does not exist."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    trigger: RunTrigger
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    patients_total: int
    patients_assessed: int
    patients_failed: int
    observations_created: int
    observations_unchanged: int


@dataclass(frozen=True, slots=True)
class StoredAssessment:
    """The stored summary of a patient's latest assessment.

    `result` is the whole `PatientAssessment` rendered by `summary.assessment_document`.
    """

    fhir_patient_id: str
    patient_key: str
    run_id: str
    assessed_at: datetime
    data_version: str
    response_group: ResponseGroup
    atypical: bool
    best_response: Response | ImmuneResponse | None
    best_response_confirmed: Response | ImmuneResponse | None
    immune_best_response: Response | ImmuneResponse | None
    dr_trigger: DrTrigger | None
    dr_timepoint_index: int | None
    pfs_days: int | None
    pfs_event: bool | None
    os_days: int | None
    os_event: bool | None
    result: dict[str, Any]


def _response(value: str | None) -> Response | ImmuneResponse | None:
    if value is None:
        return None
    try:
        return Response(value)
    except ValueError:
        return ImmuneResponse(value)


def _run_record(row: AssessmentRunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        trigger=RunTrigger(row.trigger),
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        patients_total=row.patients_total,
        patients_assessed=row.patients_assessed,
        patients_failed=row.patients_failed,
        observations_created=row.observations_created,
        observations_unchanged=row.observations_unchanged,
    )


def _stored(row: PatientAssessmentRow) -> StoredAssessment:
    return StoredAssessment(
        fhir_patient_id=row.fhir_patient_id,
        patient_key=row.patient_key,
        run_id=row.run_id,
        assessed_at=row.assessed_at,
        data_version=row.data_version,
        response_group=ResponseGroup(row.response_group),
        atypical=row.atypical,
        best_response=_response(row.best_response),
        best_response_confirmed=_response(row.best_response_confirmed),
        immune_best_response=_response(row.immune_best_response),
        dr_trigger=DrTrigger(row.dr_trigger) if row.dr_trigger is not None else None,
        dr_timepoint_index=row.dr_timepoint_index,
        pfs_days=row.pfs_days,
        pfs_event=row.pfs_event,
        os_days=row.os_days,
        os_event=row.os_event,
        result=row.result_json,
    )


# Every column but the key is replaced when a patient is assessed again.
_UPDATED_ON_CONFLICT = tuple(
    c.name for c in PatientAssessmentRow.__table__.columns if c.name != "fhir_patient_id"
)


class AssessmentRepository:
    """Synchronous repository of runs and latest assessments."""

    def __init__(
        self,
        engine: Engine,
        *,
        patient_key_salt: str,
        default_trigger: RunTrigger = RunTrigger.SYNC,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not patient_key_salt:
            raise ValueError("patient key salt must not be empty")
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._salt = patient_key_salt
        self._default_trigger = RunTrigger(default_trigger)
        self._clock = clock

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self, trigger: RunTrigger | str, *, run_id: str | None = None, patients_total: int = 0
    ) -> str:
        """Open a run (status `running`) and return its id (a new UUID unless `run_id` is given)."""
        new_id = run_id or str(uuid.uuid4())
        with self._sessions.begin() as session:
            session.add(
                AssessmentRunRow(
                    id=new_id,
                    started_at=self._clock(),
                    trigger=RunTrigger(trigger).value,
                    patients_total=patients_total,
                    patients_assessed=0,
                    patients_failed=0,
                    observations_created=0,
                    observations_unchanged=0,
                    status=RunStatus.RUNNING.value,
                )
            )
        return new_id

    def finish_run(
        self,
        run_id: str,
        *,
        patients_total: int,
        patients_assessed: int,
        patients_failed: int,
        observations_created: int = 0,
        observations_unchanged: int = 0,
        status: RunStatus | None = None,
    ) -> RunRecord:
        """Close a run with its counts. Without `status`: `partial` if any patient failed, else `succeeded`."""
        if status is None:
            status = RunStatus.PARTIAL if patients_failed else RunStatus.SUCCEEDED
        with self._sessions.begin() as session:
            row = session.get(AssessmentRunRow, run_id)
            if row is None:
                raise UnknownRunError(run_id)
            row.finished_at = self._clock()
            row.patients_total = patients_total
            row.patients_assessed = patients_assessed
            row.patients_failed = patients_failed
            row.observations_created = observations_created
            row.observations_unchanged = observations_unchanged
            row.status = RunStatus(status).value
            return _run_record(row)

    def close_stale_runs(self, older_than_s: float) -> int:
        """Mark `failed` every run still `running` that started more than `older_than_s` ago.

        A run that never closed although its process must have ended long ago (killed, host lost):
        nothing else would ever close it. Returns how many were marked.
        """
        now = self._clock()
        with self._sessions.begin() as session:
            result = session.execute(
                update(AssessmentRunRow)
                .where(AssessmentRunRow.status == RunStatus.RUNNING.value)
                .where(AssessmentRunRow.started_at < now - timedelta(seconds=older_than_s))
                .values(status=RunStatus.FAILED.value, finished_at=now)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._sessions() as session:
            row = session.get(AssessmentRunRow, run_id)
            return _run_record(row) if row is not None else None

    def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(AssessmentRunRow)
                .order_by(AssessmentRunRow.started_at.desc(), AssessmentRunRow.id)
                .limit(limit)
            )
            return [_run_record(row) for row in rows]

    # -- assessments ------------------------------------------------------------------------

    def _row(
        self, assessment: PatientAssessment, run_id: str, at: datetime, data_version: str | None
    ) -> dict[str, Any]:
        check_fhir_id(assessment.patient_id)
        document = assessment_document(assessment)
        best = assessment.best_response
        confirmed = assessment.best_response_confirmed
        immune = assessment.immune_best_response
        dr = first_dissociated_response(assessment)
        ends = assessment.endpoints
        return {
            "fhir_patient_id": assessment.patient_id,
            "patient_key": patient_key(assessment.patient_id, self._salt),
            "run_id": run_id,
            "assessed_at": at,
            "data_version": data_version or fingerprint(document),
            "response_group": assessment.response_group.value,
            "atypical": assessment.is_atypical,
            "best_response": best.response.value if best else None,
            "best_response_confirmed": confirmed.response.value if confirmed else None,
            "immune_best_response": immune.response.value if immune else None,
            "dr_trigger": dr.trigger.value if dr and dr.trigger else None,
            "dr_timepoint_index": dr.timepoint_index if dr else None,
            "pfs_days": ends.pfs_days,
            "pfs_event": ends.pfs_event,
            "os_days": ends.os_days,
            "os_event": ends.os_event,
            "result_json": document,
        }

    def record(
        self,
        assessments: Sequence[PatientAssessment],
        *,
        run_id: str,
        data_versions: Mapping[str, str] | None = None,
    ) -> int:
        """Upsert the latest assessment of each patient, all in one transaction.

        `data_versions` maps patient id to `summary.input_fingerprint(...)` of the inputs; a
        patient missing from it gets the fingerprint of its result. If one patient appears twice,
        the later assessment wins. A run id never started is registered (module docstring).
        Returns the number of patients written.
        """
        if not assessments:
            return 0
        with self._sessions.begin() as session:
            return self._record_in(session, assessments, run_id=run_id, data_versions=data_versions)

    def record_with_alerts(
        self,
        assessments: Sequence[PatientAssessment],
        *,
        run_id: str,
        alerts: Sequence[AlertRecord],
        data_versions: Mapping[str, str] | None = None,
    ) -> int:
        """`record` plus outbox rows, in ONE transaction (the transactional outbox of the alerts).

        Either the assessments and their alerts are all committed or none is, so an alert
        can never be lost between recording and delivery, nor exist without its assessment.
        An alert whose dedup key (patient/finding/timepoint date) exists is skipped. Returns
        the number of new alerts.
        """
        new = 0
        with self._sessions.begin() as session:
            if assessments:
                self._record_in(session, assessments, run_id=run_id, data_versions=data_versions)
            now = self._clock()
            for alert in alerts:
                inserted = insert_alert(
                    session,
                    fhir_patient_id=alert.patient_id,
                    patient_key_value=patient_key(alert.patient_id, self._salt),
                    kind=alert.kind,
                    timepoint_date=alert.timepoint_date,
                    payload=alert.payload,
                    now=now,
                )
                new += inserted is not None
        return new

    def _record_in(
        self,
        session: Session,
        assessments: Sequence[PatientAssessment],
        *,
        run_id: str,
        data_versions: Mapping[str, str] | None,
    ) -> int:
        versions = data_versions or {}
        at = self._clock()
        rows = {a.patient_id: self._row(a, run_id, at, versions.get(a.patient_id)) for a in assessments}
        register_run = (
            dialect_insert(session, AssessmentRunRow)
            .values(
                id=run_id,
                started_at=at,
                trigger=self._default_trigger.value,
                patients_total=len(rows),
                patients_assessed=len(rows),
                patients_failed=0,
                observations_created=0,
                observations_unchanged=0,
                status=RunStatus.RUNNING.value,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        session.execute(register_run)
        insert = dialect_insert(session, PatientAssessmentRow)
        statement = insert.on_conflict_do_update(
            index_elements=["fhir_patient_id"],
            set_={name: insert.excluded[name] for name in _UPDATED_ON_CONFLICT},
        )
        session.execute(statement, list(rows.values()))
        if rows:  # the store version changes in the same transaction (`version`)
            session.execute(
                update(StoreVersionRow)
                .where(StoreVersionRow.id == 1)
                .values(version=StoreVersionRow.version + 1, changed_at=at)
            )
        return len(rows)

    def latest(self, fhir_patient_id: str) -> StoredAssessment | None:
        with self._sessions() as session:
            row = session.get(PatientAssessmentRow, fhir_patient_id)
            return _stored(row) if row is not None else None

    def all_latest(self, *, batch_size: int = 500) -> Iterator[StoredAssessment]:
        """Every patient's latest assessment, ordered by patient id, fetched in batches.

        A generator: the session stays open until it is exhausted or closed.
        """
        with self._sessions() as session:
            rows = session.scalars(
                select(PatientAssessmentRow)
                .order_by(PatientAssessmentRow.fhir_patient_id)
                .execution_options(yield_per=batch_size)
            )
            for row in rows:
                yield _stored(row)

    def version(self) -> int:
        """The store version: increased by every transaction that writes patient assessments, so
        any new or re-assessed patient changes it, whatever the clocks of the writers say (one
        row, read in constant time; migration 0004)."""
        with self._sessions() as session:
            return session.scalar(select(StoreVersionRow.version).where(StoreVersionRow.id == 1)) or 0

    def count(self) -> int:
        """How many patients have a stored assessment."""
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(PatientAssessmentRow)) or 0

    def ping(self) -> bool:
        """True when the database answers a trivial query (for /readyz)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True


class SqlAssessmentStore:
    """Async facade over `AssessmentRepository`; implements `application.ports.AssessmentStore`.

    `all_latest` returns a list here (materialised in the worker thread); use
    `repository.all_latest()` from a thread to stream instead. `open` creates (and `close`
    disposes) an engine of its own; a store built on a given engine leaves it to its owner.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        patient_key_salt: str,
        default_trigger: RunTrigger = RunTrigger.SYNC,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = AssessmentRepository(
            engine, patient_key_salt=patient_key_salt, default_trigger=default_trigger, clock=clock
        )
        self._owns_engine = False

    @classmethod
    def open(
        cls,
        database_url: str,
        *,
        patient_key_salt: str,
        default_trigger: RunTrigger = RunTrigger.SYNC,
        clock: Callable[[], datetime] = utc_now,
    ) -> SqlAssessmentStore:
        """A store on a new engine for `database_url` (migrations are not run: see `migrate`)."""
        store = cls(
            make_engine(database_url),
            patient_key_salt=patient_key_salt,
            default_trigger=default_trigger,
            clock=clock,
        )
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Dispose of the engine if `open` created it."""
        if self._owns_engine:
            self.repository.engine.dispose()

    async def record(
        self,
        assessments: Sequence[PatientAssessment],
        *,
        run_id: str,
        data_versions: Mapping[str, str] | None = None,
    ) -> None:
        await anyio.to_thread.run_sync(
            partial(self.repository.record, assessments, run_id=run_id, data_versions=data_versions)
        )

    async def record_with_alerts(
        self,
        assessments: Sequence[PatientAssessment],
        *,
        run_id: str,
        alerts: Sequence[AlertRecord],
        data_versions: Mapping[str, str] | None = None,
    ) -> int:
        return await anyio.to_thread.run_sync(
            partial(
                self.repository.record_with_alerts,
                assessments,
                run_id=run_id,
                alerts=alerts,
                data_versions=data_versions,
            )
        )

    async def start_run(
        self, trigger: RunTrigger | str, *, run_id: str | None = None, patients_total: int = 0
    ) -> str:
        return await anyio.to_thread.run_sync(
            partial(self.repository.start_run, trigger, run_id=run_id, patients_total=patients_total)
        )

    async def finish_run(
        self,
        run_id: str,
        *,
        patients_total: int,
        patients_assessed: int,
        patients_failed: int,
        observations_created: int = 0,
        observations_unchanged: int = 0,
        status: RunStatus | None = None,
        aborted: bool = False,
    ) -> None:
        """Close a run; `aborted` (the run ended by an error or an interruption) marks it `failed`."""
        if aborted:
            status = RunStatus.FAILED
        await anyio.to_thread.run_sync(
            partial(
                self.repository.finish_run,
                run_id,
                patients_total=patients_total,
                patients_assessed=patients_assessed,
                patients_failed=patients_failed,
                observations_created=observations_created,
                observations_unchanged=observations_unchanged,
                status=status,
            )
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await anyio.to_thread.run_sync(self.repository.get_run, run_id)

    async def close_stale_runs(self, older_than_s: float) -> int:
        return await anyio.to_thread.run_sync(self.repository.close_stale_runs, older_than_s)

    async def last_run(self) -> RunState | None:
        """The latest run (the port's view of it), for a new run to report."""
        runs = await anyio.to_thread.run_sync(self.repository.recent_runs, 1)
        if not runs:
            return None
        run = runs[0]
        return RunState(run.id, run.status.value, run.started_at, run.finished_at, run.patients_failed)

    async def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        return await anyio.to_thread.run_sync(self.repository.recent_runs, limit)

    async def latest(self, fhir_patient_id: str) -> StoredAssessment | None:
        return await anyio.to_thread.run_sync(self.repository.latest, fhir_patient_id)

    async def all_latest(self) -> list[StoredAssessment]:
        return await anyio.to_thread.run_sync(lambda: list(self.repository.all_latest()))

    async def count(self) -> int:
        return await anyio.to_thread.run_sync(self.repository.count)

    async def ping(self) -> bool:
        return await anyio.to_thread.run_sync(self.repository.ping)
