"""RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247): timepoint and best overall response.

- Target response (section 4.3.1): CR first when every non-nodal target is gone (0 mm) and every
  nodal target is < 10 mm short axis: nodes keep their short axis in the sum, so the sum may be
  > 0 at CR and may even grow by 20 % and 5 mm (two nodes 3 -> 9 mm) without any node becoming
  pathological again; section 4.3.1 defines CR by the nodes' size, not by the sum, and the RECIST
  FAQ ("Abnormal lymph node") counts a node as back only at >= 10 mm (docs/rules/recist-1.1.md).
  Then PD against the nadir (>= +20 % and >= +5 mm); then PR (>= -30 % versus baseline); else
  SD. When some targets were
  not measured the response is NE unless the measured subset already proves PD (section 4.3.4 /
  worked case W1: baseline 50 mm over 3 lesions, 2 measured = 80 mm => PD).
  Reappearance after an overall CR (recist.eortc.org FAQ "Does a new lesion always result in PD?"):
  a target that had disappeared and comes back (> 0 mm, nodes >= 10 mm) after an overall CR is PD.
- Non-target response (section 4.3.2): PD on unequivocal progression of any non-target lesion; NE
  when any non-target lesion was not assessed; CR when all are absent (nodes < 10 mm); else
  NonCR-NonPD. No non-target disease at baseline => not applicable (None).
  Decision (non-target status `increased`): section 4.3.2 makes "unequivocal progression of existing
  non-target lesions" PD, and the contract (docs/fhir-contract.md section 1, `non-target-status`) defines
  `increased` as "any further increase" - an increase beyond a progression already recorded (the
  iRECIST FAQ's INCLA, used to confirm a non-target iUPD). A further increase of an unequivocally
  progressed lesion is still unequivocal progression, so a non-target read `increased` is RECIST 1.1
  non-target PD as well (rule `recist1.1/non-target/pd-further-increase` when no lesion reads
  `unequivocal-progression`), and so is the lesion's own status (`lesions`) and the non-target
  trigger of dissociated response (`dissociated`). Previously it counted as NonCR-NonPD, which
  gave SD after a PD. iRECIST keeps its confirmation semantics (`irecist`).
- Overall response: Table 1 (target disease) and Table 2 (non-target disease only, where
  NonCR-NonPD is given instead of SD). A new lesion is PD in either table.
- After progression (section 4.4.1: the best overall response is recorded "from the start of the
  treatment until disease progression/recurrence"; PD ends the RECIST evaluation): from the first
  PD on, every later timepoint's `overall` and `reported` are PD and `post_progression` is set,
  with rule `recist1.1/post-progression` carrying what Tables 1/2 alone would have said (`strict`).
  Target and non-target categories keep what the scan showed (they are readings, not responses).
  Previously the series went on with SD, PR or even CR after PD (e.g. when a new lesion resolved).
- `reported` (recist.eortc.org FAQ "Managing PR when TP measurements change slightly", reference
  W2/W3): after a PR or CR, a strict SD stays PR until PD criteria are met. Decision: the
  continuation does not wait for confirmation, and NE/NonCR-NonPD/PD are reported as they are.
- Best overall response (section 4.4 and Table 3), on the strict `overall` values:
  unconfirmed = the best response up to and including the first PD; SD (and NonCR-NonPD) count
  only at >= `min_sd_days` after treatment start, otherwise they count as NE.
  Confirmed = admiralonco `derive_param_confirmed_bor` semantics (pharmaverse/admiralonco,
  worked case W8/W17): a CR needs a later CR >= `confirmation_min_days` later with only CR/NE in
  between (at most `max_ne_between` NE); a PR needs a later CR/PR >= `confirmation_min_days`
  later with only CR/PR/NE (and one SD when `accept_sd`) in between, no PR after a CR; unconfirmed
  CR/PR and SD count as SD at >= `min_sd_days`; anything earlier counts as NE; the best by CR > PR >
  SD > NonCR-NonPD > PD > NE, the earliest on ties. No follow-up assessment => None ("MISSING").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from operator import itemgetter
from typing import NamedTuple

from service.domain.frozen import fast_constructor
from service.domain.lesions import (
    PD_ABSOLUTE_MM,
    PD_RELATIVE_PCT,
    PR_RELATIVE_PCT,
    LesionChange,
    TargetSum,
    lesion_changes,
    percent_change,
    target_sum,
)
from service.domain.model import NonTargetState
from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    BestResponse,
    Criterion,
    Response,
    RuleTrace,
    TimepointResult,
    lazy_trace,
    new_best_response,
    new_timepoint_result,
)
from service.domain.timeline import (
    NOT_READ,
    PATHOLOGICAL_NODE_MM,
    Category,
    TimelineView,
    Timepoint,
)

# Enum members as module constants (see `engine`, "Performance").
_CR = Response.CR
_PR = Response.PR
_SD = Response.SD
_NON_CR_NON_PD = Response.NON_CR_NON_PD
_PD = Response.PD
_NE = Response.NE
_TARGET = Category.TARGET
_NON_TARGET = Category.NON_TARGET
_NEW_TARGET = Category.NEW_TARGET
_UNEQUIVOCAL = NonTargetState.UNEQUIVOCAL_PROGRESSION
_INCREASED = NonTargetState.INCREASED

_ZERO = Decimal(0)
_HUNDREDTH = Decimal("0.01")
# The thresholds of `lesions.meets_progression` / `meets_response` as Decimal operands.
_D100 = Decimal(100)
_D_PD_PCT = Decimal(PD_RELATIVE_PCT)
_D_PR_PCT = Decimal(PR_RELATIVE_PCT)
RANK: dict[Response, int] = {
    Response.CR: 0,
    Response.PR: 1,
    Response.SD: 2,
    Response.NON_CR_NON_PD: 3,
    Response.PD: 4,
    Response.NE: 5,
}
_RANK_OF = RANK.__getitem__
_tuple_new = tuple.__new__
_RECIST11 = Criterion.RECIST11
_DAY = itemgetter(0)  # sort key of (date, response) pairs, in C


def target_response(
    baseline_mm: Decimal, nadir_mm: Decimal, current: TargetSum, reappeared: bool = False
) -> tuple[Response, str]:
    """Target response of one timepoint and the id of the rule that gave it (see `classify_target`)."""
    total, complete, all_targets_cr, _ = current
    if all_targets_cr:  # before the arithmetic: nodes < 10 mm keep their size in the sum (section 4.3.1)
        return _CR, "recist1.1/target/cr"
    # `meets_progression` and `meets_response`, written out (this runs twice per timepoint).
    growth = total - nadir_mm
    if growth >= PD_ABSOLUTE_MM and _D100 * growth >= _D_PD_PCT * nadir_mm:
        return _PD, "recist1.1/target/pd" if complete else "recist1.1/target/pd-partial"
    if reappeared:
        return _PD, "recist1.1/target/pd-reappearance-after-cr"
    if not complete:
        return _NE, "recist1.1/target/ne-not-all-measured"
    if _D100 * (baseline_mm - total) >= _D_PR_PCT * baseline_mm:
        return _PR, "recist1.1/target/pr"
    return _SD, "recist1.1/target/sd"


def classify_target(
    baseline_mm: Decimal, nadir_mm: Decimal, current: TargetSum, *, reappeared: bool = False
) -> tuple[Response, RuleTrace]:
    """Target response of one timepoint (PD versus nadir first, then CR, PR versus baseline, SD)."""
    response, rule = target_response(baseline_mm, nadir_mm, current, reappeared)
    return response, lazy_trace(rule, _target_facts, (response, baseline_mm, nadir_mm, current))


def _target_facts(
    data: tuple[Response, Decimal, Decimal, TargetSum],
) -> tuple[tuple[str, object], ...]:
    """The facts of a target-response trace, from what `classify_target` compared (`lazy_trace`:
    gathered when the trace is first read; an NE trace names the targets not measured first)."""
    response, baseline_mm, nadir_mm, current = data
    facts = (
        ("baseline_mm", baseline_mm),
        ("nadir_mm", nadir_mm),
        ("current_mm", current.sum_mm),
        ("complete", current.complete),
    )
    if response is _NE:
        return (("missing", ",".join(current.missing)), *facts)
    return facts


def _non_target_verdict(
    progressing: Sequence[str], unequivocal: bool, missing: Sequence[str], present: int
) -> tuple[Response, RuleTrace]:
    """`progressing`: non-targets read `unequivocal-progression` or `increased` (`unequivocal`: any of
    the former), in lesion-id order."""
    if progressing:
        rule = "recist1.1/non-target/pd" if unequivocal else "recist1.1/non-target/pd-further-increase"
        return _PD, RuleTrace.of(rule, lesions=",".join(progressing))
    if missing:
        return _NE, RuleTrace.of("recist1.1/non-target/ne", missing=",".join(missing))
    if present == 0:
        return _CR, _NON_TARGET_CR
    return _NON_CR_NON_PD, _non_cr_non_pd_trace(present)


# Traces are values (frozen, equal by rule and rendered facts). Those whose facts are a few enum,
# bool or small int values recur from timepoint to timepoint and patient to patient, so each is
# made once and shared (`typed`: equal values of different types, such as 1 and True, which render
# differently, never share a trace).
_NON_TARGET_CR = RuleTrace.of("recist1.1/non-target/cr")
_CONTINUED_PR = RuleTrace.of("recist1.1/faq/continued-pr", strict=Response.SD)


@functools.lru_cache(maxsize=None, typed=True)
def _non_cr_non_pd_trace(present: int) -> RuleTrace:
    return RuleTrace.of("recist1.1/non-target/non-cr-non-pd", present=present)


@functools.lru_cache(maxsize=None, typed=True)
def _overall_trace(
    rule: str, target: Response | None, non_target: Response | None, new_lesion: bool
) -> RuleTrace:
    return RuleTrace.of(rule, target=target, non_target=non_target, new_lesion=new_lesion)


_NO_NON_TARGET = RuleTrace("recist1.1/non-target/none")


@functools.cache
def _post_progression_trace(strict: Response) -> RuleTrace:
    """A timepoint after the first PD: PD carried forward, with what Tables 1/2 alone would say."""
    return RuleTrace.of("recist1.1/post-progression", strict=strict)


def overall_decision(
    target: Response | None, non_target: Response | None, new_lesion: bool
) -> tuple[Response, str]:
    """Overall response and the id of the rule that gave it (see `overall_response`)."""
    if target is _PD or non_target is _PD or new_lesion:
        return _PD, "recist1.1/overall/pd"
    if target is None:  # Table 2
        if non_target is None:
            return _NE, "recist1.1/overall/ne-no-baseline-disease"
        if non_target is _CR:
            return _CR, "recist1.1/overall/table2/cr"
        if non_target is _NON_CR_NON_PD:
            return _NON_CR_NON_PD, "recist1.1/overall/table2/non-cr-non-pd"
        return _NE, "recist1.1/overall/table2/ne"
    if target is _NE:
        return _NE, "recist1.1/overall/table1/ne"
    if target is _CR:
        if non_target is None or non_target is _CR:
            return _CR, "recist1.1/overall/table1/cr"
        return _PR, "recist1.1/overall/table1/cr-with-non-target"
    if target is _PR:
        return _PR, "recist1.1/overall/table1/pr"
    return _SD, "recist1.1/overall/table1/sd"


def overall_response(
    target: Response | None, non_target: Response | None, new_lesion: bool
) -> tuple[Response, RuleTrace]:
    """RECIST 1.1 Table 1 (target disease) and Table 2 (non-target disease only)."""
    response, rule = overall_decision(target, non_target, new_lesion)
    return response, _overall_trace(rule, target, non_target, new_lesion)


class TimepointCategories(NamedTuple):
    """What one follow-up timepoint shows per lesion category, whatever the course before it.

    Read once per timepoint (`read_categories`, from the lesion values of `lesions.lesion_changes`)
    and shared by RECIST 1.1 and iRECIST, which differ only in what they compare it with (nadirs,
    an earlier iUPD). `new_present` are the new lesions that count (see `timeline`: equivocal
    nodes) and are present; the `nlt_`/`nlnt_`/`new_not_evaluable` facts split them into iRECIST
    new-lesion targets and non-targets (Seymour 2017).
    """

    tp: Timepoint
    targets: TargetSum | None  # None without target disease
    change_from_baseline_pct: Decimal | None  # of a complete target sum
    non_target: Response | None
    non_target_trace: RuleTrace
    non_target_increase: bool  # any non-target reads `increased`
    new_present: tuple[str, ...]
    nlt_sum_mm: Decimal | None  # None without new-lesion targets or when one is not measured
    nlnt_unequivocal: bool
    nlnt_increase: bool  # `increased` or `unequivocal-progression`
    new_not_evaluable: bool


class CategoryReadings(NamedTuple):
    """The baseline target sum and every follow-up timepoint's categories (element k-1 = timepoint k)."""

    baseline_sum_mm: Decimal | None  # None without target disease
    timepoints: tuple[TimepointCategories, ...]


