"""Alert outbox: clinician alerts recorded once, delivered later with retries.

Contract section 3: each alert is sent once per patient, finding and timepoint, whatever the
number of re-runs. `record_alert` therefore inserts with `ON CONFLICT (dedup_key) DO NOTHING`
and says whether the row is new; the dedup key is `<fhir patient id>/<finding>/<timepoint date>`.

Decision (timepoint in the key): the timepoint DATE, not its index, identifies the timepoint:
an index shifts when an earlier scan is added later, a date does not.

Lifecycle: `pending` (due at `next_attempt_at`) → `delivered`; or `mark_failed` with a
`retry_at` (stays `pending`, attempts + 1) or without one (`failed`, final); `held` rows are
recorded but never due. One dispatcher is assumed (no row locking between `due_alerts` and
`mark_*`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from service.adapters.persistence.database import dialect_insert, utc_now
from service.adapters.persistence.keys import check_fhir_id, patient_key
from service.adapters.persistence.tables import AlertOutboxRow, AlertStatus

LAST_ERROR_MAX_CHARS = 1000


class UnknownAlertError(LookupError):
    """`mark_delivered` or `mark_failed` named an alert id that does not exist."""


def alert_dedup_key(fhir_patient_id: str, kind: str, timepoint_date: date) -> str:
    """`<patient>/<finding>/<timepoint date>`, e.g. ``p-17/DR/2024-05-02``."""
    return f"{fhir_patient_id}/{kind}/{timepoint_date.isoformat()}"


@dataclass(frozen=True, slots=True)
class OutboxAlert:
    id: int
    dedup_key: str
    patient_key: str
    fhir_patient_id: str
    kind: str
    payload: dict[str, Any]
    status: AlertStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _alert(row: AlertOutboxRow) -> OutboxAlert:
    return OutboxAlert(
        id=row.id,
        dedup_key=row.dedup_key,
        patient_key=row.patient_key,
        fhir_patient_id=row.fhir_patient_id,
        kind=row.kind,
        payload=row.payload_json,
        status=AlertStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


class AlertOutboxRepository:
    """Synchronous repository of the `alert_outbox` table."""

    def __init__(
        self, engine: Engine, *, patient_key_salt: str, clock: Callable[[], datetime] = utc_now
    ) -> None:
        if not patient_key_salt:
            raise ValueError("patient key salt must not be empty")
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._salt = patient_key_salt
        self._clock = clock

    def record_alert(
        self,
        *,
        fhir_patient_id: str,
        kind: str,
        timepoint_date: date,
        payload: Mapping[str, Any],
        held: bool = False,
    ) -> bool:
        """Record an alert unless the same patient, finding and timepoint is already recorded.

        Returns True when a new row was inserted, False when it was a duplicate (whatever the
        existing row's status). A new alert is due at once, or `held` if asked.
        """
        check_fhir_id(fhir_patient_id)
        now = self._clock()
        with self._sessions.begin() as session:
            insert = dialect_insert(session, AlertOutboxRow)
            statement = insert.values(
                dedup_key=alert_dedup_key(fhir_patient_id, kind, timepoint_date),
                patient_key=patient_key(fhir_patient_id, self._salt),
                fhir_patient_id=fhir_patient_id,
                kind=kind,
                payload_json=dict(payload),
                status=(AlertStatus.HELD if held else AlertStatus.PENDING).value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            ).on_conflict_do_nothing(index_elements=["dedup_key"])
            # RETURNING yields the new id, or no row when the key already existed.
            inserted = session.execute(statement.returning(AlertOutboxRow.id)).scalar_one_or_none()
            return inserted is not None

    def due_alerts(self, *, limit: int = 100) -> list[OutboxAlert]:
        """Pending alerts whose `next_attempt_at` has come, oldest due first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(AlertOutboxRow)
                .where(
                    AlertOutboxRow.status == AlertStatus.PENDING.value,
                    AlertOutboxRow.next_attempt_at <= self._clock(),
                )
                .order_by(AlertOutboxRow.next_attempt_at, AlertOutboxRow.id)
                .limit(limit)
            )
            return [_alert(row) for row in rows]

    def get(self, alert_id: int) -> OutboxAlert | None:
        with self._sessions() as session:
            row = session.get(AlertOutboxRow, alert_id)
            return _alert(row) if row is not None else None

    def mark_delivered(self, alert_id: int) -> None:
        """Record a successful delivery attempt."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            row.status = AlertStatus.DELIVERED.value
            row.attempts += 1
            row.delivered_at = self._clock()

    def mark_failed(self, alert_id: int, error: str, *, retry_at: datetime | None = None) -> None:
        """Record a failed delivery attempt: retry at `retry_at`, or give up when it is None.

        `error` must not contain patient identifiers (it is kept, cut to 1000 characters).
        """
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            row.attempts += 1
            row.last_error = error[:LAST_ERROR_MAX_CHARS]
            if retry_at is None:
                row.status = AlertStatus.FAILED.value
            else:
                row.status = AlertStatus.PENDING.value
                row.next_attempt_at = retry_at


class SqlAlertOutbox:
    """Async facade over `AlertOutboxRepository` (same methods, run in a worker thread)."""

    def __init__(
        self, engine: Engine, *, patient_key_salt: str, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.repository = AlertOutboxRepository(engine, patient_key_salt=patient_key_salt, clock=clock)

    async def record_alert(
        self,
        *,
        fhir_patient_id: str,
        kind: str,
        timepoint_date: date,
        payload: Mapping[str, Any],
        held: bool = False,
    ) -> bool:
        return await anyio.to_thread.run_sync(
            partial(
                self.repository.record_alert,
                fhir_patient_id=fhir_patient_id,
                kind=kind,
                timepoint_date=timepoint_date,
                payload=payload,
                held=held,
            )
        )

    async def due_alerts(self, *, limit: int = 100) -> list[OutboxAlert]:
        return await anyio.to_thread.run_sync(partial(self.repository.due_alerts, limit=limit))

    async def get(self, alert_id: int) -> OutboxAlert | None:
        return await anyio.to_thread.run_sync(self.repository.get, alert_id)

    async def mark_delivered(self, alert_id: int) -> None:
        await anyio.to_thread.run_sync(self.repository.mark_delivered, alert_id)

    async def mark_failed(self, alert_id: int, error: str, *, retry_at: datetime | None = None) -> None:
        await anyio.to_thread.run_sync(
            partial(self.repository.mark_failed, alert_id, error, retry_at=retry_at)
        )
