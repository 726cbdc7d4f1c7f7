"""DeliverAlerts over the real SQLite outbox with in-memory channels.

bounded exponential retries; a failing channel is retried and then reported (state
`failed` with `last_error`), never lost; a channel that succeeded is not repeated; nobody to address
-> `held`; a crash between a channel's write and its bookkeeping leaves the alert due again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pytest

from service.adapters.alerts.outbox import SqlDeliveryOutbox
from service.adapters.persistence.outbox import SqlAlertOutbox
from service.adapters.persistence.tables import AlertStatus
from service.application.alerts import DeliverAlerts, RecipientUnknown, RetrySchedule
from service.application.errors import UpstreamUnavailable
from service.application.ports import PendingAlert
from tests.unit.alerts.conftest import Clock

TP = date(2024, 4, 30)
PAYLOAD = {"alert_id": "a" * 32, "scan": {"date": TP.isoformat(), "timepoint_index": 2}}


class RecordingChannel:
    """Succeeds, or fails `failures` times first, or never finds a recipient."""

    def __init__(self, name: str, *, failures: int = 0, no_recipient: bool = False) -> None:
        self.name = name
        self.failures = failures
        self.no_recipient = no_recipient
        self.calls: list[int] = []

    async def deliver(self, alert: PendingAlert) -> Mapping[str, Any]:
        self.calls.append(alert.id)
        if self.no_recipient:
            raise RecipientUnknown("nobody responsible")
        if self.failures > 0:
            self.failures -= 1
            raise UpstreamUnavailable("receiver down")
        return {"ref": f"Thing/{alert.id}"}


async def record(outbox: SqlAlertOutbox, patient: str = "p1") -> None:
    assert await outbox.record_alert(fhir_patient_id=patient, kind="DR", timepoint_date=TP, payload=PAYLOAD)


def deliverer(
    outbox: SqlAlertOutbox, clock: Clock, *channels: RecordingChannel, max_attempts: int = 4, **kw: Any
) -> DeliverAlerts:
    schedule = RetrySchedule(max_attempts=max_attempts, base_delay_s=30, max_delay_s=100)
    return DeliverAlerts(SqlDeliveryOutbox(outbox), channels, schedule=schedule, clock=clock, **kw)


async def test_a_delivered_alert_is_delivered_once(outbox: SqlAlertOutbox, clock: Clock) -> None:
    await record(outbox)
    fhir = RecordingChannel("fhir")
    deliver = deliverer(outbox, clock, fhir)
    assert (await deliver()).delivered == 1
    assert (await deliver()).attempted == 0  # nothing due any more
    (alert,), _ = await outbox.list_alerts()
    assert alert.status is AlertStatus.DELIVERED
    assert alert.channels is not None
    assert alert.channels["fhir"]["state"] == "delivered"
    assert alert.channels["fhir"]["ref"] == f"Thing/{alert.id}"
    assert fhir.calls == [alert.id]


async def test_retries_back_off_exponentially_up_to_the_cap_then_fail_and_stay_visible(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    await record(outbox)
    hook = RecordingChannel("webhook:x", failures=99)
    deliver = deliverer(outbox, clock, hook, max_attempts=4)
    waits = []
    for _ in range(4):
        start = clock.now
        report = await deliver()
        assert report.attempted == 1
        (alert,), _ = await outbox.list_alerts()
        if alert.status is AlertStatus.PENDING:
            waits.append((alert.next_attempt_at - start).total_seconds())
            assert (await deliver()).attempted == 0  # not due before its retry time
            clock.now = alert.next_attempt_at
    # 30 s, 60 s, then capped at 100 s; the 4th failure is final.
    assert waits == [30, 60, 100]
    (alert,), _ = await outbox.list_alerts(status=AlertStatus.FAILED)
    assert alert.attempts == 4
    assert alert.last_error is not None
    assert "receiver down" in alert.last_error
    clock.now += timedelta(days=30)
    assert (await deliver()).attempted == 0  # failed alerts are kept, not retried for ever


async def test_a_channel_that_succeeded_is_not_repeated_when_another_is_retried(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    await record(outbox)
    fhir, hook = RecordingChannel("fhir"), RecordingChannel("webhook:x", failures=1)
    deliver = deliverer(outbox, clock, fhir, hook)
    assert (await deliver()).retrying == 1
    clock.now += timedelta(seconds=30)
    assert (await deliver()).delivered == 1
    assert len(fhir.calls) == 1
    assert len(hook.calls) == 2


async def test_no_recipient_holds_the_alert_after_the_other_channels_ran_and_retry_releases_it(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    await record(outbox)
    fhir, hook = RecordingChannel("fhir", no_recipient=True), RecordingChannel("webhook:x")
    deliver = deliverer(outbox, clock, fhir, hook)
    assert (await deliver()).held == 1
    (alert,), total = await outbox.list_alerts(status=AlertStatus.HELD)
    assert total == 1
    assert alert.last_error is not None
    assert "nobody responsible" in alert.last_error
    assert alert.channels is not None
    assert alert.channels["webhook:x"]["state"] == "delivered"
    clock.now += timedelta(days=1)
    assert (await deliver()).attempted == 0  # held is never due by itself
    fhir.no_recipient = False  # e.g. the CareTeam was corrected
    await outbox.release(alert.id)
    assert (await deliver()).delivered == 1
    assert len(hook.calls) == 1  # the webhook had already been delivered


async def test_a_held_alert_is_checked_again_each_interval_and_reaches_the_oncologist_once_named(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    """Contract section 3: the responsible oncologist is told. Once the CareTeam names one, a held
    alert goes out at its next re-check, without a manual release; re-checks do not use up the
    retry schedule (more of them than `max_attempts` here), and the webhook is not repeated."""
    await record(outbox)
    fhir, hook = RecordingChannel("fhir", no_recipient=True), RecordingChannel("webhook:x")
    deliver = deliverer(outbox, clock, fhir, hook, max_attempts=2, held_recheck_s=3600)
    assert (await deliver()).held == 1
    clock.now += timedelta(seconds=3599)
    assert (await deliver()).attempted == 0  # not before its re-check time
    for _ in range(3):
        clock.now += timedelta(seconds=3600)
        assert (await deliver()).held == 1
    fhir.no_recipient = False  # the CareTeam was corrected
    clock.now += timedelta(seconds=3600)
    assert (await deliver()).delivered == 1
    assert len(fhir.calls) == 5
    assert len(hook.calls) == 1
    (alert,), _ = await outbox.list_alerts()
    assert alert.status is AlertStatus.DELIVERED


async def test_an_acknowledged_held_alert_is_not_checked_again(outbox: SqlAlertOutbox, clock: Clock) -> None:
    await record(outbox)
    fhir = RecordingChannel("fhir", no_recipient=True)
    deliver = deliverer(outbox, clock, fhir, held_recheck_s=60)
    assert (await deliver()).held == 1
    (alert,), _ = await outbox.list_alerts()
    await outbox.acknowledge(alert.id, "oncologist-on-call")
    clock.now += timedelta(days=1)
    assert (await deliver()).attempted == 0
    assert len(fhir.calls) == 1


async def test_a_crash_after_a_channel_wrote_leaves_the_alert_due_once_the_claim_expires(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    await record(outbox)
    fhir = RecordingChannel("fhir")

    class Crash(BaseException):
        pass

    async def crash(alert: PendingAlert, channel: str) -> None:
        raise Crash

    crashing = deliverer(outbox, clock, fhir, lease_s=120, after_channel=crash)
    with pytest.raises(Crash):
        await crashing()
    restarted = deliverer(outbox, clock, fhir, lease_s=120)
    assert (await restarted()).attempted == 0  # still claimed by the dead worker
    clock.now += timedelta(seconds=121)
    assert (await restarted()).delivered == 1
    assert len(fhir.calls) == 2  # written twice: the channel must be idempotent (FHIR conditional create)


async def test_two_workers_never_claim_the_same_alert(outbox: SqlAlertOutbox) -> None:
    await record(outbox)
    first = await outbox.claim_due(lease_s=60)
    second = await outbox.claim_due(lease_s=60)
    assert len(first) == 1
    assert second == []


async def test_an_alert_that_kills_its_worker_every_time_is_given_up_after_the_last_attempt(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    # A poison alert: every worker that claims it dies before recording anything. Each expired
    # claim counts as a failed attempt, so after `max_attempts` claims it is `failed` and visible
    # (GET /alerts), not re-claimed every lease for ever.
    await record(outbox)
    fhir = RecordingChannel("fhir")

    class Crash(Exception):
        pass

    async def die(claimed: object) -> None:
        raise Crash

    for attempt in range(3):
        with pytest.raises(Crash):
            await deliverer(outbox, clock, fhir, max_attempts=3, lease_s=60, after_claim=die)()
        (alert,), _ = await outbox.list_alerts()
        assert alert.status is AlertStatus.PENDING
        assert alert.attempts == attempt  # the claim that finds a stale lease counts the dead try
        clock.now += timedelta(seconds=61)
    report = await deliverer(outbox, clock, fhir, max_attempts=3, lease_s=60)()
    assert report.failed == 1
    assert fhir.calls == []  # never delivered by a worker that lived: given up, not tried again
    (alert,), _ = await outbox.list_alerts(status=AlertStatus.FAILED)
    assert alert.attempts == 3
    assert alert.last_error is not None
    assert "gave up after 3 attempts" in alert.last_error
    clock.now += timedelta(days=1)
    assert (await deliverer(outbox, clock, fhir, max_attempts=3)()).attempted == 0


async def test_an_alert_whose_worker_died_once_is_delivered_with_that_attempt_counted(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    await record(outbox)
    fhir = RecordingChannel("fhir")

    async def die(claimed: object) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        await deliverer(outbox, clock, fhir, lease_s=60, after_claim=die)()
    clock.now += timedelta(seconds=61)
    assert (await deliverer(outbox, clock, fhir, lease_s=60)()).delivered == 1
    (alert,), _ = await outbox.list_alerts(status=AlertStatus.DELIVERED)
    assert alert.attempts == 2  # the dead worker's try and the successful one
