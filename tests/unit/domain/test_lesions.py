"""Lesion-level responses (contract LesionResponse) for every lesion at every follow-up timepoint."""

from __future__ import annotations

from decimal import Decimal

from service.domain.engine import assess
from service.domain.results import LesionResult, LesionStatus

from .builders import AS_OF, TimelineBuilder


def statuses(b: TimelineBuilder) -> dict[tuple[str, int], LesionResult]:
    return {(r.lesion_id, r.timepoint_index): r for r in assess(b.build(), as_of=AS_OF).lesions}


def test_every_lesion_at_every_follow_up() -> None:
    b = TimelineBuilder().target("A").target("B", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 50, "B": 20}, nt={"P": "present"})
    b.scan(56, {"A": 35, "B": 20}, nt={"P": "present"})
    b.scan(112, {"A": 36, "B": 25}, nt={"P": "unequivocal-progression"})
    b.scan(168, {"B": 0}, nt={"P": "absent"})
    s = statuses(b)
    assert len(s) == 9
    assert s["A", 1].status is LesionStatus.RESPONDING  # exactly -30 % vs its baseline
    assert s["A", 1].change_from_baseline_pct == Decimal("-30.00")
    assert s["B", 1].status is LesionStatus.STABLE
    assert s["A", 2].status is LesionStatus.STABLE  # 36 vs 50 = -28 %; +1 mm vs its nadir 35
    assert s["B", 2].status is LesionStatus.PROGRESSING  # +25 %, +5 mm vs its nadir 20
    assert s["P", 2].status is LesionStatus.PROGRESSING
    assert s["A", 3].status is LesionStatus.NOT_EVALUABLE
    assert s["B", 3].status is LesionStatus.DISAPPEARED
    assert s["P", 3].status is LesionStatus.DISAPPEARED
    assert s["A", 1].is_target
    assert not s["P", 1].is_target
