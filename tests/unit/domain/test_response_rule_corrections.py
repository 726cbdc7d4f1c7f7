"""Rule corrections with their sources (docs/rules/): each table has the case at, below and above the line.

- Nodal targets (RECIST 1.1 section 4.3.1; RECIST FAQ "Abnormal lymph node"): every nodal target
  < 10 mm short axis (and every other target at 0 mm) is target CR, before the +20 % / +5 mm arithmetic.
- Confirmation of progression (iRECIST, Seymour 2017; FAQ "early confirmation scans"): the next
  assessment >= 28 days after an iUPD confirms with +>= 5 mm, whatever the gap; an optional protocol
  window (`icpd_max_days`) limits it.
- Reset of iUPD (iRECIST FAQ "Assigning response after the appearance of new lesions", scenarios
  B and F): only further shrinkage of the baseline disease (>= 5 mm) resets a new-lesion iUPD whose
  category did not improve; never while the baseline target sum grows.
- No response after progression (RECIST 1.1 section 4.4.1): PD is carried forward and marked.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalKind, ImmuneResponse, PatientAssessment, Response

from .builders import AS_OF, TimelineBuilder, Value

CR, PR, SD, PD = Response.CR, Response.PR, Response.SD, Response.PD
ICR, IPR, ISD, IUPD, ICPD = (
    ImmuneResponse.ICR,
    ImmuneResponse.IPR,
    ImmuneResponse.ISD,
    ImmuneResponse.IUPD,
    ImmuneResponse.ICPD,
)


def _run(b: TimelineBuilder, params: AssessmentParameters | None = None) -> PatientAssessment:
    return assess(b.build(), params or AssessmentParameters(), as_of=AS_OF)


def _kinds(a: PatientAssessment) -> set[AtypicalKind]:
    return {f.kind for f in a.atypical}


# --- nodal targets ---------------------------------------------------------------------------------
def _two_nodes(second: Value, third: Value) -> TimelineBuilder:
    """Nodal targets A and B (20 mm each); both 3 mm at week 8 (CR, sum 6); then A `second`, B `third`."""
    b = TimelineBuilder().target("A", node=True).target("B", node=True)
    return b.scan(-7, {"A": 20, "B": 20}).scan(56, {"A": 3, "B": 3}).scan(112, {"A": second, "B": third})


@pytest.mark.parametrize(
    ("a_mm", "target", "overall", "immune"),
    [
        ("9.9", CR, CR, ICR),  # both nodes < 10 mm: sum 6 -> 18.9 (+215 %, +12.9 mm) is still CR
        ("10", PD, PD, IUPD),  # node A at exactly 10 mm is pathological again: reappearance after CR
        ("10.1", PD, PD, IUPD),
    ],
)
def test_recist_4_3_1_nodal_targets_below_10mm_are_cr_before_the_20pct_5mm_rule(
    a_mm: str, target: Response, overall: Response, immune: ImmuneResponse
) -> None:
    a = _run(_two_nodes(a_mm, 9))
    assert a.timepoints[1].target is target
    assert a.timepoints[1].overall is overall
    assert a.immune_timepoints[1].overall is immune


def test_recist_faq_abnormal_lymph_node_growth_below_10mm_is_no_pseudoprogression() -> None:
    # Before: nodes 3 -> 9 mm each read as iUPD, and 3 mm again reset it: a PsPD finding and an alert.
    b = _two_nodes(9, 9).scan(168, {"A": 3, "B": 3})
    a = _run(b)
    assert [t.overall for t in a.immune_timepoints] == [ICR, ICR, ICR]
    assert AtypicalKind.PSPD not in _kinds(a)


@pytest.mark.parametrize(("other_mm", "target"), [(0, CR), ("0.1", PR), (1, PR)])
def test_recist_4_3_1_cr_needs_non_nodal_targets_at_0mm_with_nodes_below_10mm(
    other_mm: Value, target: Response
) -> None:
    b = TimelineBuilder().target("N", node=True).target("L", "liver")
    b.scan(-7, {"N": 20, "L": 30}).scan(56, {"N": 9, "L": other_mm})
    assert _run(b).timepoints[0].target is target


# --- confirmation of progression ------------------------------------------------------------------
def _iupd_then(gap_days: int, next_mm: int) -> TimelineBuilder:
    """Target 50 mm; 62 mm at day 56 (iUPD: +24 %, +12 mm); `next_mm` `gap_days` later."""
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 62})
    return b.scan(56 + gap_days, {"T": next_mm})


@pytest.mark.parametrize(
    ("gap_days", "expected"),
    [
        (27, IUPD),  # earlier than 4 weeks: disregarded for confirmation (stays iUPD)
        (28, ICPD),
        (29, ICPD),
        (56, ICPD),  # the end of the recommended 4-8 weeks
        (57, ICPD),  # later: still the next assessment
        (84, ICPD),  # 12 weeks, a common interval in routine care
        (140, ICPD),  # 20 weeks
    ],
)
def test_irecist_icpd_at_the_next_assessment_from_28_days_whatever_the_gap(
    gap_days: int, expected: ImmuneResponse
) -> None:
    assert [t.overall for t in _run(_iupd_then(gap_days, 67)).immune_timepoints] == [IUPD, expected]


@pytest.mark.parametrize(("next_mm", "expected"), [(66, IUPD), (67, ICPD), (68, ICPD)])
def test_irecist_table2_icpd_needs_target_sum_5mm_more_than_at_iupd(
    next_mm: int, expected: ImmuneResponse
) -> None:
    assert [t.overall for t in _run(_iupd_then(84, next_mm)).immune_timepoints] == [IUPD, expected]


@pytest.mark.parametrize(("gap_days", "expected"), [(55, ICPD), (56, ICPD), (57, IUPD)])
def test_irecist_optional_protocol_window_icpd_max_days(gap_days: int, expected: ImmuneResponse) -> None:
    params = AssessmentParameters(icpd_max_days=56)
    assert [t.overall for t in _run(_iupd_then(gap_days, 67), params).immune_timepoints] == [IUPD, expected]


def test_irecist_icpd_confirmed_late_sets_the_ipfs_event_at_the_iupd() -> None:
    # iRECIST FAQ "Duration of i-response": iPFS is dated at the iUPD that iCPD confirms.
    a = _run(_iupd_then(84, 67))
    assert a.endpoints.ipfs_event is True
    assert a.endpoints.ipfs_days == 56


# --- reset of iUPD --------------------------------------------------------------------------------
def _new_lesion_iupd(t_next: Value, n_next: Value, x_next: Value | None = None) -> TimelineBuilder:
    """Target 50 -> 30 mm (iPR) -> 30 mm with new-lesion target N 12 mm (iUPD, basis new lesion),
    then target `t_next` and N `n_next` (and new non-target X when given)."""
    b = TimelineBuilder().target("T", "liver").new_target("N", "adrenal").lesion("X", "skin")
    b.scan(-7, {"T": 50}).scan(56, {"T": 30}).scan(112, {"T": 30, "N": 12})
    values: dict[str, Value] = {"T": t_next, "N": n_next}
    if x_next is not None:
        values["X"] = x_next
    return b.scan(168, values)


@pytest.mark.parametrize(
    ("t_next", "expected"),
    [
        (26, IUPD),  # fell 4 mm: no further change (scenario F), stays iUPD
        (25, IPR),  # fell 5 mm: further shrinkage of the baseline disease (scenario B), reset
        (24, IPR),
    ],
)
def test_irecist_faq_scenarios_b_f_reset_on_5mm_further_shrinkage_of_the_baseline_disease(
    t_next: int, expected: ImmuneResponse
) -> None:
    a = _run(_new_lesion_iupd(t_next, 12))
    assert [t.overall for t in a.immune_timepoints] == [IPR, IUPD, expected]
    assert (AtypicalKind.PSPD in _kinds(a)) is (expected is IPR)


@pytest.mark.parametrize("n_next", [8, 7, 6])  # new-lesion target sum fell 4, 5, 6 mm
def test_irecist_faq_scenario_f_new_lesions_shrinking_alone_do_not_reset(n_next: int) -> None:
    a = _run(_new_lesion_iupd(30, n_next))
    assert [t.overall for t in a.immune_timepoints] == [IPR, IUPD, IUPD]
    assert AtypicalKind.PSPD not in _kinds(a)


@pytest.mark.parametrize(
    ("t_next", "expected"),
    [
        (29, IPR),  # new lesion gone and baseline disease smaller: reset
        (30, IPR),  # new lesion gone, baseline disease unchanged: reset
        (31, IUPD),  # new lesion gone but the baseline target sum grows: never a reset (no PsPD)
    ],
)
def test_irecist_no_reset_while_the_baseline_target_sum_grows(t_next: int, expected: ImmuneResponse) -> None:
    a = _run(_new_lesion_iupd(t_next, 0))
    assert [t.overall for t in a.immune_timepoints] == [IPR, IUPD, expected]
    assert (AtypicalKind.PSPD in _kinds(a)) is (expected is IPR)


# --- no response after progression ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("after_mm", "strict"),
    [(0, CR), (30, PR), (50, SD), (61, PD)],  # what Table 1 alone would say after the PD
)
def test_recist_4_4_1_no_response_after_pd(after_mm: int, strict: Response) -> None:
    # Target 50 mm; 60 mm at day 56 (PD: +20 %, +10 mm); then `after_mm` at day 112.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 60})
    a = _run(b.scan(112, {"T": after_mm}))
    first, after = a.timepoints
    assert (first.overall, first.post_progression) == (PD, False)
    assert (after.overall, after.reported, after.post_progression) == (PD, PD, True)
    facts = {t.rule: dict(t.facts) for t in after.traces}
    assert facts["recist1.1/post-progression"]["strict"] == strict.value


def test_recist_4_4_1_a_resolved_new_lesion_is_no_response_after_pd() -> None:
    b = TimelineBuilder().target("T", "liver").lesion("X", "skin").scan(-7, {"T": 50})
    b.scan(56, {"T": 40, "X": 10}).scan(112, {"T": 40, "X": 0})
    a = _run(b)
    assert [(t.overall, t.reported, t.post_progression) for t in a.timepoints] == [
        (PD, PD, False),
        (PD, PD, True),
    ]
    assert a.best_response is not None
    assert a.best_response.response is PD
    assert a.endpoints.pfs_days == 56


def test_recist_post_progression_leaves_the_categories_of_the_scan() -> None:
    # The target and non-target categories are readings of that scan, not responses.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 60}).scan(112, {"T": 0})
    after = _run(b).timepoints[1]
    assert after.target is CR
    assert after.sum_mm == Decimal(0)


@pytest.mark.parametrize("definition", ["bernard-tessier", "humbert", "vaflard-target"])
@pytest.mark.parametrize(("node_mm", "dr"), [(9, False), (10, True), (11, True)])
def test_recist_faq_abnormal_lymph_node_a_node_below_10mm_is_no_growing_lesion(
    definition: str, node_mm: int, dr: bool
) -> None:
    # Nodal targets A and B (15 mm); A 0 mm and B 3 mm at week 3; then A `node_mm`, B 0 mm. Below
    # 10 mm A is a normal node (target CR, no dissociated response and no alert); from 10 mm it is
    # pathological again and grows from its nadir (0 mm) while B shrank.
    b = TimelineBuilder().target("A", node=True).target("B", node=True)
    b.scan(-7, {"A": 15, "B": 15}).scan(21, {"A": 0, "B": 3}).scan(63, {"A": node_mm, "B": 0})
    a = _run(b, AssessmentParameters(dr_definition=definition))
    assert (AtypicalKind.DR in _kinds(a)) is dr
    assert (a.timepoints[1].target is CR) is not dr


@pytest.mark.parametrize(("last_mm", "expected"), [(0, ICR), (1, IPR), (15, ISD)])
def test_irecist_a_scan_too_early_to_confirm_is_not_the_reference_for_growth(
    last_mm: int, expected: ImmuneResponse
) -> None:
    # Target 20 mm; 25 mm at day 42 (iUPD); 0 mm at day 63 (21 days: too early, disregarded as the
    # FAQ says, and left out of the nadir); `last_mm` at day 84 is judged against the iUPD (25 mm),
    # not against the early 0 mm: 1 mm is shrinkage since the iUPD, so the iUPD resets.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 20}).scan(42, {"T": 25}).scan(63, {"T": 0})
    a = _run(b.scan(84, {"T": last_mm}))
    assert [t.overall for t in a.immune_timepoints] == [IUPD, IUPD, expected]
    assert AtypicalKind.PSPD in _kinds(a)
