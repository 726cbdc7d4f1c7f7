"""Atypical responses other than DR: pseudoprogression, hyperprogression, delayed response.

- PsPD (definition "irecist", the project default; reference section 1d): an iUPD that is not
  confirmed and is followed by iSD, iPR or iCR (the iUPD is reset, see `irecist`). The finding is
  dated at the iUPD timepoint (where the pseudoprogression was seen); metric `resolved_at_index`
  names the timepoint that reset it. Only the first such episode is reported. Decision: a reset to
  iNonCR-NonUPD (non-target disease only) is not PsPD, as the definition names iSD/iPR/iCR only.
- HPD (reference section 1d): needs a pre-baseline scan and RECIST 1.1 PD at the first evaluation,
  with complete target sums at pre-baseline, baseline and first evaluation (same baseline target
  lesions). Tumour growth rate (Ferte 2014 / Gomez-Roca; chferte/TumorGrowthRate):
  TG = 3 ln(D_t / D_0) / (t - t0), TGR = 100 (exp(TG) - 1) in % per month, months = days / 30.4375;
  TGR_ref from pre-baseline to baseline, TGR_exp from baseline to the first evaluation.
  Tumour growth kinetics (Saada-Bouzid 2017): TGK = (S_t - S_0) / (t - t0) in mm per month.
  Definitions, each reported separately when met:
    "champiat"      Champiat 2017 (Clin Cancer Res 23:1920): TGR_exp / TGR_ref >= 2
    "saada-bouzid"  Saada-Bouzid 2017 (Ann Oncol 28:1605): TGK_exp / TGK_ref >= 2
    "ferrara"       Ferrara 2018 (JAMA Oncol 4:1543): TGR_exp - TGR_ref > 50
    "kas"           Kas 2020 (JAMA Netw Open): TGR_exp - TGR_ref > 100
  Decision: ratio definitions need a growing reference period (TGR_ref > 0, TGK_ref > 0); with a
  stable or shrinking reference the ratio is undefined and the ratio definitions are not met.
- DeR, delayed response (definition "project-delayed-response"; no consensus definition exists,
  reference section 1d): the FIRST iPR/iCR of the course occurs at >= `delayed_response_min_days`
  after treatment start, after at least one iSD, with no confirmed progression (iCPD) before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal

from service.domain.irecist import RESET_RESPONSES, ImmuneCourse
from service.domain.lesions import LesionChange, target_sum
from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    ImmuneResponse,
    LesionStatus,
    Response,
    RuleTrace,
    TimepointResult,
    new_atypical_finding,
)
from service.domain.timeline import TimelineView

DAYS_PER_MONTH = Decimal("30.4375")
_CTX = Context(prec=28)
_METRIC = Decimal("0.0001")
PSPD_VERSION = "1.0"
HPD_VERSION = "1.0"
DER_DEFINITION = "project-delayed-response"
DER_VERSION = "1.0"
# Enum members as module constants (see `engine`, "Performance").
_ICPD = ImmuneResponse.ICPD
_ISD = ImmuneResponse.ISD
_IPR = ImmuneResponse.IPR
_ICR = ImmuneResponse.ICR


def _ids(row: Sequence[LesionChange], statuses: tuple[LesionStatus, ...]) -> tuple[str, ...]:
    return tuple(sorted(c.lesion_id for c in row if c.status in statuses))


def detect_pseudoprogression(
    course: ImmuneCourse,
    timepoints: Sequence[TimepointResult],
    changes: Sequence[Sequence[LesionChange]],
) -> AtypicalFinding | None:
    for ep in course.episodes:
        if ep.outcome != "reset" or ep.outcome_response not in RESET_RESPONSES or ep.outcome_index is None:
            continue
        tp = timepoints[ep.first_index - 1]
        return new_atypical_finding(
            kind=AtypicalKind.PSPD,
            definition="irecist",
            definition_version=PSPD_VERSION,
            timepoint_index=ep.first_index,
            timepoint_date=ep.first_date,
            trigger=None,
            overall_at_detection=tp.overall,
            growing_lesions=_ids(changes[ep.first_index - 1], (LesionStatus.PROGRESSING, LesionStatus.NEW)),
            shrinking_lesions=_ids(
                changes[ep.outcome_index - 1], (LesionStatus.RESPONDING, LesionStatus.DISAPPEARED)
            ),
            trace=RuleTrace.of(
                "pspd/irecist/iupd-not-confirmed-then-reset",
                iupd_index=ep.first_index,
                basis=",".join(ep.basis),
                resolved_at_index=ep.outcome_index,
                resolved_as=ep.outcome_response,
            ),
            metrics=(("resolved_at_index", Decimal(ep.outcome_index)),),
        )
    return None


@dataclass(frozen=True, slots=True)
class GrowthKinetics:
    """TGR (% per month) and TGK (mm per month) of the reference and experimental periods."""

    tgr_ref: Decimal
    tgr_exp: Decimal
    tgk_ref: Decimal
    tgk_exp: Decimal

    @property
    def delta_tgr(self) -> Decimal:
        return self.tgr_exp - self.tgr_ref


def tumour_growth_rate(d0_mm: Decimal, dt_mm: Decimal, days: int) -> Decimal:
    """TGR = 100 (exp(3 ln(Dt/D0) / months) - 1), % volume increase per month (Ferte 2014)."""
    months = _CTX.divide(Decimal(days), DAYS_PER_MONTH)
    tg = _CTX.divide(3 * _CTX.ln(_CTX.divide(dt_mm, d0_mm)), months)
    return 100 * (_CTX.exp(tg) - 1)


def tumour_growth_kinetics(s0_mm: Decimal, st_mm: Decimal, days: int) -> Decimal:
    """TGK = (St - S0) / months, mm per month (Saada-Bouzid 2017)."""
    return _CTX.divide(st_mm - s0_mm, _CTX.divide(Decimal(days), DAYS_PER_MONTH))


def growth_kinetics(view: TimelineView, timepoints: Sequence[TimepointResult]) -> GrowthKinetics | None:
    """Kinetics for HPD when its preconditions hold, else None."""
    pre = view.pre_baseline
    if pre is None or not view.targets or not view.follow_ups or not timepoints:
        return None
    if timepoints[0].overall is not Response.PD:
        return None
    s_pre = target_sum(view.targets, pre)
    s_base = target_sum(view.targets, view.baseline)
    s_first = target_sum(view.targets, view.follow_ups[0])
    if not (s_pre.complete and s_base.complete and s_first.complete):
        return None
    if s_pre.sum_mm <= 0 or s_base.sum_mm <= 0 or s_first.sum_mm <= 0:
        return None
    ref_days = (view.baseline.day - pre.day).days
    exp_days = (view.follow_ups[0].day - view.baseline.day).days
    return GrowthKinetics(
        tgr_ref=tumour_growth_rate(s_pre.sum_mm, s_base.sum_mm, ref_days),
        tgr_exp=tumour_growth_rate(s_base.sum_mm, s_first.sum_mm, exp_days),
        tgk_ref=tumour_growth_kinetics(s_pre.sum_mm, s_base.sum_mm, ref_days),
        tgk_exp=tumour_growth_kinetics(s_base.sum_mm, s_first.sum_mm, exp_days),
    )


def hpd_definitions_met(k: GrowthKinetics) -> tuple[str, ...]:
    met: list[str] = []
    if k.tgr_ref > 0 and k.tgr_exp >= 2 * k.tgr_ref:
        met.append("champiat")
    if k.tgk_ref > 0 and k.tgk_exp >= 2 * k.tgk_ref:
        met.append("saada-bouzid")
    if k.delta_tgr > 50:
        met.append("ferrara")
    if k.delta_tgr > 100:
        met.append("kas")
    return tuple(met)


def detect_hyperprogression(
    view: TimelineView,
    timepoints: Sequence[TimepointResult],
    changes: Sequence[Sequence[LesionChange]],
) -> tuple[AtypicalFinding, ...]:
    kinetics = growth_kinetics(view, timepoints)
    if kinetics is None:
        return ()
    tp = timepoints[0]
    metrics = (
        ("tgr_ref", kinetics.tgr_ref.quantize(_METRIC)),
        ("tgr_exp", kinetics.tgr_exp.quantize(_METRIC)),
        ("delta_tgr", kinetics.delta_tgr.quantize(_METRIC)),
        ("tgk_ref", kinetics.tgk_ref.quantize(_METRIC)),
        ("tgk_exp", kinetics.tgk_exp.quantize(_METRIC)),
    )
    growing = _ids(changes[0], (LesionStatus.PROGRESSING, LesionStatus.NEW))
    return tuple(
        new_atypical_finding(
            kind=AtypicalKind.HPD,
            definition=definition,
            definition_version=HPD_VERSION,
            timepoint_index=tp.index,
            timepoint_date=tp.timepoint_date,
            trigger=None,
            overall_at_detection=tp.overall,
            growing_lesions=growing,
            shrinking_lesions=(),
            trace=RuleTrace.of(f"hpd/{definition}", **dict(metrics)),
            metrics=metrics,
        )
        for definition in hpd_definitions_met(kinetics)
    )


def detect_delayed_response(
    view: TimelineView,
    course: ImmuneCourse,
    timepoints: Sequence[TimepointResult],
    params: AssessmentParameters,
) -> AtypicalFinding | None:
    seen_isd = False
    for result in course.timepoints:
        code = result.overall
        if code is _ICPD:
            return None
        if code is _ISD:
            seen_isd = True
        if code is _IPR or code is _ICR:
            days = (result.timepoint_date - view.treatment_start).days
            if not seen_isd or days < params.delayed_response_min_days:
                return None
            return new_atypical_finding(
                kind=AtypicalKind.DER,
                definition=DER_DEFINITION,
                definition_version=DER_VERSION,
                timepoint_index=result.index,
                timepoint_date=result.timepoint_date,
                trigger=None,
                overall_at_detection=timepoints[result.index - 1].overall,
                growing_lesions=(),
                shrinking_lesions=(),
                trace=RuleTrace.of(
                    "der/project-delayed-response",
                    response=code,
                    days_from_start=days,
                    min_days=params.delayed_response_min_days,
                ),
                metrics=(("days_from_start", Decimal(days)),),
            )
    return None
