"""Lesion-level and sum-level RECIST 1.1 thresholds at, just below and just above each boundary.

RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247) section 4.3.1: PR = at least a 30 %
decrease of the sum versus baseline; PD = at least a 20 % increase versus the nadir AND at least
5 mm absolute; lymph nodes (Schwartz et al., Eur J Cancer 2009;45:261-267): a node is normal below
10 mm short axis, so "target CR" allows nodes < 10 mm. The lesion-level status applies the same
thresholds to each lesion (docs/rules/boundaries.md); iRECIST uses it for new lesions and the
Sato definition of dissociated response per organ.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.engine import assess
from service.domain.lesions import lesion_changes, lesion_course
from service.domain.parameters import AssessmentParameters
from service.domain.results import LesionResult, LesionStatus, Response, TimepointResult
from service.domain.timeline import TimelineView, build_view

from .builders import AS_OF, TimelineBuilder, single_target


def lesion_statuses(b: TimelineBuilder) -> dict[tuple[str, int], LesionResult]:
    return {(r.lesion_id, r.timepoint_index): r for r in assess(b.build(), as_of=AS_OF).lesions}


def two_lesions(a_values: list[int | str], c_values: list[int | str]) -> TimelineBuilder:
    """Targets A (liver) and C (lung): baseline at day -7, then a scan every 56 days."""
    b = TimelineBuilder().target("A", "liver").target("C", "lung")
    for n, (a, c) in enumerate(zip(a_values, c_values, strict=True)):
        b.scan(-7 if n == 0 else 56 * n, {"A": a, "C": c})
    return b


def timepoints(*values: int | str) -> tuple[TimepointResult, ...]:
    return assess(single_target(*values), as_of=AS_OF).timepoints


# --- lesion level ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("35.1", LesionStatus.STABLE),  # -29.8 %
        (35, LesionStatus.RESPONDING),  # exactly -30 %
        ("34.9", LesionStatus.RESPONDING),  # -30.2 %
    ],
)
def test_lesion_responding_at_30_pct_decrease_from_its_baseline(value: str, expected: LesionStatus) -> None:
    s = lesion_statuses(two_lesions([50, value], [20, 20]))
    assert s["A", 1].status is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("29.9", LesionStatus.STABLE),  # +19.6 %, +4.9 mm
        (30, LesionStatus.PROGRESSING),  # exactly +20 % and +5 mm
        ("30.1", LesionStatus.PROGRESSING),  # +20.4 %
    ],
)
def test_lesion_progressing_at_20_pct_increase_from_its_nadir(value: str, expected: LesionStatus) -> None:
    s = lesion_statuses(two_lesions([25, value], [20, 20]))
    assert s["A", 1].status is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("14.9", LesionStatus.STABLE),  # +49 % but +4.9 mm
        (15, LesionStatus.PROGRESSING),  # +50 %, exactly +5 mm
        ("15.1", LesionStatus.PROGRESSING),
    ],
)
def test_lesion_progression_needs_5_mm(value: str, expected: LesionStatus) -> None:
    s = lesion_statuses(two_lesions([10, value], [20, 20]))
    assert s["A", 1].status is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("35.9", LesionStatus.STABLE),  # +19.7 % from the nadir 30 (the baseline is 50)
        (36, LesionStatus.PROGRESSING),  # +20 %, +6 mm from the nadir 30; -28 % from baseline
    ],
)
def test_lesion_progression_is_against_its_nadir_not_its_baseline(value: str, expected: LesionStatus) -> None:
    s = lesion_statuses(two_lesions([50, 30, value], [20, 20, 20]))
    assert s["A", 2].status is expected
    hundredth = Decimal("0.01")
    assert s["A", 2].change_from_nadir_pct == ((Decimal(value) - 30) * 100 / 30).quantize(hundredth)
    assert s["A", 2].change_from_baseline_pct == ((Decimal(value) - 50) * 2).quantize(hundredth)


def test_lesion_progression_is_checked_before_response() -> None:
    # 100 -> 20 -> 30: -70 % from baseline AND +50 % / +10 mm from its nadir 20 => progressing
    # (RECIST 1.1: PD is judged against the nadir before PR against baseline).
    s = lesion_statuses(two_lesions([100, 20, 30], [20, 20, 20]))
    assert s["A", 2].status is LesionStatus.PROGRESSING


def test_lesion_nadir_is_taken_over_earlier_timepoints_only() -> None:
    # 40 -> 30 -> 30: the second 30 is 0 % from its nadir 30 (not compared with itself: stable);
    # 40 -> 30 -> 36 is +20 % / +6 mm from the nadir 30: progressing.
    s = lesion_statuses(two_lesions([40, 30, 30, 36], [20, 20, 20, 20]))
    assert [s["A", i].status for i in (1, 2, 3)] == [
        LesionStatus.STABLE,
        LesionStatus.STABLE,
        LesionStatus.PROGRESSING,
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, LesionStatus.DISAPPEARED), ("0.1", LesionStatus.RESPONDING)],
)
def test_lesion_disappeared_only_at_0_mm(value: str, expected: LesionStatus) -> None:
    s = lesion_statuses(two_lesions([50, value], [20, 20]))
    assert s["A", 1].status is expected


# --- lymph nodes: normal below 10 mm short axis ----------------------------------------------------


@pytest.mark.parametrize(
    ("short_axis", "expected"),
    [("9.9", Response.CR), (10, Response.PR), ("10.1", Response.PR)],
)
def test_nodal_target_is_cr_below_10_mm_only(short_axis: str, expected: Response) -> None:
    # RECIST 1.1 section 4.3.1 / Schwartz 2009: a node at exactly 10 mm is still pathological.
    b = TimelineBuilder().target("L", node=True).scan(-7, {"L": 20}).scan(56, {"L": short_axis})
    (tp,) = assess(b.build(), as_of=AS_OF).timepoints
    assert tp.target is expected
    assert tp.sum_mm == Decimal(short_axis)  # a node keeps its short axis in the sum, even at CR


def test_non_nodal_target_is_cr_at_0_mm_only() -> None:
    b = TimelineBuilder().target("L", node=True).target("A", "liver")
    b.scan(-7, {"L": 20, "A": 30}).scan(56, {"L": 5, "A": "0.1"}).scan(112, {"L": 5, "A": 0})
    first, second = assess(b.build(), as_of=AS_OF).timepoints
    assert (first.target, second.target) == (Response.PR, Response.CR)


# --- sum level (patient) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("35.1", Response.SD), (35, Response.PR), ("34.9", Response.PR)],
)
def test_sum_pr_at_30_pct_decrease(value: str, expected: Response) -> None:
    # Reference W10: 50 -> 35 is exactly -30 % (PR); compared exactly, not as a float quotient.
    (tp,) = timepoints(50, value)
    assert tp.target is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("29.9", Response.SD), (30, Response.PD), ("30.1", Response.PD)],
)
def test_sum_pd_at_20_pct_increase(value: str, expected: Response) -> None:
    (tp,) = timepoints(25, value)
    assert tp.target is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(24, Response.SD), ("24.9", Response.SD), (25, Response.PD)],
)
def test_sum_pd_needs_5_mm(value: str, expected: Response) -> None:
    # Reference W9: 20 -> 24 is +20 % but +4 mm (SD); 20 -> 25 is +25 % and +5 mm (PD).
    (tp,) = timepoints(20, value)
    assert tp.target is expected


def test_sum_pd_is_against_the_nadir_and_before_pr() -> None:
    # 100 -> 50 -> 60: -40 % from baseline (would be PR) but +20 % / +10 mm from the nadir 50.
    _, second = timepoints(100, 50, 60)
    assert second.target is Response.PD
    _, below = timepoints(100, 50, "59.9")
    assert below.target is Response.PR


# --- new lesions and qualitative readings ------------------------------------------------------------


def with_new_lesion(*new_values: int | str | None, node: bool = False) -> TimelineBuilder:
    """Target A stable at 30 mm; new lesion N (from the first follow-up on) with `new_values`."""
    b = TimelineBuilder().target("A", "liver").new_target("N", "bone", node=node).scan(-7, {"A": 30})
    for n, value in enumerate(new_values, start=1):
        b.scan(56 * n, {"A": 30} if value is None else {"A": 30, "N": value})
    return b


def test_new_lesion_has_no_status_before_it_is_first_seen() -> None:
    s = lesion_statuses(with_new_lesion(None, 12))
    assert ("N", 1) not in s
    assert s["N", 2].status is LesionStatus.NEW


def test_new_lesion_not_read_disappeared_and_present() -> None:
    # Present (12 mm), not read (no value: not evaluable), then 0 mm (disappeared).
    s = lesion_statuses(with_new_lesion(12, None, 0))
    assert [s["N", i].status for i in (1, 2, 3)] == [
        LesionStatus.NEW,
        LesionStatus.NOT_EVALUABLE,
        LesionStatus.DISAPPEARED,
    ]


@pytest.mark.parametrize(
    ("short_axis", "expected"),
    [("9.9", LesionStatus.DISAPPEARED), (10, LesionStatus.NEW), ("10.1", LesionStatus.NEW)],
)
def test_new_node_still_present_at_exactly_10_mm(short_axis: str, expected: LesionStatus) -> None:
    # A new node of 16 mm short axis (unequivocal), then `short_axis`: a node is pathological at
    # >= 10 mm (RECIST 1.1 / Schwartz 2009), so exactly 10 mm is still present.
    s = lesion_statuses(with_new_lesion(16, short_axis, node=True))
    assert s["N", 2].status is expected


def test_equivocal_new_node_is_not_counted_until_confirmed() -> None:
    # RECIST FAQ "New lymph node lesions" (worked case W16, docs/rules/worked-cases.md): a new node of 10 to < 15 mm is only a new
    # lesion once the next reading still shows it.
    s = lesion_statuses(with_new_lesion(12, node=True))
    assert s["N", 1].status is LesionStatus.NOT_EVALUABLE


def test_lesion_nadir_is_the_smallest_earlier_value_not_the_latest() -> None:
    # 50 -> 30 -> 33 -> 36: 36 is +20 % / +6 mm from the nadir 30 (only +9 % from the latest 33).
    s = lesion_statuses(two_lesions([50, 30, 33, 36], [20, 20, 20, 20]))
    assert s["A", 3].status is LesionStatus.PROGRESSING


def test_non_target_measured_only_at_follow_up_is_stable() -> None:
    # A non-target without a baseline diameter, measured later without a status reading: it is
    # there (stable), not unread.
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 30, "P": 12})
    s = lesion_statuses(b)
    assert s["P", 1].status is LesionStatus.STABLE


def test_lesion_changes_are_the_changes_of_the_lesion_course() -> None:
    b = two_lesions([50, 30, 36], [20, 20, 20])
    view = build_view(b.build(), AssessmentParameters(), as_of=AS_OF)
    assert isinstance(view, TimelineView)
    changes = lesion_changes(view)
    assert changes == lesion_course(view).changes
    assert [[c.lesion_id for c in row] for row in changes] == [["A", "C"], ["A", "C"]]


def test_a_lesion_at_0_mm_at_baseline_that_appears_later_is_new() -> None:
    # A lesion read "disappeared" (0 mm) at baseline and 5 mm later is first SEEN after baseline:
    # a new lesion (contract section 1), with no percentage change from 0 mm.
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30, "P": "disappeared"}).scan(56, {"A": 30, "P": 5})
    s = lesion_statuses(b)
    assert (s["P", 1].status, s["P", 1].diameter_mm) == (LesionStatus.NEW, 5)
    assert (s["P", 1].change_from_baseline_pct, s["P", 1].change_from_nadir_pct) == (None, None)


def test_pre_baseline_scan_missing_a_target_does_not_break_the_assessment() -> None:
    # PD at the first evaluation (sum 50 -> 75) asks for the hyperprogression growth rates, whose
    # pre-baseline sum (Champiat 2017) lacks target B: an incomplete sum is not a tumour burden
    # (RECIST 1.1 section 4.3.2 needs every target), and the rest is assessed as usual.
    b = TimelineBuilder().target("A", "liver").target("B", "lung")
    b.scan(-60, {"A": 20}).scan(-7, {"A": 30, "B": 20}).scan(56, {"A": 45, "B": 30})
    (tp,) = assess(b.build(), as_of=AS_OF).timepoints
    assert (tp.target, tp.sum_mm) == (Response.PD, Decimal(75))