def read_categories(
    view: TimelineView, changes: Sequence[Sequence[LesionChange]] | None = None
) -> CategoryReadings:
    """One pass over every lesion of every follow-up timepoint, for both criteria.

    `changes` are `lesion_changes(view)` (computed here when not given): each lesion's value, status
    and presence are read there once.
    """
    if changes is None:
        changes = lesion_changes(view)
    has_targets = bool(view.targets)
    has_non_targets = bool(view.non_targets)
    baseline_sum = target_sum(view.targets, view.baseline).sum_mm if has_targets else None
    out: list[TimepointCategories] = []
    for tp, row in zip(view.follow_ups, changes, strict=True):
        index = tp.index
        total = _ZERO
        missing: list[str] = []
        all_cr = True
        progressing: list[str] = []
        nt_missing: list[str] = []
        nt_present = 0
        nt_increase = False
        nt_unequivocal = False
        present: list[str] = []
        nlt_total = _ZERO
        has_nlt = False
        nlt_complete = True
        unequivocal = increase = not_evaluable = False
        # Lesion-id order, as view.targets / non_targets / new_lesions. Unpacked in one step: cheaper
        # than reading the LesionChange fields by name.
        for tracked, _, value, _, _, state, is_present, _, _, _ in row:
            category = tracked.category
            if category is _TARGET:  # sum of diameters (section 4.3.2), as `target_sum`
                if value is None:
                    missing.append(tracked.lesion.lesion_id)
                    all_cr = False
                    continue
                total += value
                if is_present:  # > 0 mm, or a node >= 10 mm (`Reading.present`): not CR
                    all_cr = False
            elif category is _NON_TARGET:  # section 4.3.2, judged by `_non_target_verdict`
                if state is _UNEQUIVOCAL:
                    progressing.append(tracked.lesion.lesion_id)
                    nt_unequivocal = True
                    continue
                if state is _INCREASED:
                    progressing.append(tracked.lesion.lesion_id)
                    nt_increase = True
                    continue
                if is_present is None:
                    nt_missing.append(tracked.lesion.lesion_id)
                elif is_present:
                    nt_present += 1
            elif tracked.counted_from is not None and tracked.counted_from <= index:
                # New lesions that count (see timeline: equivocal nodes) and are present.
                if is_present:
                    present.append(tracked.lesion.lesion_id)
                if category is _NEW_TARGET:
                    has_nlt = True
                    if value is None:
                        nlt_complete = False
                        not_evaluable = True
                    else:
                        nlt_total += value
                else:
                    if value is None and state is None:
                        not_evaluable = True
                    if state is _UNEQUIVOCAL:
                        unequivocal = increase = True
                    elif state is _INCREASED:
                        increase = True
        targets: TargetSum | None = None
        pct: Decimal | None = None
        if has_targets:
            complete = not missing
            targets = _tuple_new(TargetSum, (total, complete, all_cr and complete, tuple(missing)))
            if complete and baseline_sum:  # `percent_change`, written out
                pct = (_D100 * (total - baseline_sum) / baseline_sum).quantize(_HUNDREDTH, ROUND_HALF_EVEN)
        non_target: Response | None = None
        nt_trace = _NO_NON_TARGET
        if has_non_targets:
            non_target, nt_trace = _non_target_verdict(progressing, nt_unequivocal, nt_missing, nt_present)
        out.append(  # TimepointCategories(...) without its Python-level __new__, in field order
            _tuple_new(
                TimepointCategories,
                (
                    tp,
                    targets,
                    pct,
                    non_target,
                    nt_trace,
                    nt_increase,
                    tuple(present),
                    nlt_total if has_nlt and nlt_complete else None,
                    unequivocal,
                    increase,
                    not_evaluable,
                ),
            )
        )
    return CategoryReadings(baseline_sum, tuple(out))


