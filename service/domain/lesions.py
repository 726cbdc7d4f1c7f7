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
  diameter take their status from the qualitative reading (`unequivocal-progression` =
  progressing, `absent` = disappeared, `present`/`increased` = stable).
- Decision: the nadir of a timepoint is taken over EARLIER timepoints only (baseline included), so
  a timepoint is never compared with itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from service.domain.model import NonTargetState
from service.domain.results import LesionResult, LesionStatus, RuleTrace
from service.domain.timeline import (
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


def meets_progression(current_mm: Decimal, nadir_mm: Decimal) -> bool:
    """RECIST 1.1 section 4.3.1: >= +20 % AND >= +5 mm versus the nadir (exact)."""
    growth = current_mm - nadir_mm
    return growth >= PD_ABSOLUTE_MM and 100 * growth >= PD_RELATIVE_PCT * nadir_mm


def meets_response(current_mm: Decimal, baseline_mm: Decimal) -> bool:
    """RECIST 1.1 section 4.3.1: >= 30 % decrease versus baseline (exact)."""
    return 100 * (baseline_mm - current_mm) >= PR_RELATIVE_PCT * baseline_mm


def percent_change(current_mm: Decimal | None, reference_mm: Decimal | None) -> Decimal | None:
    """Percentage change for display, to 0.01 %; None when undefined (reference 0 or missing)."""
    if current_mm is None or reference_mm is None or reference_mm == 0:
        return None
    return (100 * (current_mm - reference_mm) / reference_mm).quantize(_HUNDREDTH, ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class TargetSum:
    """Sum of target diameters at one timepoint."""

    sum_mm: Decimal  # of the targets that have a value (partial when not complete)
    complete: bool
    all_targets_cr: bool  # every non-nodal target 0 mm and every nodal target < 10 mm
    missing: tuple[str, ...]


def target_sum(targets: Sequence[TrackedLesion], tp: Timepoint) -> TargetSum:
    total = Decimal(0)
    missing: list[str] = []
    all_cr = True
    for t in targets:
        value = tp.reading(t.lesion_id).value_mm
        if value is None:
            missing.append(t.lesion_id)
            all_cr = False
            continue
        total += value
        if (value >= PATHOLOGICAL_NODE_MM) if t.is_node else (value > 0):
            all_cr = False
    return TargetSum(total, not missing, all_cr and not missing, tuple(missing))


@dataclass(frozen=True, slots=True)
class LesionChange:
    """One lesion at one follow-up timepoint, with the exact values the rules compare."""

    lesion: TrackedLesion
    index: int
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
        return self.lesion.lesion_id

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
    lesion: TrackedLesion, reading: Reading, baseline_mm: Decimal | None, nadir_mm: Decimal | None
) -> tuple[LesionStatus, str]:
    value = reading.value_mm
    if value is not None and baseline_mm is not None:
        if value == 0:
            return LesionStatus.DISAPPEARED, "lesion/disappeared"
        if nadir_mm is not None and meets_progression(value, nadir_mm):
            return LesionStatus.PROGRESSING, "lesion/progressing"
        if meets_response(value, baseline_mm):
            return LesionStatus.RESPONDING, "lesion/responding"
        return LesionStatus.STABLE, "lesion/stable"
    state = reading.state
    if state is NonTargetState.UNEQUIVOCAL_PROGRESSION:
        return LesionStatus.PROGRESSING, "lesion/non-target/unequivocal-progression"
    if state is NonTargetState.ABSENT or value == 0:
        return LesionStatus.DISAPPEARED, "lesion/disappeared"
    if reading.evaluable:
        return LesionStatus.STABLE, "lesion/non-target/present"
    return LesionStatus.NOT_EVALUABLE, "lesion/not-evaluable"


def _new_status(lesion: TrackedLesion, reading: Reading, index: int) -> tuple[LesionStatus, str]:
    present = reading.present(lesion.is_node)
    if present is None:
        return LesionStatus.NOT_EVALUABLE, "lesion/not-evaluable"
    if not present:
        return LesionStatus.DISAPPEARED, "lesion/disappeared"
    if lesion.counted_from is not None and lesion.counted_from <= index:
        return LesionStatus.NEW, "lesion/new"
    return LesionStatus.NOT_EVALUABLE, "lesion/new/equivocal-node"


def lesion_changes(view: TimelineView) -> tuple[tuple[LesionChange, ...], ...]:
    """Every lesion at every follow-up timepoint (element k-1 holds timepoint k), in lesion-id order.

    One pass over timepoints with a running nadir per lesion: O(timepoints x lesions).
    """
    baseline_lesions = sorted(view.baseline_lesions, key=lambda t: t.lesion_id)
    new_lesions = view.new_lesions
    baseline_values = {t.lesion_id: view.baseline.reading(t.lesion_id).value_mm for t in baseline_lesions}
    nadirs: dict[str, Decimal] = {lid: v for lid, v in baseline_values.items() if v is not None}
    out: list[tuple[LesionChange, ...]] = []
    for tp in view.follow_ups:
        row: list[LesionChange] = []
        for t in baseline_lesions:
            reading = tp.reading(t.lesion_id)
            base = baseline_values[t.lesion_id]
            nadir = nadirs.get(t.lesion_id)
            status, rule = _baseline_status(t, reading, base, nadir)
            row.append(_change(t, tp.index, reading, base, nadir, status, rule))
        for t in new_lesions:
            if t.first_seen_index > tp.index:
                continue
            reading = tp.reading(t.lesion_id)
            nadir = nadirs.get(t.lesion_id)
            status, rule = _new_status(t, reading, tp.index)
            row.append(_change(t, tp.index, reading, None, nadir, status, rule))
        for change in row:
            value = change.current_mm
            if value is not None:
                current = nadirs.get(change.lesion_id)
                if current is None or value < current:
                    nadirs[change.lesion_id] = value
        row.sort(key=lambda c: c.lesion_id)
        out.append(tuple(row))
    return tuple(out)


def _change(
    lesion: TrackedLesion,
    index: int,
    reading: Reading,
    baseline_mm: Decimal | None,
    nadir_mm: Decimal | None,
    status: LesionStatus,
    rule: str,
) -> LesionChange:
    return LesionChange(
        lesion=lesion,
        index=index,
        current_mm=reading.value_mm,
        baseline_mm=baseline_mm,
        nadir_mm=nadir_mm,
        state=reading.state,
        present=reading.present(lesion.is_node),
        status=status,
        rule=rule,
        refs=reading.refs,
    )


def to_lesion_result(change: LesionChange, tp: Timepoint) -> LesionResult:
    """The contract LesionResponse of one lesion at one follow-up timepoint."""
    lesion = change.lesion
    return LesionResult(
        lesion_id=change.lesion_id,
        timepoint_index=change.index,
        timepoint_date=tp.day,
        status=change.status,
        diameter_mm=change.current_mm,
        change_from_baseline_pct=percent_change(change.current_mm, change.baseline_mm),
        change_from_nadir_pct=percent_change(change.current_mm, change.nadir_mm),
        is_target=lesion.category is Category.TARGET,
        trace=RuleTrace.of(
            change.rule,
            category=lesion.category,
            current_mm=change.current_mm,
            baseline_mm=change.baseline_mm,
            nadir_mm=change.nadir_mm,
            state=change.state,
        ),
        lesion_ref=lesion.lesion.ref,
        source_refs=change.refs,
    )
