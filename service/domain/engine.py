"""Entry point of the response engine: one patient timeline in, one assessment out.

Order of work: timeline (timepoints, baseline, lesion categories) -> lesion changes -> RECIST 1.1
timepoints and best responses -> iRECIST -> dissociated response (registry) -> PsPD, HPD, DeR ->
ResponseGroup -> endpoints. Every step is a pure function of the previous ones.

`timepoint_index` everywhere: 0 = baseline (never emitted as a result), 1 = first evaluation after
baseline, n = n-th follow-up timepoint on or before `as_of`, in date order.

Performance (issue 3; `benchmarks/engine.py`): each lesion's value, status and nadir are worked out
once per timepoint (`lesions.lesion_changes`); the per-timepoint category readings (target sum,
non-target response, new-lesion facts) once (`recist.read_categories`) and shared by RECIST 1.1 and
iRECIST, which only compare them with their own nadirs; `RuleTrace.of` renders its facts lazily.
Per-lesion and per-timepoint internal values are NamedTuples (frozen dataclasses cost several
times more to build). Hot loops read enum members from module-level aliases (`_PD = Response.PD`):
in Python 3.11 `Response.PD` goes through `EnumType.__getattr__`, about ten times a global lookup.
Thresholds multiply Decimal constants (`Decimal(100)`, not `100`) to skip an int conversion per
comparison; the values compared are the same.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from service.domain.atypical import (
    detect_delayed_response,
    detect_hyperprogression,
    detect_pseudoprogression,
)
from service.domain.dissociated import DrContext, detect_dissociated_response
from service.domain.endpoints import (
    PRE_TREATMENT_LAB_DAYS,
    _labs_by_day,
    _lymphocytes,
    compute_endpoints,
    no_baseline_endpoints,
)
from service.domain.grouping import response_group
from service.domain.irecist import assess_immune, immune_best_overall_response
from service.domain.lesions import lesion_changes, to_lesion_result
from service.domain.model import LabKind, PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.recist import (
    assess_timepoints,
    best_overall_response,
    confirmed_best_overall_response,
    read_categories,
)
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    ImmuneResponse,
    PatientAssessment,
    Response,
    ResponseGroup,
    RuleTrace,
)
from service.domain.timeline import NoBaseline, build_view


def _local_treatment_since(timeline: PatientTimeline, since: date | None, as_of: date) -> bool | None:
    """Whether a local treatment was performed on or after `since` (up to `as_of`); None without `since`."""
    if since is None:
        return None
    return any(since <= t.performed_on <= as_of for t in timeline.local_treatments)


def _treated_after(timeline: PatientTimeline, pd_date: date | None, as_of: date) -> bool | None:
    """Treatment beyond progression (Guan 2024, Fig. 2g): an ICI administration strictly after the
    first RECIST 1.1 PD timepoint date, up to `as_of`; None without a PD timepoint.

    Strictly after [P]: a dose on the PD scan day was given before the scan was read.
    """
    if pd_date is None:
        return None
    return any(pd_date < d <= as_of for d in timeline.ici_administration_dates)


def _pre_treatment_labs(
    timeline: PatientTimeline, by_day: dict[date, dict[LabKind, Decimal]]
) -> tuple[Decimal | None, Decimal | None]:
    """Latest lymphocyte count and LDH in the pre-treatment window of `endpoints` (research fields)."""
    start = timeline.treatment_start
    window = start - timedelta(days=PRE_TREATMENT_LAB_DAYS)
    days = sorted((d for d in by_day if window <= d <= start), reverse=True)
    lymphocytes = next((v for d in days if (v := _lymphocytes(by_day[d])) is not None), None)
    ldh = next((by_day[d][LabKind.LDH] for d in days if LabKind.LDH in by_day[d]), None)
    return lymphocytes, ldh


def assess(
    timeline: PatientTimeline,
    params: AssessmentParameters = AssessmentParameters(),  # noqa: B008 - frozen value
    *,
    as_of: date,
) -> PatientAssessment:
    """Assess one patient as of `as_of` (events after it are ignored; censoring happens there)."""
    view = build_view(timeline, params, as_of=as_of)
    labs_by_day = _labs_by_day(timeline.labs, as_of)
    lymphocytes_pre, ldh_pre = _pre_treatment_labs(timeline, labs_by_day)
    if isinstance(view, NoBaseline):
        return PatientAssessment(
            patient_id=timeline.patient_id,
            treatment_start=timeline.treatment_start,
            baseline_date=None,
            timepoints=(),
            immune_timepoints=(),
            lesions=(),
            best_response=None,
            best_response_confirmed=None,
            immune_best_response=None,
            atypical=(),
            response_group=ResponseGroup.NE,
            endpoints=no_baseline_endpoints(timeline, params, as_of=as_of),
            auto_selected_targets=(),
            issues=view.issues,
            traces=(view.trace, RuleTrace.of("group/ne-no-baseline")),
            profile=timeline.profile,
            lymphocytes_pre=lymphocytes_pre,
            ldh_pre=ldh_pre,
        )
    start = timeline.treatment_start
    changes = lesion_changes(view)
    readings = read_categories(view, changes)  # shared by RECIST 1.1 and iRECIST
    course = assess_timepoints(view, readings)
    timepoints = course.timepoints
    lesion_results = tuple(
        [
            to_lesion_result(change, tp)
            for tp, row in zip(view.follow_ups, changes, strict=True)
            for change in row
        ]
    )
    assessments = [(t.timepoint_date, t.overall) for t in timepoints]
    best = best_overall_response(assessments, start, params)
    best_confirmed = confirmed_best_overall_response(assessments, start, params)
    immune = assess_immune(view, params, readings)
    immune_best = immune_best_overall_response(
        [(t.timepoint_date, t.overall) for t in immune.timepoints], start, params
    )
    horizon = next(
        (t.index for t in immune.timepoints if t.overall is ImmuneResponse.ICPD), len(view.follow_ups)
    )
    atypical: list[AtypicalFinding] = []
    dr = detect_dissociated_response(
        DrContext(view=view, changes=changes, timepoints=timepoints, horizon=horizon), params.dr_definition
    )
    if dr is not None:
        atypical.append(dr)
    pspd = detect_pseudoprogression(immune, timepoints, changes)
    if pspd is not None:
        atypical.append(pspd)
    atypical.extend(detect_hyperprogression(view, timepoints, changes))
    der = detect_delayed_response(view, immune, timepoints, params)
    if der is not None:
        atypical.append(der)
    group, group_trace = response_group(atypical, best, best_confirmed, params)
    endpoints = compute_endpoints(
        timeline,
        params,
        as_of=as_of,
        timepoints=timepoints,
        episodes=immune.episodes,
        best=best,
        labs_by_day=labs_by_day,
    )
    decisive = [*view.traces]
    decisive.extend(b.trace for b in (best, best_confirmed, immune_best) if b is not None)
    decisive.extend(f.trace for f in atypical)
    decisive.append(group_trace)
    return PatientAssessment(
        patient_id=timeline.patient_id,
        treatment_start=start,
        baseline_date=view.baseline.day,
        timepoints=timepoints,
        immune_timepoints=immune.timepoints,
        lesions=lesion_results,
        best_response=best,
        best_response_confirmed=best_confirmed,
        immune_best_response=immune_best,
        atypical=tuple(atypical),
        response_group=group,
        endpoints=endpoints,
        auto_selected_targets=view.auto_selected_targets,
        issues=view.issues,
        traces=tuple(decisive),
        profile=timeline.profile,
        local_treatment_after_dr=_local_treatment_since(
            timeline,
            min((f.timepoint_date for f in atypical if f.kind is AtypicalKind.DR), default=None),
            as_of,
        ),
        local_treatment_after_pd=_local_treatment_since(
            timeline, next((t.timepoint_date for t in timepoints if t.overall is Response.PD), None), as_of
        ),
        lymphocytes_pre=lymphocytes_pre,
        ldh_pre=ldh_pre,
        treated_beyond_progression=_treated_after(
            timeline, next((t.timepoint_date for t in timepoints if t.overall is Response.PD), None), as_of
        ),
    )