@dataclass(frozen=True, slots=True)
class RecistCourse:
    """RECIST 1.1 timepoint results plus the per-timepoint target sums used to get them."""

    timepoints: tuple[TimepointResult, ...]
    sums: tuple[TargetSum | None, ...]  # element k-1 = timepoint k; None without target disease


_new_course = fast_constructor(RecistCourse)  # see `frozen`


def reappeared_targets(view: TimelineView, previous: Timepoint | None, tp: Timepoint) -> bool:
    """A target at 0 mm (node < 10 mm) on the previous timepoint is back on this one."""
    if previous is None:
        return False
    before_of = previous.readings.get
    now_of = tp.readings.get
    for t in view.targets:
        lesion = t.lesion
        before = before_of(lesion.lesion_id, NOT_READ).value_mm
        now = now_of(lesion.lesion_id, NOT_READ).value_mm
        if before is None or now is None:
            continue
        if lesion.is_lymph_node:
            if before < PATHOLOGICAL_NODE_MM <= now:  # gone (< 10 mm) and back
                return True
        elif before == 0 and now > 0:
            return True
    return False


def change_from_nadir(
    cat: TimepointCategories, current: TargetSum | None, baseline_mm: Decimal | None, nadir_mm: Decimal | None
) -> Decimal | None:
    """Change of a complete sum from the nadir (the change from baseline while the nadir is baseline)."""
    if current is None or not current.complete:
        return None
    if nadir_mm == baseline_mm:
        return cat.change_from_baseline_pct
    return percent_change(current.sum_mm, nadir_mm)


