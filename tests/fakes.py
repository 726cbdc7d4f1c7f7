"""In-memory doubles of the application ports (no mocking library)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from service.application.errors import UpstreamRejected
from service.application.ports import PatientInput, PatientRef, RunState, WriteSummary
from service.domain.results import PatientAssessment


class FakeMeasurementSource:
    def __init__(self, patients: Sequence[PatientInput], *, rejected: Sequence[str] = ()) -> None:
        self._patients = {p.ref.patient_id: p for p in patients}
        self._rejected = set(rejected)

    async def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]:
        for pid in [*self._patients, *self._rejected]:
            yield PatientRef(pid)

    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        if patient.patient_id in self._rejected:
            raise UpstreamRejected("forbidden by the server", ["forbidden"])
        return self._patients[patient.patient_id]


class FakeAssessmentWriter:
    """Remembers what it wrote, keyed like the FHIR writer (one result set per patient)."""

    def __init__(self) -> None:
        self.written: dict[str, PatientAssessment] = {}

    async def write(
        self, assessment: PatientAssessment, patient: PatientInput, *, run_id: str | None = None
    ) -> WriteSummary:
        new = patient.ref.patient_id not in self.written
        self.written[patient.ref.patient_id] = assessment
        return WriteSummary(created=1 if new else 0, unchanged=0 if new else 1)


class FakeAssessmentStore:
    def __init__(self) -> None:
        self.runs: dict[str, list[PatientAssessment]] = {}
        self.finished: dict[str, dict[str, int]] = {}

    async def start_run(self, trigger: str, *, run_id: str | None = None, patients_total: int = 0) -> str:
        assert run_id is not None
        self.runs[run_id] = []
        return run_id

    async def record(self, assessments: Sequence[PatientAssessment], *, run_id: str) -> None:
        self.runs[run_id] = list(assessments)

    async def finish_run(self, run_id: str, *, aborted: bool = False, **counts: int) -> None:
        self.finished[run_id] = {**counts, "aborted": int(aborted)}

    async def last_run(self) -> RunState | None:
        return None

    async def close_stale_runs(self, older_than_s: float) -> int:
        return 0
