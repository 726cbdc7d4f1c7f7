"""AlertWorker: an alert committed by a run is delivered at once, not at the next periodic pass.

The periodic pass (ONCORESPONSE_ALERT_WORKER_INTERVAL_S, 30 s by default) is for retries only;
the run that records an alert wakes the worker (docs/operations/alert-latency.md).
"""

from __future__ import annotations

import time

import anyio

from service.adapters.alerts.outbox import SqlDeliveryOutbox
from service.adapters.persistence.outbox import SqlAlertOutbox
from service.application.alerts import AlertWorker, DeliverAlerts
from tests.unit.alerts.conftest import Clock
from tests.unit.alerts.test_deliver import RecordingChannel, record


async def until(condition: object, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.005)


async def test_woken_worker_delivers_a_new_alert_long_before_its_interval(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    channel = RecordingChannel("fhir")
    worker = AlertWorker(DeliverAlerts(SqlDeliveryOutbox(outbox), [channel], clock=clock), interval_s=3600)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await until(lambda: worker.passes == 1)  # the start-up pass found nothing
        await record(outbox)
        committed = time.monotonic()
        worker.wake()
        await until(lambda: len(channel.calls) == 1)
        delay = time.monotonic() - committed
        tg.cancel_scope.cancel()
    assert delay < 1.0  # not the 3600 s interval


async def test_without_a_wake_the_worker_waits_for_its_interval(outbox: SqlAlertOutbox, clock: Clock) -> None:
    channel = RecordingChannel("fhir")
    worker = AlertWorker(DeliverAlerts(SqlDeliveryOutbox(outbox), [channel], clock=clock), interval_s=3600)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await until(lambda: worker.passes == 1)
        await record(outbox)  # recorded by another process: nobody wakes this worker
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert channel.calls == []
    assert worker.passes == 1


async def test_a_wake_during_a_pass_runs_another_pass_straight_after(
    outbox: SqlAlertOutbox, clock: Clock
) -> None:
    channel = RecordingChannel("fhir")
    deliver = DeliverAlerts(SqlDeliveryOutbox(outbox), [channel], clock=clock)
    in_pass = anyio.Event()
    release = anyio.Event()

    async def slow_claim(_batch: object) -> None:
        if worker.passes == 0:
            in_pass.set()
            await release.wait()

    worker = AlertWorker(deliver.with_hooks(after_claim=slow_claim), interval_s=3600)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await in_pass.wait()
        await record(outbox)  # committed after the running pass claimed its batch
        worker.wake()
        release.set()
        await until(lambda: worker.passes == 2, timeout=2.0)  # not the 3600 s interval
        tg.cancel_scope.cancel()
    assert channel.calls != []  # the first pass had claimed nothing: the second delivered it
