"""RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247): timepoint and best overall response.

- Target response (section 4.3.1): PD is judged first, against the nadir (>= +20 % and >= +5 mm);
  then CR (every non-nodal target gone and every nodal target < 10 mm short axis; the sum may be
  > 0 at CR, reference W11); then PR (>= -30 % versus baseline); else SD. When some targets were
  not measured the response is NE unless the measured subset already proves PD (section 4.3.4 /
  reference W1: baseline 50 mm over 3 lesions, 2 measured = 80 mm => PD).
  Reappearance after an overall CR (recist.eortc.org FAQ "Does a new lesion always result in PD?"):
  a target that had disappeared and comes back (> 0 mm, nodes >= 10 mm) after an overall CR is PD.
- Non-target response (section 4.3.2): PD on unequivocal progression of any non-target lesion; NE
  when any non-target lesion was not assessed; CR when all are absent (nodes < 10 mm); else
  NonCR-NonPD. No non-target disease at baseline => not applicable (None).
- Overall response: Table 1 (target disease) and Table 2 (non-target disease only, where
  NonCR-NonPD is given instead of SD). A new lesion is PD in either table.
- `reported` (recist.eortc.org FAQ "Managing PR when TP measurements change slightly", reference
  W2/W3): after a PR or CR, a strict SD stays PR until PD criteria are met. Decision: the
  continuation does not wait for confirmation, and NE/NonCR-NonPD/PD are reported as they are.
- Best overall response (section 4.4 and Table 3), on the strict `overall` values:
  unconfirmed = the best response up to and including the first PD; SD (and NonCR-NonPD) count
  only at >= `min_sd_days` after treatment start, otherwise they count as NE.
  Confirmed = admiralonco `derive_param_confirmed_bor` semantics (pharmaverse/admiralonco,
  reference W8/W17): a CR needs a later CR >= `confirmation_min_days` later with only CR/NE in
  between (at most `max_ne_between` NE); a PR needs a later CR/PR >= `confirmation_min_days`
  later with only CR/PR/NE (and one SD when `accept_sd`) in between, no PR after a CR; unconfirmed
  CR/PR and SD count as SD at >= `min_sd_days`; anything earlier counts as NE; the best by CR > PR >
  SD > NonCR-NonPD > PD > NE, the earliest on ties. No follow-up assessment => None ("MISSING").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from service.domain.lesions import (
    TargetSum,
    meets_progression,
    meets_response,
    percent_change,
    target_sum,
)
from service.domain.model import NonTargetState
from service.domain.parameters import AssessmentParameters
from service.domain.results import BestResponse, Criterion, Response, RuleTrace, TimepointResult
from service.domain.timeline import PATHOLOGICAL_NODE_MM, TimelineView, Timepoint, TrackedLesion

RANK: dict[Response, int] = {
    Response.CR: 0,
    Response.PR: 1,
    Response.SD: 2,
    Response.NON_CR_NON_PD: 3,
    Response.PD: 4,
    Response.NE: 5,
}


def classify_target(
    baseline_mm: Decimal, nadir_mm: Decimal, current: TargetSum, *, reappeared: bool = False
) -> tuple[Response, RuleTrace]:
    """Target response of one timepoint (PD versus nadir first, then CR, PR versus baseline, SD)."""
    facts = {
        "baseline_mm": baseline_mm,
        "nadir_mm": nadir_mm,
        "current_mm": current.sum_mm,
        "complete": current.complete,
    }
    if meets_progression(current.sum_mm, nadir_mm):
        rule = "recist1.1/target/pd" if current.complete else "recist1.1/target/pd-partial"
        return Response.PD, RuleTrace.of(rule, **facts)
    if reappeared:
        return Response.PD, RuleTrace.of("recist1.1/target/pd-reappearance-after-cr", **facts)
    if not current.complete:
        return Response.NE, RuleTrace.of(
            "recist1.1/target/ne-not-all-measured", missing=",".join(current.missing), **facts
        )
    if current.all_targets_cr:
        return Response.CR, RuleTrace.of("recist1.1/target/cr", **facts)
    if meets_response(current.sum_mm, baseline_mm):
        return Response.PR, RuleTrace.of("recist1.1/target/pr", **facts)
    return Response.SD, RuleTrace.of("recist1.1/target/sd", **facts)


def classify_non_target(
    non_targets: Sequence[TrackedLesion], tp: Timepoint
) -> tuple[Response | None, RuleTrace]:
    """Non-target response of one timepoint (RECIST 1.1 section 4.3.2)."""
    if not non_targets:
        return None, RuleTrace.of("recist1.1/non-target/none")
    progressing: list[str] = []
    missing: list[str] = []
    present = 0
    for t in non_targets:
        reading = tp.reading(t.lesion_id)
        if reading.state is NonTargetState.UNEQUIVOCAL_PROGRESSION:
            progressing.append(t.lesion_id)
            continue
        is_present = reading.present(t.is_node)
        if is_present is None:
            missing.append(t.lesion_id)
        elif is_present:
            present += 1
    if progressing:
        return Response.PD, RuleTrace.of("recist1.1/non-target/pd", lesions=",".join(progressing))
    if missing:
        return Response.NE, RuleTrace.of("recist1.1/non-target/ne", missing=",".join(missing))
    if present == 0:
        return Response.CR, RuleTrace.of("recist1.1/non-target/cr")
    return Response.NON_CR_NON_PD, RuleTrace.of("recist1.1/non-target/non-cr-non-pd", present=present)


def overall_response(
    target: Response | None, non_target: Response | None, new_lesion: bool
) -> tuple[Response, RuleTrace]:
    """RECIST 1.1 Table 1 (target disease) and Table 2 (non-target disease only)."""
    facts = {"target": target, "non_target": non_target, "new_lesion": new_lesion}
    if target is Response.PD or non_target is Response.PD or new_lesion:
        return Response.PD, RuleTrace.of("recist1.1/overall/pd", **facts)
    if target is None:  # Table 2
        if non_target is None:
            return Response.NE, RuleTrace.of("recist1.1/overall/ne-no-baseline-disease", **facts)
        if non_target is Response.CR:
            return Response.CR, RuleTrace.of("recist1.1/overall/table2/cr", **facts)
        if non_target is Response.NON_CR_NON_PD:
            return Response.NON_CR_NON_PD, RuleTrace.of("recist1.1/overall/table2/non-cr-non-pd", **facts)
        return Response.NE, RuleTrace.of("recist1.1/overall/table2/ne", **facts)
    if target is Response.NE:
        return Response.NE, RuleTrace.of("recist1.1/overall/table1/ne", **facts)
    if target is Response.CR:
        if non_target in (None, Response.CR):
            return Response.CR, RuleTrace.of("recist1.1/overall/table1/cr", **facts)
        return Response.PR, RuleTrace.of("recist1.1/overall/table1/cr-with-non-target", **facts)
    if target is Response.PR:
        return Response.PR, RuleTrace.of("recist1.1/overall/table1/pr", **facts)
    return Response.SD, RuleTrace.of("recist1.1/overall/table1/sd", **facts)


@dataclass(frozen=True, slots=True)
class RecistCourse:
    """RECIST 1.1 timepoint results plus the per-timepoint target sums used to get them."""

    timepoints: tuple[TimepointResult, ...]
    sums: tuple[TargetSum | None, ...]  # element k-1 = timepoint k; None without target disease


def new_lesion_present(view: TimelineView, tp: Timepoint) -> tuple[str, ...]:
    """New lesions that count (see timeline: equivocal nodes) and are present at this timepoint."""
    return tuple(
        t.lesion_id
        for t in view.new_lesions
        if t.counted_from is not None
        and t.counted_from <= tp.index
        and tp.reading(t.lesion_id).present(t.is_node)
    )


def reappeared_targets(view: TimelineView, previous: Timepoint | None, tp: Timepoint) -> bool:
    """A target at 0 mm (node < 10 mm) on the previous timepoint is back on this one."""
    if previous is None:
        return False
    for t in view.targets:
        before = previous.reading(t.lesion_id).value_mm
        now = tp.reading(t.lesion_id).value_mm
        if before is None or now is None:
            continue
        gone = before < PATHOLOGICAL_NODE_MM if t.is_node else before == 0
        back = now >= PATHOLOGICAL_NODE_MM if t.is_node else now > 0
        if gone and back:
            return True
    return False


def assess_timepoints(view: TimelineView) -> RecistCourse:
    """Strict (Tables 1/2) and reported ("continued PR") responses of every follow-up timepoint."""
    has_targets = bool(view.targets)
    baseline_sum = target_sum(view.targets, view.baseline).sum_mm if has_targets else None
    nadir = baseline_sum
    results: list[TimepointResult] = []
    sums: list[TargetSum | None] = []
    had_overall_cr = False
    had_response = False
    had_pd = False
    previous: Timepoint | None = None
    for tp in view.follow_ups:
        traces: list[RuleTrace] = []
        current: TargetSum | None = None
        target: Response | None = None
        if baseline_sum is not None and nadir is not None:
            current = target_sum(view.targets, tp)
            reappeared = had_overall_cr and reappeared_targets(view, previous, tp)
            target, trace = classify_target(baseline_sum, nadir, current, reappeared=reappeared)
            traces.append(trace)
        non_target, nt_trace = classify_non_target(view.non_targets, tp)
        traces.append(nt_trace)
        new_ids = new_lesion_present(view, tp)
        if new_ids:
            traces.append(RuleTrace.of("recist1.1/new-lesion/present", lesions=",".join(new_ids)))
        overall, overall_trace = overall_response(target, non_target, bool(new_ids))
        traces.append(overall_trace)
        reported = overall
        if overall is Response.SD and had_response and not had_pd:
            reported = Response.PR
            traces.append(RuleTrace.of("recist1.1/faq/continued-pr", strict=overall))
        results.append(
            TimepointResult(
                index=tp.index,
                timepoint_date=tp.day,
                target=target,
                non_target=non_target,
                new_lesion=bool(new_ids),
                overall=overall,
                reported=reported,
                sum_mm=current.sum_mm if current is not None and current.complete else None,
                baseline_sum_mm=baseline_sum,
                nadir_sum_mm=nadir,
                change_from_baseline_pct=(
                    percent_change(current.sum_mm, baseline_sum) if current and current.complete else None
                ),
                change_from_nadir_pct=(
                    percent_change(current.sum_mm, nadir) if current and current.complete else None
                ),
                traces=tuple(traces),
                source_refs=tp.refs,
            )
        )
        sums.append(current)
        if current is not None and current.complete and nadir is not None and current.sum_mm < nadir:
            nadir = current.sum_mm  # NE (incomplete) timepoints never enter the nadir
        had_overall_cr = had_overall_cr or overall is Response.CR
        had_response = had_response or overall in (Response.CR, Response.PR)
        had_pd = had_pd or overall is Response.PD
        previous = tp
    return RecistCourse(tuple(results), tuple(sums))


Assessment = tuple[date, Response]


def _sd_window_open(day: date, start: date, min_sd_days: int) -> bool:
    return (day - start).days >= min_sd_days


def _until_first_pd(assessments: Sequence[Assessment]) -> list[Assessment]:
    out: list[Assessment] = []
    for a in sorted(assessments, key=lambda x: x[0]):
        out.append(a)
        if a[1] is Response.PD:
            break
    return out


def _pick(
    candidates: Sequence[tuple[Response, date]],
    start: date,
    period_end: date,
    confirmed: bool,
    rule: str,
    **facts: object,
) -> BestResponse:
    response, day = min(candidates, key=lambda c: (RANK[c[0]], c[1]))
    return BestResponse(
        criterion=Criterion.RECIST11,
        response=response,
        confirmation_required=confirmed,
        period_start=start,
        period_end=period_end,
        response_date=day,
        trace=RuleTrace.of(rule, response=response, date=day, **facts),
    )


def best_overall_response(
    assessments: Sequence[Assessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """Best response without confirmation (RECIST 1.1 section 4.4.1), up to the first PD."""
    used = _until_first_pd(assessments)
    if not used:
        return None
    candidates: list[tuple[Response, date]] = []
    for day, response in used:
        if response in (Response.SD, Response.NON_CR_NON_PD) and not _sd_window_open(
            day, start, params.min_sd_days
        ):
            candidates.append((Response.NE, day))
        else:
            candidates.append((response, day))
    return _pick(
        candidates, start, used[-1][0], False, "recist1.1/bor/unconfirmed", min_sd_days=params.min_sd_days
    )


def _confirms_cr(later: Sequence[Assessment], day: date, params: AssessmentParameters) -> bool:
    window: list[Response] = []
    for d, r in later:
        window.append(r)
        if r is Response.CR and (d - day).days >= params.confirmation_min_days:
            return all(x in (Response.CR, Response.NE) for x in window) and (
                window.count(Response.NE) <= params.max_ne_between
            )
    return False


def _confirms_pr(later: Sequence[Assessment], day: date, params: AssessmentParameters) -> bool:
    window: list[Assessment] = []
    for d, r in later:
        window.append((d, r))
        if r in (Response.CR, Response.PR) and (d - day).days >= params.confirmation_min_days:
            values = [x[1] for x in window]
            allowed = (Response.CR, Response.PR, Response.SD, Response.NE)
            if not all(v in allowed for v in values):
                return False
            if values.count(Response.NE) > params.max_ne_between:
                return False
            if values.count(Response.SD) > (1 if params.accept_sd else 0):
                return False
            cr_days = [x[0] for x in window if x[1] is Response.CR]
            pr_days = [x[0] for x in window if x[1] is Response.PR]
            return not cr_days or not pr_days or min(cr_days) > max(pr_days)
    return False


def confirmed_best_overall_response(
    assessments: Sequence[Assessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """Best response with confirmation (RECIST 1.1 section 4.6, Table 3; admiralonco semantics)."""
    used = _until_first_pd(assessments)
    if not used:
        return None
    candidates: list[tuple[Response, date]] = []
    for pos, (day, response) in enumerate(used):
        later = used[pos + 1 :]
        in_window = _sd_window_open(day, start, params.min_sd_days)
        if response is Response.CR and _confirms_cr(later, day, params):
            candidates.append((Response.CR, day))
        elif response is Response.PR and _confirms_pr(later, day, params):
            candidates.append((Response.PR, day))
        elif response in (Response.CR, Response.PR, Response.SD):
            candidates.append((Response.SD if in_window else Response.NE, day))
        elif response is Response.NON_CR_NON_PD:
            candidates.append((Response.NON_CR_NON_PD if in_window else Response.NE, day))
        else:
            candidates.append((response, day))
    return _pick(
        candidates,
        start,
        used[-1][0],
        True,
        "recist1.1/bor/confirmed",
        confirmation_min_days=params.confirmation_min_days,
        min_sd_days=params.min_sd_days,
        max_ne_between=params.max_ne_between,
        accept_sd=params.accept_sd,
    )
