"""PatientAssessment values built by hand (the engine is written in parallel).

Each builder states a clinical situation of the contract (`docs/fhir-contract.md` section 2)
in result types only; nothing here runs the response rules.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    Criterion,
    DrTrigger,
    Endpoints,
    ImmuneResponse,
    PatientAssessment,
    Response,
    ResponseGroup,
    RuleTrace,
    TimepointResult,
)

START = date(2024, 1, 8)


def timepoint(index: int, overall: Response, sum_mm: str, *, baseline_mm: str = "100") -> TimepointResult:
    baseline = Decimal(baseline_mm)
    current = Decimal(sum_mm)
    return TimepointResult(
        index=index,
        timepoint_date=START + timedelta(weeks=8 * index),
        target=overall,
        non_target=None,
        new_lesion=False,
        overall=overall,
        reported=overall,
        sum_mm=current,
        baseline_sum_mm=baseline,
        nadir_sum_mm=min(baseline, current),
        change_from_baseline_pct=(current - baseline) * 100 / baseline,
        change_from_nadir_pct=None,
        traces=(RuleTrace.of("recist1.1/target/test", sum_mm=current),),
    )


def best(response: Response | ImmuneResponse, criterion: Criterion = Criterion.RECIST11) -> BestResponse:
    return BestResponse(
        criterion=criterion,
        response=response,
        confirmation_required=False,
        period_start=START,
        period_end=START + timedelta(weeks=24),
        response_date=START + timedelta(weeks=8),
        trace=RuleTrace.of("recist1.1/bor/test"),
    )


def dr_finding(index: int, trigger: DrTrigger) -> AtypicalFinding:
    return AtypicalFinding(
        kind=AtypicalKind.DR,
        definition="bernard-tessier",
        definition_version="1",
        timepoint_index=index,
        timepoint_date=START + timedelta(weeks=8 * index),
        trigger=trigger,
        overall_at_detection=Response.PD,
        growing_lesions=("L2",),
        shrinking_lesions=("L1",),
        trace=RuleTrace.of("dr/bernard-tessier"),
        metrics=(("max_shrink_pct", Decimal("-41.5")),),
    )


def assessment(
    patient_id: str,
    group: ResponseGroup,
    *,
    best_response: Response | None = None,
    immune: ImmuneResponse | None = None,
    atypical: tuple[AtypicalFinding, ...] = (),
    timepoints: tuple[TimepointResult, ...] = (),
    pfs: tuple[int | None, bool | None] = (None, None),
    os_: tuple[int | None, bool | None] = (None, None),
) -> PatientAssessment:
    return PatientAssessment(
        patient_id=patient_id,
        treatment_start=START,
        baseline_date=START - timedelta(days=5),
        timepoints=timepoints,
        immune_timepoints=(),
        lesions=(),
        best_response=best(best_response) if best_response else None,
        best_response_confirmed=best(best_response) if best_response else None,
        immune_best_response=best(immune, Criterion.IRECIST) if immune else None,
        atypical=atypical,
        response_group=group,
        endpoints=Endpoints(
            pfs_days=pfs[0],
            pfs_event=pfs[1],
            ipfs_days=None,
            ipfs_event=None,
            os_days=os_[0],
            os_event=os_[1],
            dcb=None,
        ),
        auto_selected_targets=(),
        issues=(),
        traces=(RuleTrace.of("group/test"),),
    )


def stable(patient_id: str) -> PatientAssessment:
    """SD by RECIST 1.1: -10 % from baseline, no PD (contract: SD -> group SD)."""
    return assessment(
        patient_id,
        ResponseGroup.SD,
        best_response=Response.SD,
        immune=ImmuneResponse.ISD,
        timepoints=(timepoint(1, Response.SD, "90"),),
        pfs=(240, False),
        os_=(300, False),
    )


def progressive(patient_id: str) -> PatientAssessment:
    """PD: +25 % and +25 mm from the nadir (RECIST 1.1 section 4.3.1)."""
    return assessment(
        patient_id,
        ResponseGroup.PD,
        best_response=Response.PD,
        immune=ImmuneResponse.IUPD,
        timepoints=(timepoint(1, Response.PD, "125"),),
        pfs=(56, True),
        os_=(200, True),
    )
