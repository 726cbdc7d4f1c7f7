"""Alert outbox: clinician alerts recorded once, delivered later with retries.

Contract section 3: each alert is sent once per patient, finding and timepoint, whatever the
number of re-runs. `record_alert` therefore inserts with `ON CONFLICT (dedup_key) DO NOTHING`
and says whether the row is new; the dedup key is `<fhir patient id>/<finding>/<timepoint date>`.

Decision (timepoint in the key): the timepoint DATE, not its index, identifies the timepoint:
an index shifts when an earlier scan is added later, a date does not.

Lifecycle: `pending` (due at `next_attempt_at`) → `delivered`; or `mark_failed` with a
`retry_at` (stays `pending`, attempts + 1) or without one (`failed`, final); `held` rows are
recorded but not due: `hold` may give a re-check time (`next_attempt_at`), at which
`release_rechecks` makes the row due again (the delivery worker calls it on each pass when
`ONCORESPONSE_ALERT_HELD_RECHECK_S` > 0); a row held without one (`NEVER`) waits for `release`. `due_alerts` assumes one dispatcher; `claim_due` lets
several workers share the table: it moves each claimed row's `next_attempt_at` one lease ahead
with a conditional UPDATE, so a row is handed to one worker at a time and a crashed worker's
claim expires by itself (the alert is then due again and re-delivered idempotently).

Delivery state (migration 0002): `channels_json` maps a channel name (``fhir``,
``webhook:<hash>``) to what that channel did (`record_channel`), so a retry repeats only the
channels that have not succeeded; `hold` parks an alert with a reason (e.g. no responsible
clinician found), `release` makes a held or failed alert due again, `acknowledge` records who
acknowledged it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final

import anyio.to_thread
from sqlalchemy import Engine, case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

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
    channels: dict[str, Any] | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


ABANDONED_ERROR = "the delivery worker stopped during this attempt (its claim expired)"


# `next_attempt_at` of a held alert that no re-check releases (only `release` does).
NEVER: Final = datetime(9999, 1, 1, tzinfo=UTC)


def insert_alert(
    session: Session,
    *,
    fhir_patient_id: str,
    patient_key_value: str,
    kind: str,
    timepoint_date: date,
    payload: Mapping[str, Any],
    now: datetime,
    held: bool = False,
) -> int | None:
    """INSERT one alert in the caller's transaction unless its dedup key exists; the new id or None.

    Shared by `AlertOutboxRepository.record_alert` and `AssessmentRepository.record_with_alerts`
    (which records alerts in the same transaction as the assessments: the transactional outbox).
    """
    check_fhir_id(fhir_patient_id)
    insert = dialect_insert(session, AlertOutboxRow)
    statement = insert.values(
        dedup_key=alert_dedup_key(fhir_patient_id, kind, timepoint_date),
        patient_key=patient_key_value,
        fhir_patient_id=fhir_patient_id,
        kind=kind,
        payload_json=dict(payload),
        status=(AlertStatus.HELD if held else AlertStatus.PENDING).value,
        attempts=0,
        next_attempt_at=NEVER if held else now,
        created_at=now,
    ).on_conflict_do_nothing(index_elements=["dedup_key"])
    # RETURNING yields the new id, or no row when the key already existed.
    inserted: int | None = session.execute(statement.returning(AlertOutboxRow.id)).scalar_one_or_none()
    return inserted


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
        channels=dict(row.channels_json) if row.channels_json is not None else None,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
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
        with self._sessions.begin() as session:
            inserted = insert_alert(
                session,
                fhir_patient_id=fhir_patient_id,
                patient_key_value=patient_key(fhir_patient_id, self._salt),
                kind=kind,
                timepoint_date=timepoint_date,
                payload=payload,
                now=self._clock(),
                held=held,
            )
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
            row.lease_token = None

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
            row.lease_token = None
            if retry_at is None:
                row.status = AlertStatus.FAILED.value
            else:
                row.status = AlertStatus.PENDING.value
                row.next_attempt_at = retry_at

    # -- delivery -----------------------------------------------------------------
    def claim_due(self, *, limit: int = 50, lease_s: float = 300.0) -> list[OutboxAlert]:
        """Due pending alerts, each claimed for `lease_s` seconds by this caller (see module doc).

        A row another worker claimed a moment earlier is skipped (its conditional UPDATE
        matches no row). The lease is released by `mark_delivered`, `mark_failed`, `hold` or
        `give_up`; if the worker dies first, the row is due again when the lease runs out, and
        the claim that finds the stale lease counts the dead worker's try as a failed attempt
        (`ABANDONED_ERROR`), so an alert that kills its worker every time is not retried forever:
        the delivery worker gives it up after the schedule's last attempt (`give_up`).
        """
        now = self._clock()
        claimed: list[OutboxAlert] = []
        for alert in self.due_alerts(limit=limit):
            token = uuid.uuid4().hex
            # SET expressions read the row as it was before the UPDATE (SQL standard; SQLite and
            # PostgreSQL alike), so `abandoned` sees the dead worker's token, not the new one.
            abandoned = AlertOutboxRow.lease_token.is_not(None)
            with self._sessions.begin() as session:
                result = session.execute(
                    update(AlertOutboxRow)
                    .where(
                        AlertOutboxRow.id == alert.id,
                        AlertOutboxRow.status == AlertStatus.PENDING.value,
                        AlertOutboxRow.next_attempt_at == alert.next_attempt_at,
                    )
                    .values(
                        lease_token=token,
                        next_attempt_at=now + timedelta(seconds=lease_s),
                        attempts=case(
                            (abandoned, AlertOutboxRow.attempts + 1), else_=AlertOutboxRow.attempts
                        ),
                        last_error=case((abandoned, ABANDONED_ERROR), else_=AlertOutboxRow.last_error),
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) == 1:
                    row = session.get(AlertOutboxRow, alert.id, populate_existing=True)
                    if row is not None:
                        claimed.append(_alert(row))
        return claimed

    def give_up(self, alert_id: int, error: str) -> None:
        """Stop trying an alert whose attempts are used up (status `failed`, final; attempts kept)."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            row.status = AlertStatus.FAILED.value
            row.last_error = error[:LAST_ERROR_MAX_CHARS]
            row.lease_token = None

    def record_channel(self, alert_id: int, channel: str, state: Mapping[str, Any]) -> None:
        """Remember what one delivery channel did for an alert (replaces that channel's entry)."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            channels = dict(row.channels_json or {})
            channels[channel] = dict(state)
            row.channels_json = channels

    def hold(self, alert_id: int, reason: str, *, recheck_at: datetime | None = None) -> None:
        """Park an alert that cannot be delivered as it is (e.g. no recipient): not due until
        released (`release`), or until `recheck_at` when given (`release_rechecks`).

        Decision: a hold is not a failed delivery, so `attempts` is not increased: a held alert
        keeps being re-checked, without limit, until it is delivered, released or acknowledged,
        instead of ending `failed` after the retry schedule's attempts."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            row.status = AlertStatus.HELD.value
            row.next_attempt_at = recheck_at or NEVER
            row.last_error = reason[:LAST_ERROR_MAX_CHARS]
            row.lease_token = None

    def release_rechecks(self) -> int:
        """Make due every held, unacknowledged alert whose re-check time has come; how many."""
        now = self._clock()
        with self._sessions.begin() as session:
            result = session.execute(
                update(AlertOutboxRow)
                .where(
                    AlertOutboxRow.status == AlertStatus.HELD.value,
                    AlertOutboxRow.next_attempt_at <= now,
                    AlertOutboxRow.acknowledged_at.is_(None),
                )
                .values(status=AlertStatus.PENDING.value, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def release(self, alert_id: int) -> OutboxAlert:
        """Make a held or failed alert due now (attempts are kept); other states are left alone."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            if row.status in (AlertStatus.HELD.value, AlertStatus.FAILED.value):
                row.status = AlertStatus.PENDING.value
                row.next_attempt_at = self._clock()
                row.lease_token = None
            return _alert(row)

    def acknowledge(self, alert_id: int, by: str) -> OutboxAlert:
        """Record the first acknowledgement (later ones keep the first time and person)."""
        with self._sessions.begin() as session:
            row = session.get(AlertOutboxRow, alert_id)
            if row is None:
                raise UnknownAlertError(alert_id)
            if row.acknowledged_at is None:
                row.acknowledged_at = self._clock()
                row.acknowledged_by = by[:200]
            return _alert(row)

    def list_alerts(
        self, *, status: AlertStatus | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[OutboxAlert], int]:
        """Alerts newest first (optionally of one status), and how many match in all."""
        query = select(AlertOutboxRow)
        counting = select(func.count()).select_from(AlertOutboxRow)
        if status is not None:
            query = query.where(AlertOutboxRow.status == status.value)
            counting = counting.where(AlertOutboxRow.status == status.value)
        with self._sessions() as session:
            rows = session.scalars(
                query.order_by(AlertOutboxRow.created_at.desc(), AlertOutboxRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            alerts = [_alert(row) for row in rows]
            total = session.scalar(counting) or 0
        return alerts, total


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

    async def claim_due(self, *, limit: int = 50, lease_s: float = 300.0) -> list[OutboxAlert]:
        return await anyio.to_thread.run_sync(
            partial(self.repository.claim_due, limit=limit, lease_s=lease_s)
        )

    async def record_channel(self, alert_id: int, channel: str, state: Mapping[str, Any]) -> None:
        await anyio.to_thread.run_sync(self.repository.record_channel, alert_id, channel, state)

    async def give_up(self, alert_id: int, error: str) -> None:
        await anyio.to_thread.run_sync(self.repository.give_up, alert_id, error)

    async def hold(self, alert_id: int, reason: str, *, recheck_at: datetime | None = None) -> None:
        await anyio.to_thread.run_sync(partial(self.repository.hold, alert_id, reason, recheck_at=recheck_at))

    async def release_rechecks(self) -> int:
        return await anyio.to_thread.run_sync(self.repository.release_rechecks)

    async def release(self, alert_id: int) -> OutboxAlert:
        return await anyio.to_thread.run_sync(self.repository.release, alert_id)

    async def acknowledge(self, alert_id: int, by: str) -> OutboxAlert:
        return await anyio.to_thread.run_sync(self.repository.acknowledge, alert_id, by)

    async def list_alerts(
        self, *, status: AlertStatus | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[OutboxAlert], int]:
        return await anyio.to_thread.run_sync(
            partial(self.repository.list_alerts, status=status, limit=limit, offset=offset)
        )