def assess_timepoints(view: TimelineView, readings: CategoryReadings | None = None) -> RecistCourse:
    """Strict (Tables 1/2) and reported ("continued PR") responses of every follow-up timepoint.

    `readings` (from `read_categories(view)`) may be passed in to share them with iRECIST.
    """
    if readings is None:
        readings = read_categories(view)
    baseline_sum = readings.baseline_sum_mm
    nadir = baseline_sum
    results: list[TimepointResult] = []
    sums: list[TargetSum | None] = []
    had_overall_cr = False
    had_response = False
    had_pd = False
    previous: Timepoint | None = None
    for cat in readings.timepoints:
        # Unpacked in one step: cheaper than reading the fields by name.
        tp, targets, from_baseline_pct, non_target, non_target_trace, _, new_ids, _, _, _, _ = cat
        traces: list[RuleTrace] = []
        current: TargetSum | None = None
        target: Response | None = None
        if baseline_sum is not None and nadir is not None and targets is not None:
            current = targets
            reappeared = had_overall_cr and reappeared_targets(view, previous, tp)
            target, rule = target_response(baseline_sum, nadir, current, reappeared)  # `classify_target`
            traces.append(lazy_trace(rule, _target_facts, (target, baseline_sum, nadir, current)))
        traces.append(non_target_trace)
        if new_ids:
            traces.append(RuleTrace.of("recist1.1/new-lesion/present", lesions=",".join(new_ids)))
        overall, overall_rule = overall_decision(target, non_target, bool(new_ids))
        traces.append(_overall_trace(overall_rule, target, non_target, bool(new_ids)))  # `overall_response`
        if had_pd:  # no response after progression (section 4.4.1): PD stays, the timepoint is marked
            traces.append(_post_progression_trace(overall))
            overall = _PD
        reported = overall
        if overall is _SD and had_response:
            reported = _PR
            traces.append(_CONTINUED_PR)
        sum_mm: Decimal | None = None  # of a complete sum
        from_nadir: Decimal | None = None  # `change_from_nadir`, written out
        if current is not None and current.complete:
            sum_mm = current.sum_mm
            # `nadir is baseline_sum` is `nadir == baseline_sum` here: the nadir starts as the
            # baseline object and is only replaced by a strictly smaller sum.
            from_nadir = from_baseline_pct if nadir is baseline_sum else percent_change(sum_mm, nadir)
        results.append(
            new_timepoint_result(  # positional, in field order (keywords cost as much again)
                tp.index,  # index
                tp.day,  # timepoint_date
                target,  # target
                non_target,  # non_target
                bool(new_ids),  # new_lesion
                overall,  # overall
                reported,  # reported
                sum_mm,  # sum_mm
                baseline_sum,  # baseline_sum_mm
                nadir,  # nadir_sum_mm
                from_baseline_pct,  # change_from_baseline_pct
                from_nadir,  # change_from_nadir_pct
                tuple(traces),  # traces
                tp.refs,  # source_refs
                had_pd,  # post_progression
            )
        )
        sums.append(current)
        if sum_mm is not None and nadir is not None and sum_mm < nadir:
            nadir = sum_mm  # NE (incomplete) timepoints never enter the nadir
        had_overall_cr = had_overall_cr or overall is _CR
        had_response = had_response or overall is _CR or overall is _PR
        had_pd = had_pd or overall is _PD
        previous = tp
    return _new_course(tuple(results), tuple(sums))


