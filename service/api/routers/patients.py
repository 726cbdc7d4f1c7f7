"""A patient's latest assessment as a lesion table (linked from CDS Hooks cards and alerts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES, _doc
from service.api.schemas.alerts import LesionRowOut, LesionTableOut
from service.api.security import ReaderDep
from service.application.errors import ApplicationError, NotConfigured

router = APIRouter(tags=["patients"])

PatientId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="FHIR Patient id")]


class PatientNotAssessed(ApplicationError):
    problem_type = "/problems/patient-not-assessed"
    title = "Patient not assessed"
    status = 404


@router.get(
    "/patients/{patient_id}/lesion-table",
    operation_id="patients-lesion-table",
    responses={
        404: _doc("The patient has no stored assessment"),
        422: PROBLEM_RESPONSES[422],
        503: PROBLEM_RESPONSES[503],
    },
)
async def lesion_table(patient_id: PatientId, container: ContainerDep, _caller: ReaderDep) -> LesionTableOut:
    """Every lesion's response at every timepoint of the patient's latest stored assessment."""
    if container.store is None:
        raise NotConfigured("No database is configured, so no assessment is stored")
    stored = await container.store.latest(patient_id)
    if stored is None:
        raise PatientNotAssessed(f"Patient {patient_id} has no stored assessment: run a sync first")
    return LesionTableOut(
        patient_id=patient_id,
        response_group=stored.response_group.value,
        assessed_at=stored.assessed_at,
        atypical=[_finding(f) for f in stored.result.get("atypical", [])],
        lesions=[_row(lesion) for lesion in stored.result.get("lesions", [])],
    )


def _row(lesion: dict[str, Any]) -> LesionRowOut:
    return LesionRowOut(
        lesion_id=str(lesion.get("lesion_id")),
        timepoint_index=int(lesion.get("timepoint_index", 0)),
        timepoint_date=str(lesion.get("timepoint_date")),
        status=str(lesion.get("status")),
        is_target=bool(lesion.get("is_target")),
        diameter_mm=lesion.get("diameter_mm"),
        change_from_baseline_pct=lesion.get("change_from_baseline_pct"),
        change_from_nadir_pct=lesion.get("change_from_nadir_pct"),
    )


def _finding(finding: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "timepoint_index", "timepoint_date", "growing_lesions", "shrinking_lesions")
    return {k: finding.get(k) for k in keys}
