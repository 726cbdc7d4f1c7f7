"""iRECIST timepoint response and iBOR (Seymour 2017 Tables 2-3; FAQ; RECIST-tracker vectors)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from service.domain.engine import assess
from service.domain.irecist import immune_best_overall_response
from service.domain.parameters import AssessmentParameters
from service.domain.results import ImmuneResponse

from .builders import AS_OF, TimelineBuilder, single_target

ICR, IPR, ISD, IUPD, ICPD, NE = (
    ImmuneResponse.ICR,
    ImmuneResponse.IPR,
    ImmuneResponse.ISD,
    ImmuneResponse.IUPD,
    ImmuneResponse.ICPD,
    ImmuneResponse.NE,
)


def codes(b: TimelineBuilder) -> list[ImmuneResponse]:
    return [t.overall for t in assess(b.build(), as_of=AS_OF).immune_timepoints]


def tracker(baseline: int = 100) -> TimelineBuilder:
    """RECIST-tracker fixture: baseline 2026-01-01, target t1 (liver), new target nl1 (lung)."""
    b = TimelineBuilder(start=date(2026, 1, 1)).target("t1", "liver").new_target("nl1", "lung")
    return b.scan(0, {"t1": baseline})


def at(b: TimelineBuilder, iso: str, t1: int | str, nl1: int | str | None = None) -> TimelineBuilder:
    values: dict[str, int | str] = {"t1": t1}
    if nl1 is not None:
        values["nl1"] = nl1
    return b.scan((date.fromisoformat(iso) - b.start).days, values)


def test_w4_additive_increases_confirm_icpd() -> None:
    # Reference W4 / FAQ: BL 50; 40 iSD; 50 iUPD; 54 (+4) iUPD; 56 (+6 cumulative vs iUPD) iCPD.
    tl = single_target(50, 40, 50, 54, 56, every=42)
    result = assess(tl, as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [ISD, IUPD, IUPD, ICPD]
    assert result.immune_best_response is not None
    assert result.immune_best_response.response is ISD


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("increased", ICPD),  # INCLA: any further increase (contract code `increased`)
        ("unequivocal-progression", IUPD),  # NCLA: still progressed, no further increase
        ("present", ISD),  # no longer unequivocally progressed: the iUPD resets (project decision)
    ],
)
def test_w5_non_target_driven_iupd_confirmed_by_any_further_increase(
    state: str, expected: ImmuneResponse
) -> None:
    # Reference W5 / FAQ: NT unequivocal progression => iUPD; next "INCLA" => iCPD, "NCLA" => iUPD.
    b = TimelineBuilder().target("A").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(42, {"A": 28}, nt={"P": "present"})
    b.scan(84, {"A": 28}, nt={"P": "unequivocal-progression"}).scan(126, {"A": 28}, nt={"P": state})
    assert codes(b) == [ISD, IUPD, expected]


def test_w19_pseudoprogression_resets_to_isd_then_ipr() -> None:
    # Reference W19: BL 50; wk8 62 (iUPD); wk14 40 (iSD, reset); wk22 30 (iPR).
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 62})
    b.scan(98, {"T": 40}).scan(154, {"T": 30})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, ISD, IPR]
    assert result.immune_best_response is not None
    assert result.immune_best_response.response is IPR


def test_w20_ipr_iupd_icpd() -> None:
    # Reference W20: BL 50; wk8 35 iPR; wk16 45 iUPD; wk22 50 (+5 vs 45) iCPD; iBOR iPR.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 35})
    b.scan(112, {"T": 45}).scan(154, {"T": 50})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IPR, IUPD, ICPD]
    assert result.immune_best_response is not None
    assert result.immune_best_response.response is IPR


def test_w22_iupd_then_only_ne_stays_iupd() -> None:
    # Reference W22 / iRECIST Table 3 example 8: iUPD then NE scans => iBOR iUPD.
    b = TimelineBuilder().target("A").target("B", "liver").scan(-7, {"A": 20, "B": 30})
    b.scan(56, {"A": 30, "B": 30}).scan(98, {"A": 30}).scan(140, {"B": 30})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, NE, NE]
    assert result.immune_best_response is not None
    assert result.immune_best_response.response is IUPD


def test_w3_continued_ipr() -> None:
    # Reference W3: BL 100; 70, 70, 80, 80, 80 => iPR x5.
    result = assess(single_target(100, 70, 70, 80, 80, 80), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IPR] * 5


def test_new_lesions_kept_out_of_target_sum() -> None:
    # iRECIST: new lesions are measured but not added to the target sum (NLT sum separately).
    b = TimelineBuilder().target("A", "liver").lesion("X", "lung").scan(-7, {"A": 40})
    b.scan(56, {"A": 30, "X": 12})
    t = assess(b.build(), as_of=AS_OF).immune_timepoints[0]
    assert (t.overall, t.sum_mm, t.new_lesion_target_sum_mm, t.new_lesion) == (
        IUPD,
        Decimal(30),
        Decimal(12),
        True,
    )


# --- RECIST-tracker (heyhey-yoyo/RECIST-tracker tests/irecist.test.js) vectors -----------------


def test_tracker_nlt_exact_plus_5_mm_confirms_icpd() -> None:
    # NLT 3.2 -> 8.2 is exactly +5.0 mm (float gives 4.999999999999999) => iCPD.
    b = at(at(tracker(), "2026-02-01", 100, "3.2"), "2026-03-08", 100, "8.2")
    assert codes(b) == [IUPD, ICPD]


def test_tracker_nlt_exact_plus_20_pct_confirms_icpd() -> None:
    # NLT 25.5 -> 30.6 is exactly +20 % and +5.1 mm => iCPD.
    b = at(at(tracker(), "2026-02-01", 100, "25.5"), "2026-03-08", 100, "30.6")
    assert codes(b) == [IUPD, ICPD]


def test_tracker_ne_timepoint_never_enters_nadir() -> None:
    # iUPD (new lesion) -> NE (new lesion not measured, target 50) -> target 61: iPR vs nadir 100.
    b = at(at(at(tracker(), "2026-02-01", 100, 10), "2026-03-08", 50), "2026-04-05", 61, 10)
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, NE, IPR]
    assert result.immune_timepoints[2].nadir_sum_mm == Decimal(100)


def test_tracker_27_day_scan_excluded_28_day_scan_confirms() -> None:
    # The tracker has no timepoint grouping; scans one day apart stay separate with a 0-day window.
    b = at(at(at(tracker(), "2026-02-01", 125), "2026-02-28", 130), "2026-03-01", 130)
    result = assess(b.build(), AssessmentParameters(timepoint_window_days=0), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, IUPD, ICPD]
    assert result.immune_timepoints[1].traces[0].rule == "irecist/iupd/too-early-to-confirm"


def test_tracker_icpd_is_final_and_best_is_ipr() -> None:
    # iPR -> iUPD -> iCPD -> (target 0) keeps iCPD; best timepoint = iPR.
    b = at(tracker(), "2026-02-01", 50)
    b = at(at(at(b, "2026-03-01", 125, "3.2"), "2026-04-05", 125, "8.2"), "2026-05-03", 0, "8.2")
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IPR, IUPD, ICPD, ICPD]
    assert result.immune_best_response is not None
    assert result.immune_best_response.response is IPR
    assert result.immune_best_response.response_date == date(2026, 2, 1)


def test_tracker_stable_new_lesion_does_not_block_ipr_or_isd() -> None:
    ipr = at(at(tracker(), "2026-02-01", 125, 10), "2026-03-08", 50, 10)
    isd = at(at(tracker(), "2026-02-01", 125, 10), "2026-03-08", 90, 10)
    assert codes(ipr) == [IUPD, IPR]
    assert codes(isd) == [IUPD, ISD]


def test_tracker_unchanged_pr_with_stable_new_lesion_stays_iupd() -> None:
    # FAQ scenario F: PR met before a new-lesion iUPD and no further change => stays iUPD.
    b = at(at(at(tracker(), "2026-02-01", 50), "2026-03-01", 50, 10), "2026-04-05", 50, 10)
    assert codes(b) == [IPR, IUPD, IUPD]


def test_faq_scenario_b_further_shrinkage_after_new_lesion_gives_ipr() -> None:
    # FAQ scenario B: new lesion, then further target shrinkage => iPR.
    b = at(at(at(tracker(), "2026-02-01", 60), "2026-03-01", 60, 10), "2026-04-05", 40, 10)
    assert codes(b) == [IPR, IUPD, IPR]


def test_tracker_new_lesion_first_seen_on_early_scan_is_additional_at_next_scan() -> None:
    b = TimelineBuilder(start=date(2026, 1, 1)).target("t1", "liver").new_target("nl1", "lung")
    b.scan(0, {"t1": 100})
    at(at(at(b, "2026-02-01", 125), "2026-02-15", 125, 10), "2026-03-08", 125, 10)
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, IUPD, ICPD]
    assert "additional-new-lesion" in dict(result.immune_timepoints[2].traces[0].facts)["reasons"]


def test_tracker_reappearance_after_icr_is_iupd() -> None:
    b = at(at(tracker(baseline=10), "2026-02-01", 0), "2026-03-08", 4)
    assert codes(b) == [ICR, IUPD]


def test_irecist_next_assessment_confirms_whatever_the_gap_unless_a_protocol_sets_a_window() -> None:
    # iRECIST (Seymour 2017; FAQ "early confirmation scans"): the NEXT assessment confirms (+>= 5 mm);
    # 4-8 weeks is the recommended schedule, not a limit. 70 days later still confirms by default;
    # a protocol window `icpd_max_days=56` keeps it iUPD (docs/rules/irecist.md).
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 62}).scan(126, {"T": 70})
    assert codes(b) == [IUPD, ICPD]
    windowed = assess(b.build(), AssessmentParameters(icpd_max_days=56), as_of=AS_OF).immune_timepoints
    assert [t.overall for t in windowed] == [IUPD, IUPD]
    b2 = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 62}).scan(112, {"T": 70})
    assert codes(b2) == [IUPD, ICPD]


def test_icr_needs_new_lesions_gone() -> None:
    # RECIST-tracker rule: a CR of the original disease with a new lesion still present is iPR.
    b = TimelineBuilder().target("A", "liver").lesion("X", "lung").scan(-7, {"A": 40})
    b.scan(56, {"A": 30, "X": 12}).scan(112, {"A": 0, "X": 12}).scan(168, {"A": 0, "X": 0})
    assert codes(b) == [IUPD, IPR, ICR]


# --- iRECIST Table 3 (iBOR) -------------------------------------------------------------------
START = date(2024, 1, 1)


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([ICR, ICR, ICR, IUPD, ICPD], ICR),  # example 1
        ([ICR, IPR, IUPD, IUPD, ICPD], ICR),  # example 1 (alternative middle values)
        ([ICR, NE, IUPD, ICPD], ICR),  # example 1 (NE in the middle)
        ([IUPD, IPR, ICR, IUPD, ICPD], ICR),  # example 2
        ([IUPD, NE, ICR, ICR], ICR),  # example 2 (NE alternative)
        ([IUPD, IPR, IPR, IUPD, ICPD], IPR),  # example 3
        ([IUPD, ISD, IPR, IPR, IUPD], IPR),  # example 4
        ([IUPD, NE, IPR, ISD, ICPD], IPR),  # example 4 (NE alternative)
        ([IUPD, ISD, ISD, IUPD, ICPD], ISD),  # example 5
        ([IUPD, ICPD], ICPD),  # example 6
        ([IUPD, IUPD, ICPD], ICPD),  # example 7
        ([IUPD, NE, NE, NE, NE], IUPD),  # example 8
    ],
)
def test_irecist_table3_ibor(sequence: list[ImmuneResponse], expected: ImmuneResponse) -> None:
    seq = [(START + timedelta(days=56 * (n + 1)), r) for n, r in enumerate(sequence)]
    bor = immune_best_overall_response(seq, START, AssessmentParameters())
    assert bor is not None
    assert bor.response is expected


# --- non-target `increased` (RECIST 1.1 non-target decision) keeps the iRECIST confirmation ------------


def test_increased_non_target_confirms_a_target_iupd_as_pd_newly_met() -> None:
    # iRECIST Table 2 / FAQ "If iUPD is driven by ...": RECIST PD newly met in another category at the
    # next assessment confirms iCPD. Target iUPD (50 -> 62) then the non-target reads `increased`
    # (RECIST 1.1 non-target PD) with the target unchanged: iCPD on the non-target evidence.
    b = TimelineBuilder().target("T", "liver").non_target("P", "pleura")
    b.scan(-7, {"T": 50}, nt={"P": "present"}).scan(56, {"T": 62}, nt={"P": "present"})
    b.scan(98, {"T": 62}, nt={"P": "increased"})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.immune_timepoints] == [IUPD, ICPD]
    assert dict(result.immune_timepoints[1].traces[0].facts)["reasons"] == "non-target-newly-pd"


# --- iRECIST categories (Seymour 2017, PMC5648544, Table 2 columns) ----------------------------------------

INC_NUPD = ImmuneResponse.INON_CR_NON_UPD


def categories(
    b: TimelineBuilder,
) -> list[tuple[ImmuneResponse | None, ImmuneResponse | None, ImmuneResponse]]:
    return [(t.target, t.non_target, t.overall) for t in assess(b.build(), as_of=AS_OF).immune_timepoints]


def test_table2_target_icr_with_non_target_icr_or_persisting() -> None:
    # Table 2 rows 1-2: target iCR + non-target iCR => iCR; target iCR + non-iCR/non-iUPD => iPR.
    b = TimelineBuilder().target("T", "liver").non_target("P", "pleura")
    b.scan(-7, {"T": 30}, nt={"P": "present"}).scan(56, {"T": 0}, nt={"P": "present"})
    b.scan(112, {"T": 0}, nt={"P": "absent"})
    assert categories(b) == [(ICR, INC_NUPD, IPR), (ICR, ICR, ICR)]


def test_table2_target_ipr_and_isd_with_persisting_non_target() -> None:
    # Table 2 rows 3-4: target iPR / iSD + non-target non-iCR/non-iUPD => iPR / iSD.
    b = TimelineBuilder().target("T", "liver").non_target("P", "pleura")
    b.scan(-7, {"T": 50}, nt={"P": "present"}).scan(56, {"T": 45}, nt={"P": "present"})
    b.scan(112, {"T": 35}, nt={"P": "present"})
    assert categories(b) == [(ISD, INC_NUPD, ISD), (IPR, INC_NUPD, IPR)]


def test_table2_non_target_iupd_confirmed_by_further_increase() -> None:
    # Table 2 row 6: target iSD + non-target iUPD => iUPD; "remains iUPD unless iCPD is confirmed on
    # the basis of a further increase in the size of non-target disease" => non-target iCPD.
    b = TimelineBuilder().target("T", "liver").non_target("P", "pleura")
    b.scan(-7, {"T": 50}, nt={"P": "present"}).scan(56, {"T": 48}, nt={"P": "unequivocal-progression"})
    b.scan(98, {"T": 48}, nt={"P": "increased"})
    assert categories(b) == [(ISD, IUPD, IUPD), (ISD, ICPD, ICPD)]


def test_table2_target_iupd_remains_iupd_without_further_5_mm_then_confirms() -> None:
    # Table 2 row 7: target iUPD + non-target non-iCR/non-iUPD => iUPD; remains iUPD unless the sum
    # grows by >= 5 mm more: 50 -> 62 (iUPD), 64 (+2: iUPD), 67 (+5 from the iUPD: iCPD). The
    # confirmed target category stays iCPD afterwards, as the overall response does.
    b = TimelineBuilder().target("T", "liver").non_target("P", "pleura")
    b.scan(-7, {"T": 50}, nt={"P": "present"}).scan(56, {"T": 62}, nt={"P": "present"})
    b.scan(98, {"T": 64}, nt={"P": "present"}).scan(140, {"T": 67}, nt={"P": "present"})
    b.scan(182, {"T": 40}, nt={"P": "present"})
    assert categories(b) == [
        (IUPD, INC_NUPD, IUPD),
        (IUPD, INC_NUPD, IUPD),
        (ICPD, INC_NUPD, ICPD),
        (ICPD, INC_NUPD, ICPD),
    ]


def test_table2_categories_not_applicable_or_not_evaluable() -> None:
    # No non-target disease at baseline => no non-target category; a target not measured => NE.
    b = TimelineBuilder().target("A").target("B", "liver").scan(-7, {"A": 20, "B": 30})
    b.scan(56, {"A": 20})
    assert categories(b) == [(NE, None, NE)]
