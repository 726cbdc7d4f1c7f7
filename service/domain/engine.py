"""Entry point of the response engine: one patient timeline in, one assessment out.

Order of work: timeline (timepoints, baseline, lesion categories) -> lesion changes -> RECIST 1.1
timepoints and best responses -> iRECIST -> dissociated response (registry) -> PsPD, HPD, DeR ->
ResponseGroup -> endpoints. Every step is a pure function of the previous ones.

`timepoint_index` everywhere: 0 = baseline (never emitted as a result), 1 = first evaluation after
baseline, n = n-th follow-up timepoint on or before `as_of`, in date order.

Performance (`benchmarks/engine.py`): each lesion's value, status and nadir are worked out
once per timepoint, and its LesionResult built in the same pass (`lesions.lesion_course`); the
per-timepoint category readings (target sum, non-target response, new-lesion facts) once
(`recist.read_categories`) and shared by RECIST 1.1 and iRECIST, which only compare them with their
own nadirs (iRECIST also reuses RECIST's change from the nadir where the nadirs agree).
Per-lesion and per-timepoint internal values are NamedTuples (frozen dataclasses cost several
times more to build). Hot loops read enum members from module-level aliases (`_PD = Response.PD`):
in Python 3.11 `Response.PD` goes through `EnumType.__getattr__`, about ten times a global lookup.

Second round (same results, checked field by field on `mixed_cohort(500, seed=3)` under every DR
definition): half the instructions per patient again (callgrind, 3.50 M -> 1.72 M). Most of what
was left was the interpreter's fixed cost per call, per object and per Decimal operation, so:
- Result objects are built by `frozen.fast_constructor` (a twin class with plain slot stores,
  relabelled as the frozen dataclass), not by the frozen `__init__`'s `object.__setattr__` per
  field; the hot ones are called positionally (keyword matching costs about as much again).
- Traces stay lazy and cost no copying: `RuleTrace.of` is one call, and the per-lesion and
  per-timepoint traces (`lazy_trace`) read their facts from the value the rule already built (the
  LesionChange, the compared sums) when first read. Traces are values, so those whose facts are a
  few enum, bool or small int values (overall response, iRECIST decisions, response group) are made
  once and shared (`lru_cache`).
- Thresholds run per lesion and timepoint are solved for the value once (value <= 0.7 baseline,
  value >= 1.2 nadir; exact, as Decimal products of measured values are not rounded), and a change
  from baseline divides by baseline / 100 (the same quotient, one multiplication fewer).
- Work that was repeated or discarded is done once: readings are built at a lesion's first sighting
  (no per-timepoint dicts of values, states and references), labs are grouped without sorting, both
  best responses share one sort, patients without new lesions skip the new-lesion facts, DR builds
  no evidence for a timepoint without a shrinking lesion, and small helpers called per lesion or
  timepoint are written out where they run (each call costs about as much as the work it did).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from service.domain.atypical import (
    detect_delayed_response,
    detect_hyperprogression,
    detect_pseudoprogression,
    evaluate_hyperprogression,
    hpd_traces,
)
from service.domain.dissociated import DrContext, detect_dissociated_response
from service.domain.endpoints import (
    PRE_TREATMENT_LAB_DAYS,
    _labs_by_day,
    _lymphocytes,
    compute_endpoints,
    no_baseline_endpoints,
)
from service.domain.frozen import fast_constructor
from service.domain.grouping import response_group
from service.domain.irecist import assess_immune, immune_best_overall_response
from service.domain.lesions import lesion_course
from service.domain.model import LabKind, PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.recist import (
    assess_timepoints,
    best_overall_responses,
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
    new_patient_assessment,
)
from service.domain.timeline import NoBaseline, build_view

# Enum members as module constants (see "Performance" above).
_PD = Response.PD
_ICPD = ImmuneResponse.ICPD
_DR = AtypicalKind.DR
_LDH = LabKind.LDH
_new_dr_context = fast_constructor(DrContext)  # see `frozen`


def _local_treatment_since(timeline: PatientTimeline, since: date | None, as_of: date) -> bool | None:
    """Whether a local treatment was performed on or after `since` (up to `as_of`); None without `since`."""
    if since is None:
        return None
    # A loop, not `any(<generator>)`: cheaper, and this runs for every patient.
    for t in timeline.local_treatments:  # noqa: SIM110
        if since <= t.performed_on <= as_of:
            return True
    return False


def _treated_after(timeline: PatientTimeline, pd_date: date | None, as_of: date) -> bool | None:
    """Treatment beyond progression (Guan 2024, Fig. 2g): an ICI administration strictly after the
    first RECIST 1.1 PD timepoint date, up to `as_of`; None without a PD timepoint.

    Strictly after [P]: a dose on the PD scan day was given before the scan was read.
    """
    if pd_date is None:
        return None
    # A loop, not `any(<generator>)`: cheaper per date (about 15 per patient).
    for d in timeline.ici_administration_dates:  # noqa: SIM110
        if pd_date < d <= as_of:
            return True
    return False


def _pre_treatment_labs(
    timeline: PatientTimeline, by_day: dict[date, dict[LabKind, Decimal]]
) -> tuple[Decimal | None, Decimal | None]:
    """Latest lymphocyte count and LDH in the pre-treatment window of `endpoints` (research fields)."""
    start = timeline.treatment_start
    window = start - timedelta(days=PRE_TREATMENT_LAB_DAYS)
    lymphocytes: Decimal | None = None
    ldh: Decimal | None = None
    for d in sorted([d for d in by_day if window <= d <= start], reverse=True):  # latest first
        values = by_day[d]
        if lymphocytes is None:
            lymphocytes = _lymphocytes(values)
        if ldh is None:
            ldh = values.get(_LDH)
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
        return new_patient_assessment(
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
    changes, lesion_results = lesion_course(view)
    readings = read_categories(view, changes)  # shared by RECIST 1.1 and iRECIST
    course = assess_timepoints(view, readings)
    timepoints = course.timepoints
    assessments = [(t.timepoint_date, t.overall) for t in timepoints]
    best, best_confirmed = best_overall_responses(assessments, start, params)
    immune = assess_immune(view, params, readings, timepoints)
    immune_best = immune_best_overall_response(
        [(t.timepoint_date, t.overall) for t in immune.timepoints], start, params
    )
    horizon = next((t.index for t in immune.timepoints if t.overall is _ICPD), len(view.follow_ups))
    atypical: list[AtypicalFinding] = []
    dr = detect_dissociated_response(
        _new_dr_context(view, changes, timepoints, horizon), params.dr_definition
    )
    if dr is not None:
        atypical.append(dr)
    pspd = detect_pseudoprogression(immune, timepoints, changes)
    if pspd is not None:
        atypical.append(pspd)
    hpd = evaluate_hyperprogression(view, timepoints)
    atypical.extend(detect_hyperprogression(view, timepoints, changes, hpd))
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
    decisive.extend([b.trace for b in (best, best_confirmed, immune_best) if b is not None])
    decisive.extend([f.trace for f in atypical])
    decisive.extend(hpd_traces(hpd))  # the HPD definitions not met, and why
    decisive.append(group_trace)
    first_pd = next((t.timepoint_date for t in timepoints if t.overall is _PD), None)
    return new_patient_assessment(  # positional, in field order (keywords cost as much again)
        timeline.patient_id,  # patient_id
        start,  # treatment_start
        view.baseline.day,  # baseline_date
        timepoints,  # timepoints
        immune.timepoints,  # immune_timepoints
        lesion_results,  # lesions
        best,  # best_response
        best_confirmed,  # best_response_confirmed
        immune_best,  # immune_best_response
        tuple(atypical),  # atypical
        group,  # response_group
        endpoints,  # endpoints
        view.auto_selected_targets,  # auto_selected_targets
        view.issues,  # issues
        tuple(decisive),  # traces
        timeline.profile,  # profile
        _local_treatment_since(  # local_treatment_after_dr
            timeline, min([f.timepoint_date for f in atypical if f.kind is _DR], default=None), as_of
        ),
        _local_treatment_since(timeline, first_pd, as_of),  # local_treatment_after_pd
        lymphocytes_pre,  # lymphocytes_pre
        ldh_pre,  # ldh_pre
        _treated_after(timeline, first_pd, as_of),  # treated_beyond_progression
    )
