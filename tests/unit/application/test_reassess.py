"""ReassessChangedPatients: debounced re-assessment from notifications, and the polling fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta

import anyio
import pytest

from service.application.assess import AssessPatients, SyncPatients
from service.application.errors import UpstreamUnavailable
from service.application.ports import PatientInput, PatientRef, ResourceChange
from service.application.reassess import ReassessChangedPatients, Resolver
from service.domain.parameters import AssessmentParameters
from tests.fakes import FakeAssessmentWriter, FakeMeasurementSource
from tests.unit.application.test_sync import partial_responder

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class CountingSource(FakeMeasurementSource):
    """Counts reads per patient; `changed` answers `patients(since=...)`; can be made unavailable."""

    def __init__(self, patients: Sequence[PatientInput]) -> None:
        super().__init__(patients)
        self.reads: list[str] = []
        self.since: list[datetime | None] = []
        self.changed: list[str] = []
        self.down = False

    async def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]:
        self.since.append(since)
        for pid in self.changed:
            yield PatientRef(pid)

    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        if self.down:
            raise UpstreamUnavailable("server down")
        self.reads.append(patient.patient_id)
        return await super().timeline_for(patient)


def make(
    source: CountingSource,
    resolver: Resolver | None = None,
    *,
    debounce_s: float = 10.0,
    retry_s: float = 60.0,
    overlap_s: float = 60.0,
) -> ReassessChangedPatients:
    sync = SyncPatients(
        source,
        FakeAssessmentWriter(),
        None,
        AssessPatients(AssessmentParameters(), key_salt="t"),
        key_salt="t",
    )
    return ReassessChangedPatients(
        sync,
        source,
        key_salt="t",
        today=lambda: date(2024, 6, 1),
        now=lambda: NOW,
        resolver=resolver,
        debounce_s=debounce_s,
        retry_s=retry_s,
        overlap_s=overlap_s,
    )


async def until(condition: object, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.01)


async def test_a_burst_for_one_patient_gives_one_reassessment() -> None:
    source = CountingSource([partial_responder("a"), partial_responder("b")])
    reassess = make(source, debounce_s=0.2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        for _ in range(5):
            reassess.schedule("a")
            await anyio.sleep(0.01)
        reassess.schedule("b")
        await until(lambda: reassess.reassessed >= 2)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert sorted(source.reads) == ["a", "b"]  # five notifications for a -> one read of a
    assert reassess.reassessed == 2


async def test_nothing_runs_before_the_debounce_window_ends() -> None:
    source = CountingSource([partial_responder("a")])
    reassess = make(source, debounce_s=10.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        reassess.schedule("a")
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert source.reads == []
    assert reassess.pending == 1


async def test_unavailable_server_puts_patients_back_and_the_loop_survives() -> None:
    source = CountingSource([partial_responder("a")])
    source.down = True
    reassess = make(source, debounce_s=0.0, retry_s=0.1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        reassess.schedule("a")
        await anyio.sleep(0.05)
        assert reassess.pending == 1  # deferred, not lost
        source.down = False
        await until(lambda: reassess.runs >= 1)
        tg.cancel_scope.cancel()
    assert source.reads == ["a"]


async def test_poll_schedules_changed_patients_and_moves_the_watermark_with_overlap() -> None:
    source = CountingSource([partial_responder("a"), partial_responder("b")])
    source.changed = ["b"]
    reassess = make(source, debounce_s=0.0, overlap_s=60)
    first_watermark = reassess.watermark
    assert first_watermark == NOW - timedelta(seconds=60)  # looks back from the start, with overlap
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        reassess.request_poll()
        await until(lambda: reassess.runs >= 1)
        tg.cancel_scope.cancel()
    assert source.since == [first_watermark]
    assert source.reads == ["b"]
    assert reassess.watermark == NOW - timedelta(seconds=60)


async def test_references_are_resolved_to_their_patient_before_scheduling() -> None:
    source = CountingSource([partial_responder("a")])
    resolved: list[str] = []

    async def resolver(reference: str) -> str | None:
        resolved.append(reference)
        return "a" if reference == "Observation/o1" else None

    reassess = make(source, resolver, debounce_s=0.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        reassess.resolve("Observation/o1")
        reassess.resolve("Observation/orphan")
        await until(lambda: reassess.runs >= 1)
        tg.cancel_scope.cancel()
    assert resolved == ["Observation/o1", "Observation/orphan"]
    assert source.reads == ["a"]


@pytest.mark.parametrize("interval", [0.05])
async def test_poll_forever_requests_polls_periodically(interval: float) -> None:
    source = CountingSource([])
    reassess = make(source)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        tg.start_soon(reassess.poll_forever, interval)
        await until(lambda: len(source.since) >= 2)
        tg.cancel_scope.cancel()
    assert len(source.since) >= 2


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def windowed(quiet_s: float, debounce_s: float) -> tuple[ReassessChangedPatients, FakeMonotonic]:
    clock = FakeMonotonic()
    source = CountingSource([partial_responder("a")])
    sync = SyncPatients(
        source,
        FakeAssessmentWriter(),
        None,
        AssessPatients(AssessmentParameters(), key_salt="t"),
        key_salt="t",
    )
    reassess = ReassessChangedPatients(
        sync,
        source,
        key_salt="t",
        today=lambda: date(2024, 6, 1),
        now=lambda: NOW,
        debounce_s=debounce_s,
        quiet_s=quiet_s,
        monotonic=clock,
    )
    return reassess, clock


@pytest.mark.parametrize(
    ("second_notification_at", "expected_due_at"),
    [
        (1.9, 3.9),  # within the quiet period: the window is extended by another quiet period
        (7.9, 9.9),  # just below the longest window (10 s): still extended
        (8.0, 10.0),  # exactly at it: quiet period ends where the window must close anyway
        (8.1, 10.0),  # above: capped at 10 s after the first notification
    ],
)
def test_debounce_window_closes_after_quiet_period_capped_at_the_longest_window(
    second_notification_at: float, expected_due_at: float
) -> None:
    """docs/operations/alert-latency.md: quiet 2 s, longest window 10 s (the defaults)."""
    reassess, clock = windowed(quiet_s=2.0, debounce_s=10.0)
    reassess.schedule("a")
    assert reassess.due_at("a") == 2.0
    clock.now = second_notification_at
    reassess.schedule("a")
    assert reassess.due_at("a") == pytest.approx(expected_due_at)


def test_a_final_study_closes_the_window_at_once() -> None:
    reassess, clock = windowed(quiet_s=2.0, debounce_s=10.0)
    reassess.schedule("a")
    clock.now = 0.5
    reassess.schedule("a", study_final=True)
    assert reassess.due_at("a") == 0.5
    clock.now = 0.6
    reassess.schedule("a")  # a late Observation of the same burst does not reopen it for long
    assert reassess.due_at("a") == pytest.approx(2.6)


async def test_one_quiet_notification_is_reassessed_after_the_quiet_period_not_the_longest_window() -> None:
    source = CountingSource([partial_responder("a")])
    reports = []
    sync = SyncPatients(
        source,
        FakeAssessmentWriter(),
        None,
        AssessPatients(AssessmentParameters(), key_salt="t"),
        key_salt="t",
    )
    reassess = ReassessChangedPatients(
        sync,
        source,
        key_salt="t",
        today=lambda: date(2024, 6, 1),
        now=lambda: NOW,
        debounce_s=30.0,
        quiet_s=0.2,
        after_run=reports.append,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassess.run)
        reassess.schedule("a")
        await until(lambda: reassess.runs >= 1, timeout=2.0)
        tg.cancel_scope.cancel()
    assert source.reads == ["a"]
    assert [r.patients_assessed for r in reports] == [1]  # after_run saw the finished run


class ServerChangeFeed:
    """Answers `_lastUpdated=ge<since>` over a list of resource versions, as a FHIR server does."""

    def __init__(self) -> None:
        self.versions: list[ResourceChange] = []
        self.since: list[datetime] = []

    def write(self, key: str, patient_id: str, at: datetime | None) -> None:
        self.versions.append(ResourceChange(version_key=key, patient_id=patient_id, last_updated=at))

    async def changes(self, *, since: datetime) -> AsyncIterator[ResourceChange]:
        self.since.append(since)
        for version in self.versions:
            if version.last_updated is None or version.last_updated >= since:
                yield version


def with_feed(feed: ServerChangeFeed, overlap_s: float = 60.0) -> ReassessChangedPatients:
    source = CountingSource([])
    sync = SyncPatients(
        source,
        FakeAssessmentWriter(),
        None,
        AssessPatients(AssessmentParameters(), key_salt="t"),
        key_salt="t",
    )
    return ReassessChangedPatients(
        sync,
        source,
        key_salt="t",
        today=lambda: date(2024, 6, 1),
        now=lambda: NOW,
        changes=feed,
        debounce_s=3600,
        overlap_s=overlap_s,
    )


async def test_a_ping_schedules_only_patients_changed_since_the_previous_one() -> None:
    feed = ServerChangeFeed()
    server_time = NOW - timedelta(seconds=30)  # the server's clock, 30 s behind ours
    feed.write("Observation/o1/_history/1", "a", server_time)
    feed.write("Observation/o2/_history/1", "b", server_time + timedelta(milliseconds=5))
    reassess = with_feed(feed)
    assert await reassess.poll_once() == 2
    assert reassess.watermark == server_time + timedelta(milliseconds=5)  # the newest change seen
    feed.write("ImagingStudy/s3/_history/1", "c", server_time + timedelta(seconds=1))
    assert await reassess.poll_once() == 1  # c only: a and b are not scheduled again
    assert await reassess.poll_once() == 0  # nothing changed since


async def test_a_version_seen_at_the_watermark_instant_is_not_reported_twice_but_a_new_one_is() -> None:
    feed = ServerChangeFeed()
    at = NOW - timedelta(seconds=5)
    feed.write("Observation/o1/_history/1", "a", at)
    reassess = with_feed(feed)
    assert await reassess.poll_once() == 1
    feed.write("Observation/o9/_history/1", "d", at)  # committed in the same millisecond, after the search
    assert await reassess.poll_once() == 1  # d, not a again
    feed.write("Observation/o1/_history/2", "a", at + timedelta(milliseconds=1))  # a's Observation corrected
    assert await reassess.poll_once() == 1


async def test_without_server_timestamps_the_watermark_falls_back_to_our_clock_with_overlap() -> None:
    feed = ServerChangeFeed()
    feed.write("Observation/o1@", "a", None)
    reassess = with_feed(feed, overlap_s=60)
    assert await reassess.poll_once() == 1
    assert reassess.watermark == NOW - timedelta(seconds=60)
