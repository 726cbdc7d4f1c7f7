"""RECIST 1.1 target, non-target and overall timepoint response (Eisenhauer 2009; reference 1a, 3c)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.engine import assess
from service.domain.lesions import TargetSum
from service.domain.recist import classify_target, overall_response
from service.domain.results import LesionStatus, Response

from .builders import AS_OF, TimelineBuilder, single_target

CR, PR, SD, PD, NE, NN = (
    Response.CR,
    Response.PR,
    Response.SD,
    Response.PD,
    Response.NE,
    Response.NON_CR_NON_PD,
)


def complete(mm: int | str) -> TargetSum:
    return TargetSum(Decimal(mm), True, False, ())


@pytest.mark.parametrize(
    ("baseline", "nadir", "current", "expected"),
    [
        (100, 100, 70, PR),  # docs/architecture.md table: exactly -30 % from baseline
        (100, 100, 71, SD),
        (50, 50, 60, PD),  # +20 % and +10 mm from nadir
        (20, 20, 24, SD),  # +20 % but only +4 mm (worked case W9)
        (20, 20, 25, PD),  # +25 %, +5 mm (worked case W9)
        (100, 40, 48, PD),  # from nadir although still -52 % from baseline (RECIST 1.1 4.3.1)
        (50, 50, 35, PR),  # worked case W10: exactly -30.0 % (float 1-35/50 is 0.30000000000000004)
        (50, 50, 36, SD),  # worked case W10 alt: -28 %
        (165, 63, 65, PR),  # worked case W2: +2 mm vs nadir is not PD; -60.6 % vs baseline
        (25, 25, 30, PD),  # exactly +20 % and exactly +5 mm
        ("25.5", "25.5", "30.6", PD),  # RECIST-tracker +20 % float boundary (19.999999999999996)
        ("25.5", "25.5", "30.5", SD),  # +19.6 %
    ],
)
def test_target_response_thresholds(baseline: int, nadir: int, current: int, expected: Response) -> None:
    response, _ = classify_target(Decimal(baseline), Decimal(nadir), complete(current))
    assert response is expected


def test_pd_is_judged_before_pr_rebound_from_nadir() -> None:
    # Reference 1a "Evaluate PD before PR": -31 % vs baseline yet +20 %/+5 mm vs nadir => PD.
    assert classify_target(Decimal(100), Decimal(50), complete(69))[0] is PD


def test_measured_subset_proving_pd_gives_pd_else_ne() -> None:
    # RECIST 1.1 text / worked case W1: baseline 50 over 3 lesions, only 2 measured = 80 => PD; 40 => NE.
    partial80 = TargetSum(Decimal(80), False, False, ("C",))
    partial40 = TargetSum(Decimal(40), False, False, ("C",))
    assert classify_target(Decimal(50), Decimal(50), partial80)[0] is PD
    assert classify_target(Decimal(50), Decimal(50), partial40)[0] is NE


def test_w1_through_the_engine() -> None:
    b = TimelineBuilder().target("A").target("B", "liver").target("C", "bone")
    b.scan(-7, {"A": 20, "B": 20, "C": 10}).scan(56, {"A": 40, "B": 40})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert tp.target is PD
    assert tp.overall is PD
    b2 = TimelineBuilder().target("A").target("B", "liver").target("C", "bone")
    b2.scan(-7, {"A": 20, "B": 20, "C": 10}).scan(56, {"A": 20, "B": 20})
    tp2 = assess(b2.build(), as_of=AS_OF).timepoints[0]
    assert tp2.target is NE
    assert tp2.overall is NE
    assert tp2.sum_mm is None


def test_node_cr_with_sum_above_zero() -> None:
    # Reference W11: liver 30 LD + node 20 SA = 50 -> liver 0, node 8 => target CR with SoD 8.
    b = TimelineBuilder().target("L", "liver").target("N", node=True)
    b.scan(-7, {"L": 30, "N": 20}).scan(56, {"L": 0, "N": 8})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert (tp.target, tp.overall, tp.sum_mm) == (CR, CR, Decimal(8))


def test_node_at_11_mm_is_pr_not_cr() -> None:
    # Reference W11 alt: node 11 mm => PR (-78 %).
    b = TimelineBuilder().target("L", "liver").target("N", node=True)
    b.scan(-7, {"L": 30, "N": 20}).scan(56, {"L": 0, "N": 11})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert tp.target is PR
    assert tp.change_from_baseline_pct == Decimal("-78.00")


@pytest.mark.parametrize(
    ("b_value", "expected_sum", "expected_pct"),
    [
        ("too-small", 17, "-66.00"),  # worked case W14: present but too small => 5 mm
        ("disappeared", 12, "-76.00"),  # disappeared => 0 mm
        (3, 15, "-70.00"),  # measured 3 mm is recorded as is
    ],
)
def test_too_small_and_disappeared_values(b_value: str | int, expected_sum: int, expected_pct: str) -> None:
    # Reference W14: BL A 30 + B 20 = 50; FU A 12 and B as given; never CR while A present.
    b = TimelineBuilder().target("A").target("B", "liver").scan(-7, {"A": 30, "B": 20})
    b.scan(56, {"A": 12, "B": b_value})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert tp.sum_mm == Decimal(expected_sum)
    assert tp.change_from_baseline_pct == Decimal(expected_pct)
    assert tp.target is PR


def test_nadir_excludes_ne_timepoints() -> None:
    # Reference 1a / RECIST-tracker: NE (incomplete) timepoints never enter the nadir series.
    b = TimelineBuilder().target("A").target("B", "liver").scan(-7, {"A": 50, "B": 50})
    b.scan(56, {"A": 10}).scan(112, {"A": 45, "B": 40})  # 85: -15 % vs 100, not PD
    tps = assess(b.build(), as_of=AS_OF).timepoints
    assert tps[0].overall is NE
    assert tps[1].nadir_sum_mm == Decimal(100)
    assert tps[1].overall is SD


@pytest.mark.parametrize(
    ("target", "non_target", "new", "expected"),
    [
        # RECIST 1.1 Table 1
        (CR, CR, False, CR),
        (CR, NN, False, PR),  # worked case W12 (a)
        (CR, NE, False, PR),
        (CR, None, False, CR),
        (PR, NN, False, PR),
        (PR, NE, False, PR),
        (SD, NN, False, SD),
        (SD, NE, False, SD),  # worked case W12 (c)
        (NE, NN, False, NE),  # worked case W12 (d)
        (PD, NN, False, PD),
        (PR, PD, False, PD),  # worked case W12 (b)
        (PR, NN, True, PD),  # worked case W12 (e)
        (CR, CR, True, PD),
        # RECIST 1.1 Table 2 (non-target disease only; NonCR-NonPD rather than SD, worked case W13)
        (None, CR, False, CR),
        (None, NN, False, NN),
        (None, NE, False, NE),
        (None, PD, False, PD),
        (None, NN, True, PD),
    ],
)
def test_overall_response_tables_1_and_2(
    target: Response | None, non_target: Response | None, new: bool, expected: Response
) -> None:
    assert overall_response(target, non_target, new)[0] is expected


def test_non_target_only_disease_is_non_cr_non_pd_then_cr() -> None:
    # Reference W13: NT-only disease present => NonCR-NonPD (not SD); all gone => CR.
    b = TimelineBuilder().non_target("P", "pleura").non_target("N", node=True)
    b.scan(-7, nt={"P": "present", "N": "present"}).scan(56, nt={"P": "present", "N": "present"})
    b.scan(112, {"N": 8}, nt={"P": "absent"})
    tps = assess(b.build(), as_of=AS_OF).timepoints
    assert [t.target for t in tps] == [None, None]
    assert [t.overall for t in tps] == [NN, CR]


def test_non_target_unequivocal_progression_is_pd_and_missing_is_ne() -> None:
    b = TimelineBuilder().target("A").non_target("P", "pleura").non_target("Q", "bone")
    b.scan(-7, {"A": 30}, nt={"P": "present", "Q": "present"})
    b.scan(56, {"A": 20}, nt={"P": "present"})
    b.scan(112, {"A": 20}, nt={"P": "unequivocal-progression", "Q": "present"})
    tps = assess(b.build(), as_of=AS_OF).timepoints
    assert (tps[0].non_target, tps[0].overall) == (NE, PR)
    assert (tps[1].non_target, tps[1].overall) == (PD, PD)


def test_further_increase_after_unequivocal_progression_stays_non_target_pd() -> None:
    # RECIST 1.1 section 4.3.2: unequivocal progression of existing non-target lesions is PD; the
    # contract's `increased` is "any further increase" of such a lesion, so it is still PD (not the
    # NonCR-NonPD / overall SD it used to give after the PD).
    b = TimelineBuilder().target("A").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 30}, nt={"P": "unequivocal-progression"})
    b.scan(112, {"A": 30}, nt={"P": "increased"})
    result = assess(b.build(), as_of=AS_OF)
    assert [(t.non_target, t.overall) for t in result.timepoints] == [(PD, PD), (PD, PD)]
    assert result.timepoints[1].traces[1].rule == "recist1.1/non-target/pd-further-increase"
    assert [lr.status for lr in result.lesions if lr.lesion_id == "P"] == [
        LesionStatus.PROGRESSING,
        LesionStatus.PROGRESSING,
    ]


def test_increased_non_target_alone_is_pd_in_table_2() -> None:
    # RECIST 1.1 Table 2 (non-target disease only): unequivocal progression => PD; `increased` too.
    b = TimelineBuilder().non_target("P", "pleura").non_target("Q", "bone")
    b.scan(-7, nt={"P": "present", "Q": "present"}).scan(56, nt={"P": "present", "Q": "increased"})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert (tp.target, tp.non_target, tp.overall) == (None, PD, PD)


def test_continued_pr_reported_while_strict_is_sd() -> None:
    # Reference W3 / recist.eortc.org FAQ "Managing PR": BL 100; 70, 70, 80, 80, 80 => PR x5 reported.
    result = assess(single_target(100, 70, 70, 80, 80, 80), as_of=AS_OF)
    assert [t.reported for t in result.timepoints] == [PR] * 5
    assert [t.overall for t in result.timepoints] == [PR, PR, SD, SD, SD]
    assert result.best_response is not None
    assert result.best_response.response is PR


def test_continued_pr_ends_at_pd() -> None:
    # Reference W2: 165 -> 63 -> 65 is continued PR; a later +20 %/+5 mm vs nadir is PD.
    result = assess(single_target(165, 63, 65, 80), as_of=AS_OF)
    assert [t.reported for t in result.timepoints] == [PR, PR, PD]


def test_reappearance_after_overall_cr_is_pd() -> None:
    # recist.eortc.org FAQ "Does a new lesion always result in PD?": reappearance after CR => PD.
    result = assess(single_target(10, 0, 4), as_of=AS_OF)
    assert [t.overall for t in result.timepoints] == [CR, PD]


def test_w9_five_mm_floor() -> None:
    # Reference W9: BL 20 -> 24 (+20 %, +4 mm) SD -> 25 (+25 %, +5 mm) PD.
    result = assess(single_target(20, 24, 25), as_of=AS_OF)
    assert [t.overall for t in result.timepoints] == [SD, PD]


def test_w4_sd_then_pd_against_nadir() -> None:
    # Reference W4: BL 50; 40; 50 (+25 %, +10 vs nadir 40) => SD, PD.
    result = assess(single_target(50, 40, 50), as_of=AS_OF)
    assert [t.overall for t in result.timepoints] == [SD, PD]
    assert result.timepoints[1].nadir_sum_mm == Decimal(40)
    assert result.timepoints[1].change_from_nadir_pct == Decimal("25.00")