Assessment = tuple[date, Response]


def _until_first_pd(assessments: Sequence[Assessment]) -> list[Assessment]:
    out: list[Assessment] = []
    for a in sorted(assessments, key=_DAY):
        out.append(a)
        if a[1] is _PD:
            break
    return out


def _pick(
    candidates: Sequence[tuple[Response, date]],
    start: date,
    period_end: date,
    params: AssessmentParameters,
    confirmed: bool,
) -> BestResponse:
    # The best rank, the earliest on ties: `min` over (rank, day, response) compares in C (ranks are
    # unique per response, so equal rank and day means equal triples and `min` keeps the first).
    _, day, response = min([(_RANK_OF(r), d, r) for r, d in candidates])
    if confirmed:
        trace = lazy_trace("recist1.1/bor/confirmed", _confirmed_bor_facts, (response, day, params))
    else:
        trace = lazy_trace("recist1.1/bor/unconfirmed", _unconfirmed_bor_facts, (response, day, params))
    return new_best_response(  # positional, in field order (keywords cost as much again)
        _RECIST11,  # criterion
        response,  # response
        confirmed,  # confirmation_required
        start,  # period_start
        period_end,  # period_end
        day,  # response_date
        trace,  # trace
    )


# The facts of the best-response traces (`lazy_trace`: gathered when the trace is first read).
def _unconfirmed_bor_facts(
    data: tuple[Response, date, AssessmentParameters],
) -> tuple[tuple[str, object], ...]:
    response, day, params = data
    return (("response", response), ("date", day), ("min_sd_days", params.min_sd_days))


