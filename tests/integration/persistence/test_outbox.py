"""Alert outbox: one alert per patient, finding and timepoint (contract section 3), with retries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from service.adapters.persistence.database import make_engine
from service.adapters.persistence.keys import patient_key
from service.adapters.persistence.outbox import (
    AlertOutboxRepository,
    SqlAlertOutbox,
    UnknownAlertError,
    alert_dedup_key,
)
from service.adapters.persistence.tables import AlertOutboxRow, AlertStatus

SALT = "test-salt-not-a-secret"
TOKYO = ZoneInfo("Asia/Tokyo")
TP = date(2024, 5, 2)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2024, 5, 3, 8, 30, tzinfo=TOKYO))


@pytest.fixture
def outbox(engine: Engine, clock: Clock) -> AlertOutboxRepository:
    return AlertOutboxRepository(engine, patient_key_salt=SALT, clock=clock)


def dr_alert(outbox: AlertOutboxRepository, patient: str = "p1", kind: str = "DR", tp: date = TP) -> bool:
    return outbox.record_alert(
        fhir_patient_id=patient, kind=kind, timepoint_date=tp, payload={"finding": kind, "timepoint_index": 2}
    )


def outbox_rows(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(AlertOutboxRow)) or 0


def test_an_alert_is_new_once_per_patient_finding_and_timepoint(outbox: AlertOutboxRepository) -> None:
    assert dr_alert(outbox) is True
    assert dr_alert(outbox) is False  # a re-run finds the same DR at the same timepoint
    assert dr_alert(outbox, tp=date(2024, 7, 1)) is True  # another timepoint
    assert dr_alert(outbox, kind="PsPD") is True  # another finding
    assert dr_alert(outbox, patient="p2") is True  # another patient
    assert {a.dedup_key for a in outbox.due_alerts()} == {
        "p1/DR/2024-05-02",
        "p1/DR/2024-07-01",
        "p1/PsPD/2024-05-02",
        "p2/DR/2024-05-02",
    }


def test_dedup_survives_a_restart(database_url: str, engine: Engine) -> None:
    assert dr_alert(AlertOutboxRepository(engine, patient_key_salt=SALT)) is True
    engine.dispose()
    restarted = make_engine(database_url)
    try:
        again = AlertOutboxRepository(restarted, patient_key_salt=SALT)
        assert dr_alert(again) is False
        assert outbox_rows(restarted) == 1
    finally:
        restarted.dispose()


def test_a_delivered_alert_is_not_recorded_again(outbox: AlertOutboxRepository) -> None:
    dr_alert(outbox)
    (alert,) = outbox.due_alerts()
    outbox.mark_delivered(alert.id)
    assert dr_alert(outbox) is False
    assert outbox.due_alerts() == []


def test_new_alert_is_due_at_once_with_aware_utc_timestamps(
    outbox: AlertOutboxRepository, clock: Clock
) -> None:
    dr_alert(outbox)
    (alert,) = outbox.due_alerts()
    assert alert.status is AlertStatus.PENDING
    assert alert.attempts == 0
    assert alert.patient_key == patient_key("p1", SALT)
    assert alert.payload == {"finding": "DR", "timepoint_index": 2}
    # 08:30 in Tokyo (UTC+9) is 23:30 UTC the day before: the same instant, returned in UTC.
    assert alert.created_at == datetime(2024, 5, 2, 23, 30, tzinfo=UTC)
    assert alert.created_at.utcoffset() == timedelta(0)
    assert alert.next_attempt_at == clock.now


def test_failed_delivery_is_retried_when_due_and_then_delivered(
    outbox: AlertOutboxRepository, clock: Clock
) -> None:
    dr_alert(outbox)
    (alert,) = outbox.due_alerts()
    outbox.mark_failed(alert.id, "recipient endpoint answered 503", retry_at=clock.now + timedelta(minutes=5))
    assert outbox.due_alerts() == []  # not before its retry time
    clock.now += timedelta(minutes=5)
    (retry,) = outbox.due_alerts()
    assert (retry.id, retry.attempts, retry.last_error) == (alert.id, 1, "recipient endpoint answered 503")
    outbox.mark_delivered(retry.id)
    delivered = outbox.get(retry.id)
    assert delivered is not None
    assert (delivered.status, delivered.attempts, delivered.delivered_at) == (
        AlertStatus.DELIVERED,
        2,
        clock.now,
    )
    assert outbox.due_alerts() == []


def test_giving_up_and_held_alerts_are_never_due(outbox: AlertOutboxRepository, clock: Clock) -> None:
    dr_alert(outbox, patient="p1")
    (alert,) = outbox.due_alerts()
    outbox.mark_failed(alert.id, "x" * 5000)
    assert outbox.record_alert(fhir_patient_id="p2", kind="DR", timepoint_date=TP, payload={}, held=True)
    clock.now += timedelta(days=365)
    assert outbox.due_alerts() == []
    failed = outbox.get(alert.id)
    assert failed is not None
    assert failed.status is AlertStatus.FAILED
    assert failed.last_error is not None
    assert len(failed.last_error) == 1000


def test_release_rechecks_makes_due_only_held_alerts_whose_recheck_time_has_come(
    outbox: AlertOutboxRepository, clock: Clock
) -> None:
    for patient in ("p1", "p2", "p3"):
        dr_alert(outbox, patient=patient)
    first, second, third = outbox.due_alerts()
    outbox.hold(first.id, "no recipient", recheck_at=clock.now + timedelta(hours=1))
    outbox.hold(second.id, "no recipient", recheck_at=clock.now + timedelta(hours=3))
    outbox.hold(third.id, "no recipient")  # no re-check time: only `release` makes it due
    assert outbox.record_alert(fhir_patient_id="p4", kind="DR", timepoint_date=TP, payload={}, held=True)
    assert outbox.due_alerts() == []
    clock.now += timedelta(hours=2)
    assert outbox.release_rechecks() == 1
    assert [a.id for a in outbox.due_alerts()] == [first.id]
    clock.now += timedelta(days=3650)
    assert outbox.release_rechecks() == 1  # the second; never the third nor the one held at record time
    assert {a.id for a in outbox.due_alerts()} == {first.id, second.id}
    held = outbox.get(third.id)
    assert held is not None
    assert held.status is AlertStatus.HELD
    assert held.attempts == 0  # a hold is not a failed delivery attempt


def test_due_alerts_come_oldest_first_and_respect_the_limit(
    outbox: AlertOutboxRepository, clock: Clock
) -> None:
    for i in range(3):
        dr_alert(outbox, patient=f"p{i}")
        clock.now += timedelta(seconds=1)
    assert [a.fhir_patient_id for a in outbox.due_alerts(limit=2)] == ["p0", "p1"]


def test_marking_an_unknown_alert_raises(outbox: AlertOutboxRepository) -> None:
    with pytest.raises(UnknownAlertError):
        outbox.mark_delivered(424242)
    with pytest.raises(UnknownAlertError):
        outbox.mark_failed(424242, "boom")


def test_dedup_key_names_patient_finding_and_timepoint_date() -> None:
    assert alert_dedup_key("p-17", "DR", date(2024, 5, 2)) == "p-17/DR/2024-05-02"


async def test_async_outbox_records_once_and_delivers(engine: Engine) -> None:
    async_outbox = SqlAlertOutbox(engine, patient_key_salt=SALT)
    assert (
        await async_outbox.record_alert(fhir_patient_id="p1", kind="DR", timepoint_date=TP, payload={})
        is True
    )
    assert (
        await async_outbox.record_alert(fhir_patient_id="p1", kind="DR", timepoint_date=TP, payload={})
        is False
    )
    (alert,) = await async_outbox.due_alerts()
    await async_outbox.mark_failed(alert.id, "timeout", retry_at=datetime.now(UTC) - timedelta(seconds=1))
    (again,) = await async_outbox.due_alerts()
    await async_outbox.mark_delivered(again.id)
    assert await async_outbox.due_alerts() == []
    done = await async_outbox.get(alert.id)
    assert done is not None
    assert done.status is AlertStatus.DELIVERED
