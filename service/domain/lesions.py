"""Per-lesion values, sums of diameters, nadirs and lesion-level responses.

- Sum of diameters (RECIST 1.1 section 4.3.2): long axis of non-nodal targets + short axis of nodal
  targets, at every timepoint. A sum is *complete* when every target has a value; an incomplete sum
  can still prove progression (RECIST 1.1 section 4.3.4 / reference W1) but never enters the nadir.
- Thresholds are compared exactly by cross-multiplying Decimals (reference W10):
  progression = at least +20 % AND at least +5 mm versus the nadir; response = at least -30 %
  versus baseline.
- Lesion-level status (contract LesionResponse): `responding` <= -30 % versus the lesion's own
  baseline; `progressing` >= +20 % and >= +5 mm versus the lesion's own nadir (the smallest of its
  baseline and earlier evaluable values); `disappeared` at 0 mm (or status absent); `new` for a
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
from typing import NamedTuple

from service.domain.model import NonTargetState
from service.domain.results import LesionResult, LesionStatus, RuleTrace
from service.domain.timeline import (
    NOT_READ,
    PATHOLOGICAL_NODE_MM,
    Category,
    Reading,
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

    def shrinks_more_than(self, pct: int) -> bool:
        """Strictly more than `pct` % below its own baseline (Bernard-Tessier wording)."""
        if self.current_mm is None or self.baseline_mm is None or self.baseline_mm == 0:
            return False
        return 100 * (self.baseline_mm - self.current_mm) > pct * self.baseline_mm

    def grows_more_than(self, pct: int, min_mm: Decimal) -> bool:
        """Strictly more than `pct` % AND at least `min_mm` above its own nadir."""
        if self.current_mm is None or self.nadir_mm is None:
            return False
        growth = self.current_mm - self.nadir_mm
        return growth >= min_mm and 100 * growth > pct * self.nadir_mm


def _baseline_status(
    reading: Reading, baseline_mm: Decimal | None, nadir_mm: Decimal | None
) -> tuple[LesionStatus, str]:
    value = reading.value_mm
    if value is not None and baseline_mm is not None:
        if not value:
            return _DISAPPEARED, "lesion/disappeared"
        if nadir_mm is not None and meets_progression(value, nadir_mm):
            return _PROGRESSING, "lesion/progressing"
        if meets_response(value, baseline_mm):
            return _RESPONDING, "lesion/responding"
        return _STABLE, "lesion/stable"
    state = reading.state
    if state is _UNEQUIVOCAL:
        return _PROGRESSING, "lesion/non-target/unequivocal-progression"
    if state is _INCREASED:  # a further increase of a progressed lesion (see `recist`, non-target)
        return _PROGRESSING, "lesion/non-target/further-increase"
    if state is _ABSENT or (value is not None and not value):
        return _DISAPPEARED, "lesion/disappeared"
    if value is not None or state is not None:
        return _STABLE, "lesion/non-target/present"
    return _NOT_EVALUABLE, "lesion/not-evaluable"


def _new_status(lesion: TrackedLesion, present: bool | None, index: int) -> tuple[LesionStatus, str]:
    if present is None:
        return _NOT_EVALUABLE, "lesion/not-evaluable"
    if not present:
        return _DISAPPEARED, "lesion/disappeared"
    if lesion.counted_from is not None and lesion.counted_from <= index:
        return _NEW, "lesion/new"
    return _NOT_EVALUABLE, "lesion/new/equivocal-node"


def lesion_changes(view: TimelineView) -> tuple[tuple[LesionChange, ...], ...]:
    """Every lesion at every follow-up timepoint (element k-1 holds timepoint k), in lesion-id order.

    One pass over timepoints with a running nadir per lesion: O(timepoints x lesions). Each lesion's
    value, status and nadir are worked out here once; the rules downstream read them from here.
    """
    baseline = view.baseline.readings
    nadirs: dict[str, Decimal] = {}
    # (lesion, id, is node, is new, baseline value), in lesion-id order (ids are unique in a view).
    plan: list[tuple[TrackedLesion, str, bool, bool, Decimal | None]] = []
    for t in sorted(view.all_lesions, key=_by_id):
        lid = t.lesion.lesion_id
        is_new = t.category is _NEW_TARGET or t.category is _NEW_NON_TARGET
        base: Decimal | None = None
        if not is_new:
            base_reading = baseline.get(lid)
            base = base_reading.value_mm if base_reading is not None else None
            if base is not None:
                nadirs[lid] = base
        plan.append((t, lid, t.lesion.is_lymph_node, is_new, base))
    out: list[tuple[LesionChange, ...]] = []
    for tp in view.follow_ups:
        index = tp.index
        get = tp.readings.get
        row: list[LesionChange] = []
        for t, lid, node, is_new, base in plan:
            if is_new and t.first_seen_index > index:
                continue
            reading = get(lid, NOT_READ)
            value = reading.value_mm
            present = reading.present(node)
            nadir = nadirs.get(lid)
            if is_new:
                status, rule = _new_status(t, present, index)
            else:
                status, rule = _baseline_status(reading, base, nadir)
            row.append(  # LesionChange(...) without its Python-level __new__
                _tuple_new(
                    LesionChange,
                    (t, index, value, base, nadir, reading.state, present, status, rule, reading.refs),
                )
            )
            if value is not None and (nadir is None or value < nadir):
                nadirs[lid] = value
        out.append(tuple(row))
    return tuple(out)


def _by_id(t: TrackedLesion) -> str:
    return t.lesion.lesion_id


def to_lesion_result(change: LesionChange, tp: Timepoint) -> LesionResult:
    """The contract LesionResponse of one lesion at one follow-up timepoint."""
    tracked = change.lesion
    lesion = tracked.lesion
    current = change.current_mm
    baseline_mm = change.baseline_mm
    nadir_mm = change.nadir_mm
    from_baseline = percent_change(current, baseline_mm)
    return LesionResult(  # positional, in field order (one per lesion and timepoint: keywords cost)
        lesion.lesion_id,  # lesion_id
        change.timepoint_index,  # timepoint_index
        tp.day,  # timepoint_date
        change.status,  # status
        current,  # diameter_mm
        from_baseline,  # change_from_baseline_pct
        from_baseline if nadir_mm == baseline_mm else percent_change(current, nadir_mm),  # ..._nadir_pct
        tracked.category is _TARGET,  # is_target
        RuleTrace.of(  # trace
            change.rule,
            category=tracked.category,
            current_mm=current,
            baseline_mm=baseline_mm,
            nadir_mm=nadir_mm,
            state=change.state,
        ),
        lesion.ref,  # lesion_ref
        change.refs,  # source_refs
    )
