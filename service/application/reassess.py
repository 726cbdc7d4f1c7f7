"""Re-assess patients when the FHIR server tells us (or we find out) that their data changed.

`ReassessChangedPatients` runs in the background of the app (started in the FastAPI lifespan's
task group) and feeds the ordinary `SyncPatients(only=[...])`:

- `schedule(patient_id, study_final=...)`: from a subscription notification. Adaptive debounce
  (docs/operations/alert-latency.md): the first notification opens a window for the patient that
  closes once no further notification came for `quiet_s`, at the latest `debounce_s` after it
  opened, and at once when the notification says the study is final (a final DiagnosticReport,
  an available ImagingStudy). A burst of N Observations for one patient gives one
  re-assessment. A notification that arrives while that patient is being re-assessed opens a new
  window, since it may describe data the running one did not read.
- `resolve(reference)`: a notification that names a resource but not its patient; the patient
  is looked up (`resolver`, a FHIR read) in the background and then scheduled.
- `request_poll()` / `poll_forever(interval_s)`: a ping without patient, and the fallback, since
  subscription delivery is best effort: schedule the patients changed since the watermark (so
  they are debounced together with notifications). With a `ChangeFeed` the watermark is the
  newest `meta.lastUpdated` seen, on the server's clock, and versions already seen within
  `_SEEN_S` of it are skipped: a ping re-assesses exactly the patients changed since the previous
  one (docs/fhir/subscriptions.md). Without one, or when the server gives no `meta.lastUpdated`,
  it is the start of the previous poll minus `overlap_s` (`MeasurementSource.patients(since=)`;
  clock skew between us and the server; re-assessing a patient twice is harmless, writes are
  idempotent). The first poll looks back from the service's start.
- Due patients are re-assessed in one `SyncPatients` call (its bounded concurrency applies), and
  `after_run(report)` is called at once (the container wakes the alert worker when the run
  recorded alerts). An unavailable server puts them back, due `retry_s` later; the loop never
  raises.

Decision: the first watermark is the service's start time, not the last recorded sync: a full
sync after downtime is the operator's `oncoresponse sync --since` (the store keeps the runs).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import anyio
import structlog

from service.application.assess import SyncPatients, SyncReport
from service.application.ports import ChangeFeed, MeasurementSource, PatientRef, ResourceChange
from service.application.privacy import patient_key

__all__ = ["ReassessChangedPatients", "ReassessmentRun", "Resolver"]

log = structlog.get_logger(__name__)

# `Type/id` of a resource -> the id of its patient (None when it names none).
Resolver = Callable[[str], Awaitable[str | None]]
# Called with each finished re-assessment's report (wakes the alert delivery).
AfterRun = Callable[[SyncReport], None]

DEFAULT_QUIET_S = 2.0
# Versions seen this close to the watermark are remembered, so that a search from the watermark
# (inclusive, at the server's precision) does not report them again.
_SEEN_S = 1.0


@dataclass(frozen=True, slots=True)
class ReassessmentRun:
    """One finished re-assessment run (kept in `recent_runs` for operators and benchmarks)."""

    patient_ids: tuple[str, ...]
    started_at: float  # monotonic seconds
    finished_at: float
    report: SyncReport


@dataclass(slots=True)
class _Window:
    """A patient's open debounce window (monotonic seconds)."""

    opened_at: float
    due_at: float


