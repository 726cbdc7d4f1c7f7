"""Entry point of the response engine: one patient timeline in, one assessment out."""

from __future__ import annotations

from datetime import date

from service.domain.model import PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.results import PatientAssessment


def assess(
    timeline: PatientTimeline,
    params: AssessmentParameters = AssessmentParameters(),  # noqa: B008 - frozen value
    *,
    as_of: date,
) -> PatientAssessment:
    """Assess one patient as of `as_of` (events after it are ignored; censoring happens there)."""
    raise NotImplementedError("the response engine is being written (issue 3)")
