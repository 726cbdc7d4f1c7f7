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
from service.domain.results import LesionResult, LesionStatus, Response, TimepointResult

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
