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
  Every definition is judged (`evaluate_hyperprogression`, `HpdVerdict`): a met one is a finding
  whose metrics are TGR_ref/TGR_exp/ΔTGR in % per month, TGK_ref/TGK_exp in mm per month and the
  ratios TGR_exp/TGR_ref and TGKR (when defined), and whose trace names the three reference scans
  (date and target sum: `scan_-1` pre-baseline, `scan_0` baseline, `scan_1` first evaluation) and
  the comparison that decided it (`reason`); a definition not met, or none judged for want of data,
  leaves a trace with its reason in the assessment's traces (`hpd_traces`; docs/rules/hyperprogression.md).
- DeR, delayed response (definition "project-delayed-response"; no consensus definition exists,
  reference section 1d): the FIRST iPR/iCR of the course occurs at >= `delayed_response_min_days`
  after treatment start, after at least one iSD, with no confirmed progression (iCPD) before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
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
        """ΔTGR = TGR_exp - TGR_ref, % per month (Ferrara 2018, Kas 2020)."""
        return self.tgr_exp - self.tgr_ref

    @property
    def tgr_ratio(self) -> Decimal | None:
        """TGR_exp / TGR_ref (Champiat 2017); None unless the reference period grew (decision)."""
        return _CTX.divide(self.tgr_exp, self.tgr_ref) if self.tgr_ref > 0 else None

    @property
    def tgk_ratio(self) -> Decimal | None:
        """TGKR = TGK_exp / TGK_ref (Saada-Bouzid 2017); None unless the reference period grew."""
        return _CTX.divide(self.tgk_exp, self.tgk_ref) if self.tgk_ref > 0 else None


@dataclass(frozen=True, slots=True)
class HpdScan:
    """One of the three scans the kinetics compare: its timepoint index (-1 pre-baseline, 0 baseline,
    1 first evaluation), date and complete target sum."""

    index: int
    day: date
    sum_mm: Decimal
    refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HpdVerdict:
    """One HPD definition, met or not, and why (the compared numbers, or what is missing)."""

    definition: str
    met: bool
    reason: str


@dataclass(frozen=True, slots=True)
class HpdEvaluation:
    """Every HPD definition judged for one patient: the kinetics and reference scans when they can be
    computed, else `not_evaluable` (why none of the definitions can be judged)."""

    kinetics: GrowthKinetics | None
    scans: tuple[HpdScan, ...]  # pre-baseline, baseline, first evaluation
    verdicts: tuple[HpdVerdict, ...]
    not_evaluable: str | None


HPD_DEFINITIONS = ("champiat", "saada-bouzid", "ferrara", "kas")
_SCAN_ROLE = {-1: "pre-baseline", 0: "baseline", 1: "first-evaluation"}


def tumour_growth_rate(d0_mm: Decimal, dt_mm: Decimal, days: int) -> Decimal:
    """TGR = 100 (exp(3 ln(Dt/D0) / months) - 1), % volume increase per month (Ferte 2014)."""
    months = _CTX.divide(Decimal(days), DAYS_PER_MONTH)
    tg = _CTX.divide(3 * _CTX.ln(_CTX.divide(dt_mm, d0_mm)), months)
    return 100 * (_CTX.exp(tg) - 1)


def tumour_growth_kinetics(s0_mm: Decimal, st_mm: Decimal, days: int) -> Decimal:
    """TGK = (St - S0) / months, mm per month (Saada-Bouzid 2017)."""
    return _CTX.divide(st_mm - s0_mm, _CTX.divide(Decimal(days), DAYS_PER_MONTH))


def _not_evaluable(reason: str) -> HpdEvaluation:
    return HpdEvaluation(
        None, (), tuple(HpdVerdict(d, False, f"not evaluable: {reason}") for d in HPD_DEFINITIONS), reason
    )


def evaluate_hyperprogression(view: TimelineView, timepoints: Sequence[TimepointResult]) -> HpdEvaluation:
    """The kinetics of the reference and experimental periods and the verdict of each definition."""
    pre = view.pre_baseline
    if pre is None:
        return _not_evaluable("no pre-baseline scan")
    if not view.targets:
        return _not_evaluable("no target lesions")
    if not view.follow_ups or not timepoints:
        return _not_evaluable("no evaluation after baseline")
    if timepoints[0].overall is not Response.PD:
        return _not_evaluable(f"RECIST 1.1 at the first evaluation is {timepoints[0].overall.value}, not PD")
    first = view.follow_ups[0]
    scans = []
    for index, tp in ((-1, pre), (0, view.baseline), (1, first)):
        total = target_sum(view.targets, tp)
        if not total.complete:
            return _not_evaluable(f"target sum incomplete at timepoint {index}")
        if total.sum_mm <= 0:
            return _not_evaluable(f"target sum 0 mm at timepoint {index}")
        scans.append(HpdScan(index, tp.day, total.sum_mm, tp.refs))
    s_pre, s_base, s_first = (s.sum_mm for s in scans)
    ref_days = (view.baseline.day - pre.day).days
    exp_days = (first.day - view.baseline.day).days
    kinetics = GrowthKinetics(
        tgr_ref=tumour_growth_rate(s_pre, s_base, ref_days),
        tgr_exp=tumour_growth_rate(s_base, s_first, exp_days),
        tgk_ref=tumour_growth_kinetics(s_pre, s_base, ref_days),
        tgk_exp=tumour_growth_kinetics(s_base, s_first, exp_days),
    )
    return HpdEvaluation(kinetics, tuple(scans), hpd_verdicts(kinetics), None)