class ReassessChangedPatients:
    def __init__(
        self,
        sync: SyncPatients,
        source: MeasurementSource,
        *,
        key_salt: str,
        today: Callable[[], date],
        now: Callable[[], datetime],
        resolver: Resolver | None = None,
        changes: ChangeFeed | None = None,
        debounce_s: float = 10.0,
        quiet_s: float = DEFAULT_QUIET_S,
        after_run: AfterRun | None = None,
        retry_s: float = 60.0,
        overlap_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sync = sync
        self._source = source
        self._salt = key_salt
        self._today = today
        self._now = now
        self._resolver = resolver
        self._changes = changes
        self._seen: dict[str, datetime] = {}  # version key -> lastUpdated, near the watermark
        self._debounce_s = debounce_s
        self._quiet_s = quiet_s
        self._after_run = after_run
        self._retry_s = retry_s
        self._overlap = timedelta(seconds=overlap_s)
        self._monotonic = monotonic
        self._pending: dict[str, _Window] = {}
        self._to_resolve: list[str] = []
        self._poll_requested = False
        self._wake = anyio.Event()
        self.watermark: datetime = now() - self._overlap
        self.runs = 0
        self.reassessed = 0
        self.last_report: SyncReport | None = None
        self.recent_runs: deque[ReassessmentRun] = deque(maxlen=100)
        self._running = False

    # -- requests (called by the API; never block) ------------------------------------------------
    def schedule(self, patient_id: str, *, study_final: bool = False) -> None:
        """Open or extend the patient's debounce window (module doc); `study_final` closes it."""
        now = self._monotonic()
        window = self._pending.get(patient_id)
        if window is None:
            window = _Window(opened_at=now, due_at=now)
            self._pending[patient_id] = window
            log.info("reassess.scheduled", patient_key=patient_key(patient_id, self._salt))
        if study_final:
            window.due_at = now
        else:
            window.due_at = min(now + self._quiet_s, window.opened_at + self._debounce_s)
        self._wake.set()

    def resolve(self, reference: str) -> None:
        if reference not in self._to_resolve:
            self._to_resolve.append(reference)
        self._wake.set()

    def request_poll(self) -> None:
        self._poll_requested = True
        self._wake.set()

    def due_at(self, patient_id: str) -> float | None:
        """When the patient's open window closes (monotonic seconds); None when none is open."""
        window = self._pending.get(patient_id)
        return None if window is None else window.due_at

    @property
    def idle(self) -> bool:
        """Nothing scheduled, being resolved, polled or re-assessed right now."""
        return not (self._pending or self._to_resolve or self._poll_requested or self._running)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- background loops -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the requests until cancelled (the app's task group)."""
        while True:
            if self._poll_requested:
                self._poll_requested = False
                await self.poll_once()
                continue
            if self._to_resolve:
                await self._resolve_all()
                continue
            if not self._pending:
                await self._sleep_until_woken(None)
                continue
            now = self._monotonic()
            due = [p for p, window in self._pending.items() if window.due_at <= now]
            if not due:
                next_due = min(window.due_at for window in self._pending.values())
                await self._sleep_until_woken(next_due - now)
                continue
            for patient_id in due:
                del self._pending[patient_id]
            await self._reassess(due)

    async def poll_forever(self, interval_s: float) -> None:
        """Ask for a poll every `interval_s` seconds until cancelled."""
        while True:
            await anyio.sleep(interval_s)
            self.request_poll()

    async def poll_once(self) -> int:
        """Schedule every patient changed since the watermark; how many were found."""
        started = self._now()
        try:
            if self._changes is not None:
                found = await self._poll_changes(self._changes, started)
            else:
                found = 0
                async for ref in self._source.patients(since=self.watermark):
                    self.schedule(ref.patient_id)
                    found += 1
                self.watermark = started - self._overlap
        except Exception as exc:  # an unavailable server: the next poll tries again
            log.warning("reassess.poll_failed", error=type(exc).__name__)
            return 0
        log.info("reassess.polled", changed=found)
        return found

    async def _poll_changes(self, changes: ChangeFeed, started: datetime) -> int:
        """One search of the change feed; moves the watermark to the newest change seen (module doc)."""
        fresh: list[ResourceChange] = []
        async for change in changes.changes(since=self.watermark):
            if change.version_key not in self._seen:
                fresh.append(change)
        patients = list(dict.fromkeys(c.patient_id for c in fresh if c.patient_id is not None))
        for patient_id in patients:
            self.schedule(patient_id)
        stamps = [c.last_updated for c in fresh]
        if any(stamp is None for stamp in stamps):
            self.watermark = started - self._overlap  # the server gave no timestamps: our clock
            self._seen = {}
        elif stamps:
            newest = max(stamp for stamp in stamps if stamp is not None)
            self.watermark = max(self.watermark, newest)
            cutoff = self.watermark - timedelta(seconds=_SEEN_S)
            recent = {c.version_key: c.last_updated for c in fresh if c.last_updated is not None}
            self._seen = {k: t for k, t in {**self._seen, **recent}.items() if t >= cutoff}
        return len(patients)

    # -- plumbing ---------------------------------------------------------------------------------
    async def _sleep_until_woken(self, timeout: float | None) -> None:
        self._wake = anyio.Event()
        if self._poll_requested or self._to_resolve:
            return
        if timeout is None:
            await self._wake.wait()
            return
        with anyio.move_on_after(max(0.0, timeout)):
            await self._wake.wait()

    async def _resolve_all(self) -> None:
        references, self._to_resolve = self._to_resolve, []
        if self._resolver is None:
            log.warning("reassess.unresolvable", references=len(references))
            return
        for reference in references:
            try:
                patient_id = await self._resolver(reference)
            except Exception as exc:  # gone, refused or unavailable: the poll will catch it
                log.warning(
                    "reassess.resolve_failed", resource_type=reference.split("/")[0], error=type(exc).__name__
                )
                continue
            if patient_id is not None:
                self.schedule(patient_id)

    async def _reassess(self, patient_ids: list[str]) -> None:
        started = self._monotonic()
        self._running = True
        try:
            report = await self._sync(
                as_of=self._today(), only=[PatientRef(p) for p in patient_ids], trigger="sync"
            )
        except Exception as exc:  # the background loop never dies: retry later (module doc)
            self._running = False
            log.warning("reassess.deferred", patients=len(patient_ids), error=type(exc).__name__)
            retry_at = self._monotonic() + self._retry_s
            for patient_id in patient_ids:
                self._pending.setdefault(patient_id, _Window(opened_at=retry_at, due_at=retry_at))
            return
        self._running = False
        self.runs += 1
        self.reassessed += report.patients_assessed
        self.last_report = report
        self.recent_runs.append(ReassessmentRun(tuple(patient_ids), started, self._monotonic(), report))
        if self._after_run is not None:
            self._after_run(report)
        log.info(
            "reassess.finished",
            patients=len(patient_ids),
            assessed=report.patients_assessed,
            created=report.created,
            updated=report.updated,
        )
