"""Ports: what the use cases need from the outside world, in domain terms only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from service.domain.model import PatientTimeline
from service.domain.results import DataIssue, PatientAssessment


@dataclass(frozen=True, slots=True)
class PatientRef:
    """A patient on the FHIR server (`Patient/<id>`)."""

    patient_id: str


@dataclass(frozen=True, slots=True)
class PatientInput:
    """What the source could read for one patient: a timeline or the reasons why not."""

    ref: PatientRef
    timeline: PatientTimeline | None
    issues: tuple[DataIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    issues: tuple[DataIssue, ...] = field(default_factory=tuple)


class MeasurementSource(Protocol):
    """Reads patients' lesions, scans, therapy, labs and outcomes."""

    def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]: ...

    async def timeline_for(self, patient: PatientRef) -> PatientInput: ...


class AssessmentWriter(Protocol):
    """Writes assessments back (FHIR Observations), idempotently."""

    async def write(self, assessment: PatientAssessment, patient: PatientInput) -> WriteSummary: ...


class AssessmentStore(Protocol):
    """Keeps the latest assessment per patient and the bookkeeping of every run (database)."""

    async def start_run(self, trigger: str, *, run_id: str | None = None, patients_total: int = 0) -> str: ...

    async def record(self, assessments: Sequence[PatientAssessment], *, run_id: str) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        *,
        patients_total: int,
        patients_assessed: int,
        patients_failed: int,
        observations_created: int = 0,
        observations_unchanged: int = 0,
    ) -> None: ...