def _shown(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _ratio_verdict(definition: str, name: str, ratio: Decimal | None, ref: Decimal, unit: str) -> HpdVerdict:
    if ratio is None:
        return HpdVerdict(
            definition, False, f"{name} undefined: reference period not growing ({_shown(ref)} {unit} <= 0)"
        )
    if ratio >= 2:
        return HpdVerdict(definition, True, f"{name} {_shown(ratio)} >= 2")
    return HpdVerdict(definition, False, f"{name} {_shown(ratio)} < 2")


def _delta_verdict(definition: str, delta: Decimal, threshold: int) -> HpdVerdict:
    if delta > threshold:
        return HpdVerdict(definition, True, f"delta TGR {_shown(delta)} > {threshold} %/month")
    return HpdVerdict(definition, False, f"delta TGR {_shown(delta)} <= {threshold} %/month")


def hpd_verdicts(k: GrowthKinetics) -> tuple[HpdVerdict, ...]:
    """Each definition of the module doc, met or not, with the comparison that decided it."""
    return (
        _ratio_verdict("champiat", "TGR ratio", k.tgr_ratio, k.tgr_ref, "%/month"),
        _ratio_verdict("saada-bouzid", "TGKR", k.tgk_ratio, k.tgk_ref, "mm/month"),
        _delta_verdict("ferrara", k.delta_tgr, 50),
        _delta_verdict("kas", k.delta_tgr, 100),
    )


def hpd_definitions_met(k: GrowthKinetics) -> tuple[str, ...]:
    return tuple(v.definition for v in hpd_verdicts(k) if v.met)


def hpd_metrics(k: GrowthKinetics) -> tuple[tuple[str, Decimal], ...]:
    """The numbers of every HPD finding (names end in their unit; ratios only when defined)."""
    metrics = [
        ("tgr_ref_pct_per_month", k.tgr_ref.quantize(_METRIC)),
        ("tgr_exp_pct_per_month", k.tgr_exp.quantize(_METRIC)),
        ("delta_tgr_pct_per_month", k.delta_tgr.quantize(_METRIC)),
        ("tgk_ref_mm_per_month", k.tgk_ref.quantize(_METRIC)),
        ("tgk_exp_mm_per_month", k.tgk_exp.quantize(_METRIC)),
    ]
    if k.tgr_ratio is not None:
        metrics.append(("tgr_ratio", k.tgr_ratio.quantize(_METRIC)))
    if k.tgk_ratio is not None:
        metrics.append(("tgk_ratio", k.tgk_ratio.quantize(_METRIC)))
    return tuple(metrics)


def hpd_traces(evaluation: HpdEvaluation) -> tuple[RuleTrace, ...]:
    """A trace per definition NOT met (met ones are findings with their own trace), or one trace
    saying why none could be judged: so a definition that is not met still leaves its reason."""
    if evaluation.not_evaluable is not None:
        return (RuleTrace.of("hpd/not-evaluable", reason=evaluation.not_evaluable),)
    return tuple(
        RuleTrace.of(f"hpd/{v.definition}/not-met", reason=v.reason) for v in evaluation.verdicts if not v.met
    )


def detect_hyperprogression(
    view: TimelineView,
    timepoints: Sequence[TimepointResult],
    changes: Sequence[Sequence[LesionChange]],
    evaluation: HpdEvaluation | None = None,
) -> tuple[AtypicalFinding, ...]:
    """One finding per definition met, with the kinetics, the reference scans and the reason."""
    if evaluation is None:
        evaluation = evaluate_hyperprogression(view, timepoints)
    kinetics = evaluation.kinetics
    if kinetics is None:
        return ()
    tp = timepoints[0]
    metrics = hpd_metrics(kinetics)
    scan_facts = {f"scan_{s.index}_date": s.day for s in evaluation.scans} | {
        f"scan_{s.index}_sum_mm": s.sum_mm for s in evaluation.scans
    }
    reference_scans = tuple((_SCAN_ROLE[s.index], s.day) for s in evaluation.scans)
    growing = _ids(changes[0], (LesionStatus.PROGRESSING, LesionStatus.NEW))
    return tuple(
        new_atypical_finding(
            kind=AtypicalKind.HPD,
            definition=verdict.definition,
            definition_version=HPD_VERSION,
            timepoint_index=tp.index,
            timepoint_date=tp.timepoint_date,
            trigger=None,
            overall_at_detection=tp.overall,
            growing_lesions=growing,
            shrinking_lesions=(),
            trace=RuleTrace.of(
                f"hpd/{verdict.definition}", reason=verdict.reason, **scan_facts, **dict(metrics)
            ),
            metrics=metrics,
            reason=verdict.reason,
            reference_scans=reference_scans,
        )
        for verdict in evaluation.verdicts
        if verdict.met
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