def _confirmed_bor_facts(data: tuple[Response, date, AssessmentParameters]) -> tuple[tuple[str, object], ...]:
    response, day, params = data
    return (
        ("response", response),
        ("date", day),
        ("confirmation_min_days", params.confirmation_min_days),
        ("min_sd_days", params.min_sd_days),
        ("max_ne_between", params.max_ne_between),
        ("accept_sd", params.accept_sd),
    )


def best_overall_response(
    assessments: Sequence[Assessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """Best response without confirmation (RECIST 1.1 section 4.4.1), up to the first PD."""
    return _best_unconfirmed(_until_first_pd(assessments), start, params)


def best_overall_responses(
    assessments: Sequence[Assessment], start: date, params: AssessmentParameters
) -> tuple[BestResponse | None, BestResponse | None]:
    """`best_overall_response` and `confirmed_best_overall_response`, sorting once."""
    used = _until_first_pd(assessments)
    return _best_unconfirmed(used, start, params), _best_confirmed(used, start, params)


def _best_unconfirmed(
    used: list[Assessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    if not used:
        return None
    candidates: list[tuple[Response, date]] = []
    min_sd_days = params.min_sd_days
    for day, response in used:
        if (response is _SD or response is _NON_CR_NON_PD) and (day - start).days < min_sd_days:
            candidates.append((_NE, day))
        else:
            candidates.append((response, day))
    return _pick(candidates, start, used[-1][0], params, False)


def _confirms_cr(later: Sequence[Assessment], day: date, params: AssessmentParameters) -> bool:
    window: list[Response] = []
    for d, r in later:
        window.append(r)
        if r is _CR and (d - day).days >= params.confirmation_min_days:
            return all(x in (_CR, _NE) for x in window) and (window.count(_NE) <= params.max_ne_between)
    return False


def _confirms_pr(later: Sequence[Assessment], day: date, params: AssessmentParameters) -> bool:
    window: list[Assessment] = []
    for d, r in later:
        window.append((d, r))
        if r in (_CR, _PR) and (d - day).days >= params.confirmation_min_days:
            values = [x[1] for x in window]
            allowed = (_CR, _PR, _SD, _NE)
            if not all(v in allowed for v in values):
                return False
            if values.count(_NE) > params.max_ne_between:
                return False
            if values.count(_SD) > (1 if params.accept_sd else 0):
                return False
            cr_days = [x[0] for x in window if x[1] is _CR]
            pr_days = [x[0] for x in window if x[1] is _PR]
            return not cr_days or not pr_days or min(cr_days) > max(pr_days)
    return False


def confirmed_best_overall_response(
    assessments: Sequence[Assessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """Best response with confirmation (RECIST 1.1 section 4.6, Table 3; admiralonco semantics)."""
    return _best_confirmed(_until_first_pd(assessments), start, params)


def _best_confirmed(used: list[Assessment], start: date, params: AssessmentParameters) -> BestResponse | None:
    if not used:
        return None
    candidates: list[tuple[Response, date]] = []
    min_sd_days = params.min_sd_days
    for pos, (day, response) in enumerate(used):
        in_window = (day - start).days >= min_sd_days  # SD counts from `min_sd_days` after start
        if response is _CR and _confirms_cr(used[pos + 1 :], day, params):
            candidates.append((_CR, day))
        elif response is _PR and _confirms_pr(used[pos + 1 :], day, params):
            candidates.append((_PR, day))
        elif response in (_CR, _PR, _SD):
            candidates.append((_SD if in_window else _NE, day))
        elif response is _NON_CR_NON_PD:
            candidates.append((_NON_CR_NON_PD if in_window else _NE, day))
        else:
            candidates.append((response, day))
    return _pick(candidates, start, used[-1][0], params, True)
