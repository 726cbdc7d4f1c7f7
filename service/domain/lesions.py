"""Per-lesion values, sums of diameters, nadirs and lesion-level responses.

- Sum of diameters (RECIST 1.1 section 4.3.2): long axis of non-nodal targets + short axis of nodal
  targets, at every timepoint. A sum is *complete* when every target has a value; an incomplete sum
  can still prove progression (RECIST 1.1 section 4.3.4 / worked case W1) but never enters the nadir.
- Thresholds are compared exactly by cross-multiplying Decimals (worked case W10):
  progression = at least +20 % AND at least +5 mm versus the nadir; response = at least -30 %
  versus baseline. Where this runs per lesion and timepoint the inequality is solved for the value
  once (value <= 0.7 baseline, value >= 1.2 nadir): exact as well, as Decimal products of measured
  values (a few digits) are not rounded.
- Lesion-level status (contract LesionResponse): `responding` <= -30 % versus the lesion's own
  baseline; `progressing` >= +20 % and >= +5 mm versus the lesion's own nadir (the smallest of its
  baseline and earlier evaluable values), and for a lymph node only at >= 10 mm short axis (a
  node below 10 mm is normal: RECIST 1.1 section 4.3.1, RECIST FAQ "Abnormal lymph node"; see
  docs/rules/recist-1.1.md); `disappeared` at 0 mm (or status absent); `new` for a
  lesion first seen after baseline; `not-evaluable` when nothing usable was recorded; otherwise
  `stable`. Progression is checked before response, as for sums. Non-target lesions without a
  diameter take their status from the qualitative reading (`unequivocal-progression` and
  `increased` = progressing, `absent` = disappeared, `present` = stable; `increased` is a further
  increase of a progressed lesion, see `recist`).
- Decision: the nadir of a timepoint is taken over EARLIER timepoints only (baseline included), so
  a timepoint is never compared with itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from operator import attrgetter
from typing import NamedTuple

from service.domain.model import NonTargetState
from service.domain.results import LesionResult, LesionStatus, lazy_trace, new_lesion_result
from service.domain.timeline import (
    NOT_READ,
    PATHOLOGICAL_NODE_MM,
    Category,
    TimelineView,
    Timepoint,
    TrackedLesion,
)

PD_RELATIVE_PCT = 20
PD_ABSOLUTE_MM = Decimal(5)
PR_RELATIVE_PCT = 30
_HUNDREDTH = Decimal("0.01")
_ZERO = Decimal(0)
# Decimal operands for the exact cross-multiplications (the same values as the int constants above,
# without converting an int on every comparison).
_D100 = Decimal(100)
_D_PD_PCT = Decimal(PD_RELATIVE_PCT)
_D_PR_PCT = Decimal(PR_RELATIVE_PCT)
_PD_FACTOR = (_D100 + _D_PD_PCT) / _D100  # 1.2, exact
_PR_FACTOR = (_D100 - _D_PR_PCT) / _D100  # 0.7, exact
# Enum members read in the per-lesion loops, as module constants (see `engine`, "Performance").
_TARGET = Category.TARGET
_NEW_TARGET = Category.NEW_TARGET
_NEW_NON_TARGET = Category.NEW_NON_TARGET
_UNEQUIVOCAL = NonTargetState.UNEQUIVOCAL_PROGRESSION
_INCREASED = NonTargetState.INCREASED
_ABSENT = NonTargetState.ABSENT
_DISAPPEARED = LesionStatus.DISAPPEARED
_PROGRESSING = LesionStatus.PROGRESSING
_RESPONDING = LesionStatus.RESPONDING
_STABLE = LesionStatus.STABLE
_NOT_EVALUABLE = LesionStatus.NOT_EVALUABLE
_NEW = LesionStatus.NEW
_tuple_new = tuple.__new__


def meets_progression(current_mm: Decimal, nadir_mm: Decimal) -> bool:
    """RECIST 1.1 section 4.3.1: >= +20 % AND >= +5 mm versus the nadir (exact)."""
    growth = current_mm - nadir_mm
    return growth >= PD_ABSOLUTE_MM and _D100 * growth >= _D_PD_PCT * nadir_mm


def meets_response(current_mm: Decimal, baseline_mm: Decimal) -> bool:
    """RECIST 1.1 section 4.3.1: >= 30 % decrease versus baseline (exact)."""
    return _D100 * (baseline_mm - current_mm) >= _D_PR_PCT * baseline_mm


def percent_change(current_mm: Decimal | None, reference_mm: Decimal | None) -> Decimal | None:
    """Percentage change for display, to 0.01 %; None when undefined (reference 0 or missing)."""
    if current_mm is None or reference_mm is None or not reference_mm:
        return None
    return (_D100 * (current_mm - reference_mm) / reference_mm).quantize(_HUNDREDTH, ROUND_HALF_EVEN)


class TargetSum(NamedTuple):
    """Sum of target diameters at one timepoint."""

    sum_mm: Decimal  # of the targets that have a value (partial when not complete)
    complete: bool
    all_targets_cr: bool  # every non-nodal target 0 mm and every nodal target < 10 mm
    missing: tuple[str, ...]


def target_sum(targets: Sequence[TrackedLesion], tp: Timepoint) -> TargetSum:
    total = _ZERO
    missing: list[str] = []
    all_cr = True
    get = tp.readings.get
    for t in targets:
        lesion = t.lesion
        reading = get(lesion.lesion_id)
        value = reading.value_mm if reading is not None else None
        if value is None:
            missing.append(lesion.lesion_id)
            all_cr = False
            continue
        total += value
        if (value >= PATHOLOGICAL_NODE_MM) if lesion.is_lymph_node else (value > _ZERO):
            all_cr = False
    return TargetSum(total, not missing, all_cr and not missing, tuple(missing))


class LesionChange(NamedTuple):
    """One lesion at one follow-up timepoint, with the exact values the rules compare.

    A NamedTuple (immutable and cheap: one per lesion and timepoint, shared by the lesion results,
    dissociated response, pseudoprogression and hyperprogression).
    """

    lesion: TrackedLesion
    timepoint_index: int
    current_mm: Decimal | None
    baseline_mm: Decimal | None
    nadir_mm: Decimal | None  # own nadir over baseline and earlier evaluable values
    state: NonTargetState | None
    present: bool | None
    status: LesionStatus
    rule: str
    refs: tuple[str, ...]

    @property
    def lesion_id(self) -> str:
        return self.lesion.lesion.lesion_id


def response_to(baseline_mm: Decimal) -> Decimal:
    """The largest value that `meets_response` from `baseline_mm`, solved for the value:
    100 (baseline - value) >= 30 baseline  <=>  value <= 0.7 baseline.

    Exact: the Decimal product of a measured value (a few digits) and 0.7 is not rounded, so one
    comparison with this threshold decides as the cross-multiplication does.
    """
    return baseline_mm * _PR_FACTOR


def _qualitative_status(value: Decimal | None, state: NonTargetState | None) -> tuple[LesionStatus, str]:
    """A baseline lesion without a diameter now or at baseline: from its non-target status (the
    measured case is written out in `lesion_course`)."""
    if state is _UNEQUIVOCAL:
        return _PROGRESSING, "lesion/non-target/unequivocal-progression"
    if state is _INCREASED:  # a further increase of a progressed lesion (see `recist`, non-target)
        return _PROGRESSING, "lesion/non-target/further-increase"
    if state is _ABSENT or (value is not None and not value):
        return _DISAPPEARED, "lesion/disappeared"
    if value is not None or state is not None:
        return _STABLE, "lesion/non-target/present"
    return _NOT_EVALUABLE, "lesion/not-evaluable"


# `_qualitative_status(None, state)` for every state: the status of a lesion read by its status only.
_STATUS_OF_STATE = {state: _qualitative_status(None, state) for state in (None, *NonTargetState)}


def _new_status(lesion: TrackedLesion, present: bool | None, index: int) -> tuple[LesionStatus, str]:
    if present is None:
        return _NOT_EVALUABLE, "lesion/not-evaluable"
    if not present:
        return _DISAPPEARED, "lesion/disappeared"
    if lesion.counted_from is not None and lesion.counted_from <= index:
        return _NEW, "lesion/new"
    return _NOT_EVALUABLE, "lesion/new/equivocal-node"


class LesionCourse(NamedTuple):
    """Every lesion at every follow-up timepoint, as the rules read it and as the contract reports it."""

    changes: tuple[tuple[LesionChange, ...], ...]  # element k-1 holds timepoint k, in lesion-id order
    results: tuple[LesionResult, ...]  # the same lesions and timepoints, timepoint by timepoint


def _lesion_facts(change: LesionChange) -> tuple[tuple[str, object], ...]:
    """The facts of a lesion's trace, read from its change when the trace is first read
    (`lazy_trace`: nothing is copied per lesion and timepoint)."""
    return (
        ("category", change.lesion.category),
        ("current_mm", change.current_mm),
        ("baseline_mm", change.baseline_mm),
        ("nadir_mm", change.nadir_mm),
        ("state", change.state),
    )


# What every timepoint needs of one lesion: (tracked lesion, id, is a node, is new, baseline value,
# `response_to(baseline)`, baseline / 100 (exact: a shift of the exponent; None when the change from
# baseline is undefined), category, lesion reference).
_Plan = tuple[
    TrackedLesion, str, bool, bool, Decimal | None, Decimal | None, Decimal | None, Category, str | None
]


def lesion_course(view: TimelineView) -> LesionCourse:
    """Every lesion at every follow-up timepoint (`LesionChange`) and its contract LesionResponse.

    One pass over timepoints with a running nadir per lesion: O(timepoints x lesions). Each lesion's
    value, status and nadir are worked out here once, and its result built from them in the same
    pass (about 30 per patient, the engine's most frequent work); the rules downstream read the
    changes.
    """
    baseline = view.baseline.readings
    nadirs: dict[str, Decimal] = {}
    plan: list[_Plan] = []  # per lesion, in lesion-id order (ids are unique in a view)
    for t in sorted(view.all_lesions, key=_BY_ID):
        lesion = t.lesion
        lid = lesion.lesion_id
        category = t.category
        is_new = category is _NEW_TARGET or category is _NEW_NON_TARGET
        base: Decimal | None = None
        responds_to: Decimal | None = None
        base_hundredth: Decimal | None = None
        if not is_new:
            base_reading = baseline.get(lid)
            base = base_reading.value_mm if base_reading is not None else None
            if base is not None:
                nadirs[lid] = base
                responds_to = response_to(base)
                if base:  # no percentage of a 0 mm baseline (`percent_change`)
                    base_hundredth = base.scaleb(-2)
        plan.append(
            (t, lid, lesion.is_lymph_node, is_new, base, responds_to, base_hundredth, category, lesion.ref)
        )
    changes: list[tuple[LesionChange, ...]] = []
    results: list[LesionResult] = []
    for tp in view.follow_ups:
        index = tp.index
        day = tp.day
        get = tp.readings.get
        row: list[LesionChange] = []
        for t, lid, node, is_new, base, responds_to, base_hundredth, category, ref in plan:
            if is_new and t.first_seen_index > index:
                continue
            value, state, refs = get(lid, NOT_READ)
            if value is not None:  # `Reading.present`, written out
                present: bool | None = value >= PATHOLOGICAL_NODE_MM if node else value > _ZERO
            else:
                present = None if state is None else state is not _ABSENT
            nadir = nadirs.get(lid)
            if is_new:
                status, rule = _new_status(t, present, index)
            elif value is not None and responds_to is not None:  # measured at baseline and now
                # Written out here (it runs for every lesion and timepoint): progression before
                # response; `meets_progression` as growth >= 5 mm and value >= 1.2 nadir, and
                # `meets_response` as value <= `response_to(baseline)` (both exact, see there).
                if not value:
                    status, rule = _DISAPPEARED, "lesion/disappeared"
                elif (
                    present
                    and nadir is not None
                    and value - nadir >= PD_ABSOLUTE_MM
                    and value >= nadir * _PD_FACTOR
                ):
                    status, rule = _PROGRESSING, "lesion/progressing"
                elif value <= responds_to:
                    status, rule = _RESPONDING, "lesion/responding"
                else:
                    status, rule = _STABLE, "lesion/stable"
            elif value is None:  # the usual qualitative case: a table lookup
                status, rule = _STATUS_OF_STATE[state]
            else:
                status, rule = _qualitative_status(value, state)
            # LesionChange(...) without its Python-level __new__
            change = _tuple_new(
                LesionChange, (t, index, value, base, nadir, state, present, status, rule, refs)
            )
            row.append(change)
            # `percent_change`, written out: from the lesion's baseline, and from its nadir unless
            # that is the baseline. 100 (value - base) / base as (value - base) / (base / 100): the
            # same quotient (the same exact value, rounded once), one multiplication fewer. `nadir
            # is base` is `nadir == base` here: the nadir starts as the baseline object and is only
            # replaced by a strictly smaller value.
            from_baseline: Decimal | None = None
            if value is not None and base is not None and base_hundredth is not None:
                from_baseline = ((value - base) / base_hundredth).quantize(_HUNDREDTH, ROUND_HALF_EVEN)
            if nadir is base:
                from_nadir = from_baseline
            elif value is not None and nadir:  # a nadir other than 0 (`percent_change`)
                from_nadir = (_D100 * (value - nadir) / nadir).quantize(_HUNDREDTH, ROUND_HALF_EVEN)
            else:
                from_nadir = None
            results.append(
                new_lesion_result(  # positional, in field order (keywords cost as much again)
                    lid,  # lesion_id
                    index,  # timepoint_index
                    day,  # timepoint_date
                    status,  # status
                    value,  # diameter_mm
                    from_baseline,  # change_from_baseline_pct
                    from_nadir,  # change_from_nadir_pct
                    category is _TARGET,  # is_target
                    lazy_trace(rule, _lesion_facts, change),  # trace
                    ref,  # lesion_ref
                    refs,  # source_refs
                )
            )
            if value is not None and (nadir is None or value < nadir):
                nadirs[lid] = value
        changes.append(tuple(row))
    return LesionCourse(tuple(changes), tuple(results))


def lesion_changes(view: TimelineView) -> tuple[tuple[LesionChange, ...], ...]:
    """Every lesion at every follow-up timepoint (element k-1 holds timepoint k), in lesion-id order
    (`lesion_course` without its results)."""
    return lesion_course(view).changes


_BY_ID = attrgetter("lesion.lesion_id")  # sort key of TrackedLesions, in C
