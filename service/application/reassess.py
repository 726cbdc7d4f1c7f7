"""Re-assess patients when the FHIR server tells us (or we find out) that their data changed.

`ReassessChangedPatients` runs in the background of the app (started in the FastAPI lifespan's
task group) and feeds the ordinary `SyncPatients(only=[...])`:

- `schedule(patient_id)`: from a subscription notification. Debounced: the first notification
  for a patient sets it due `debounce_s` later; further ones before it runs are merged into the
  same run (a burst of N Observations for one patient gives one re-assessment). A notification
  that arrives while that patient is being re-assessed schedules another run, since it may
  describe data the running one did not read.
- `resolve(reference)`: a notification that names a resource but not its patient; the patient
  is looked up (`resolver`, a FHIR read) in the background and then scheduled.
- `request_poll()` / `poll_forever(interval_s)`: the fallback, since subscription delivery is
  best effort: ask the source for the patients changed since the last poll
  (`MeasurementSource.patients(since=...)`, `_lastUpdated` on the FHIR server) and schedule
  them (so they are debounced together with notifications). The watermark is the start of the
  previous poll minus `overlap_s` (clock skew between us and the server; re-assessing a patient
  twice is harmless, writes are idempotent); the first poll looks back from the service's start.
- Due patients are re-assessed in one `SyncPatients` call (its bounded concurrency applies). An
  unavailable server puts them back, due `retry_s` later; the loop never raises.

Decision: the first watermark is the service's start time, not the last recorded sync: a full
sync after downtime is the operator's `oncoresponse sync --since` (the store keeps the runs).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

import anyio
import structlog

from service.application.assess import SyncPatients, SyncReport
from service.application.ports import MeasurementSource, PatientRef
from service.application.privacy import patient_key

__all__ = ["ReassessChangedPatients", "Resolver"]

log = structlog.get_logger(__name__)

# `Type/id` of a resource -> the id of its patient (None when it names none).
Resolver = Callable[[str], Awaitable[str | None]]


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
        debounce_s: float = 10.0,
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
        self._debounce_s = debounce_s
        self._retry_s = retry_s
        self._overlap = timedelta(seconds=overlap_s)
        self._monotonic = monotonic
        self._pending: dict[str, float] = {}
        self._to_resolve: list[str] = []
        self._poll_requested = False
        self._wake = anyio.Event()
        self.watermark: datetime = now() - self._overlap
        self.runs = 0
        self.reassessed = 0
        self.last_report: SyncReport | None = None

    # -- requests (called by the API; never block) ------------------------------------------------
    def schedule(self, patient_id: str) -> None:
        if patient_id not in self._pending:
            self._pending[patient_id] = self._monotonic() + self._debounce_s
            log.info("reassess.scheduled", patient_key=patient_key(patient_id, self._salt))
        self._wake.set()

    def resolve(self, reference: str) -> None:
        if reference not in self._to_resolve:
            self._to_resolve.append(reference)
        self._wake.set()

    def request_poll(self) -> None:
        self._poll_requested = True
        self._wake.set()

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
            due = [p for p, at in self._pending.items() if at <= now]
            if not due:
                await self._sleep_until_woken(min(self._pending.values()) - now)
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
        found = 0
        try:
            async for ref in self._source.patients(since=self.watermark):
                self.schedule(ref.patient_id)
                found += 1
        except Exception as exc:  # an unavailable server: the next poll tries again
            log.warning("reassess.poll_failed", error=type(exc).__name__)
            return found
        self.watermark = started - self._overlap
        log.info("reassess.polled", changed=found)
        return found

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
        try:
            report = await self._sync(
                as_of=self._today(), only=[PatientRef(p) for p in patient_ids], trigger="sync"
            )
        except Exception as exc:  # the background loop never dies: retry later (module doc)
            log.warning("reassess.deferred", patients=len(patient_ids), error=type(exc).__name__)
            retry_at = self._monotonic() + self._retry_s
            for patient_id in patient_ids:
                self._pending.setdefault(patient_id, retry_at)
            return
        self.runs += 1
        self.reassessed += report.patients_assessed
        self.last_report = report
        log.info(
            "reassess.finished",
            patients=len(patient_ids),
            assessed=report.patients_assessed,
            created=report.created,
            updated=report.updated,
        )
