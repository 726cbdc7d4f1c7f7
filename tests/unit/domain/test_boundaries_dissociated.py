"""Every dissociated-response definition at, just below and just above its thresholds.

Sources (docs/rules/dissociated-response.md): review Ther Adv Med Oncol 2022;14:17588359221096877
(PMC9083034) Table 1, and the papers it lists: Bernard-Tessier, Cancer Immunol Immunother
2021;70:221-232 (strict "> 30 %" / "> 20 %" with ">= 5 mm", per lesion, as extended by Guan et al.,
Sci Rep 2024); Humbert & Chardin, Front Oncol 2020;10:566297 (any shrinking + any growing lesion);
Tozuka et al., BMC Cancer 2020;20:207 (only RECIST PD at the first CT); Vaflard et al., Drugs R D 2021
(>= 1 responding and >= 1 progressive target lesion, RECIST-like per-lesion thresholds); Sato et al.,
Invest New Drugs 2021 (organ-level RECIST at the first evaluation).
"""

from __future__ import annotations

import pytest

from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalFinding, AtypicalKind, DrTrigger

from .builders import AS_OF, TimelineBuilder

Mm = int | str


def dr_of(b: TimelineBuilder, definition: str) -> AtypicalFinding | None:
    result = assess(b.build(), AssessmentParameters(dr_definition=definition), as_of=AS_OF)
    return next((f for f in result.atypical if f.kind is AtypicalKind.DR), None)


def liver_and_lung(a_fu: Mm, c_fu: Mm, *, a_bl: Mm = 30, c_bl: Mm = 25) -> TimelineBuilder:
    """Target A (liver) and target C (lung), one follow-up at day 56."""
    b = TimelineBuilder().target("A", "liver").target("C", "lung")
    return b.scan(-7, {"A": a_bl, "C": c_bl}).scan(56, {"A": a_fu, "C": c_fu})


# --- Bernard-Tessier 2021 (strict: "> 30 %" decrease, "> 20 %" AND ">= 5 mm" increase) ----------


@pytest.mark.parametrize(
    ("a_fu", "expected"),
    [("21.1", False), (21, False), ("20.9", True)],
    ids=["-29.67pct", "exactly-30pct", "-30.33pct"],
)
def test_bernard_tessier_decrease_must_be_more_than_30_pct(a_fu: str, expected: bool) -> None:
    # C 25 -> 35 (+40 %, +10 mm) grows in every case; only A's decrease varies around -30 %.
    assert (dr_of(liver_and_lung(a_fu, 35), "bernard-tessier") is not None) is expected


@pytest.mark.parametrize(
    ("c_fu", "expected"),
    [("29.9", False), (30, False), ("30.1", True)],
    ids=["+19.6pct", "exactly-20pct-and-5mm", "+20.4pct"],
)
def test_bernard_tessier_increase_must_be_more_than_20_pct(c_fu: str, expected: bool) -> None:
    # A 30 -> 15 (-50 %) shrinks in every case; C 25 -> 30 is +20 % and +5 mm exactly.
    assert (dr_of(liver_and_lung(15, c_fu), "bernard-tessier") is not None) is expected


@pytest.mark.parametrize(
    ("c_fu", "expected"),
    [("14.9", False), (15, True), ("15.1", True)],
    ids=["+4.9mm", "exactly-5mm", "+5.1mm"],
)
def test_bernard_tessier_increase_needs_at_least_5_mm(c_fu: str, expected: bool) -> None:
    # C 10 -> 15 is +50 %: only the absolute floor (">= 5 mm", inclusive) decides.
    assert (dr_of(liver_and_lung(15, c_fu, c_bl=10), "bernard-tessier") is not None) is expected


def test_bernard_tessier_increase_is_measured_from_the_lesions_own_nadir() -> None:
    # C 25 -> 10 -> 16: +60 % / +6 mm from its nadir 10 (growing), and -36 % from its baseline
    # (shrinking as well: decrease is judged against the baseline, increase against the nadir).
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 25, "C": 10}).scan(112, {"A": 15, "C": 16})
    finding = dr_of(b, "bernard-tessier")
    assert finding is not None
    assert (finding.timepoint_index, finding.growing_lesions, finding.shrinking_lesions) == (
        2,
        ("C",),
        ("A", "C"),
    )


def test_bernard_tessier_needs_two_different_lesions() -> None:
    # One lesion both -70 % from its baseline and +50 % / +10 mm from its nadir is not "some
    # lesions decrease while OTHERS increase"; a second lesion that is stable adds nothing.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 100, "C": 25})
    b.scan(56, {"A": 20, "C": 25}).scan(112, {"A": 30, "C": 25})
    assert dr_of(b, "bernard-tessier") is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("present", None),
        ("unequivocal-progression", DrTrigger.NON_TARGET_LESION),
        ("increased", DrTrigger.NON_TARGET_LESION),
    ],
)
def test_bernard_tessier_non_measurable_deterioration_trigger(state: str, expected: DrTrigger | None) -> None:
    # Guan et al. 2024: "or deterioration of non-measurable lesions"; A 30 -> 15 shrinks.
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 15}, nt={"P": state})
    finding = dr_of(b, "bernard-tessier")
    assert (finding.trigger if finding else None) is expected


def test_bernard_tessier_new_lesion_trigger_and_precedence() -> None:
    # Guan et al. 2024: "or new lesions"; with a growing measured lesion as well, the measured
    # evidence is the trigger (precedence target > non-target > new, docs/rules/dissociated-response.md).
    b = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 15, "C": 25, "N": 12})
    finding = dr_of(b, "bernard-tessier")
    assert finding is not None
    assert finding.trigger is DrTrigger.NEW_LESION
    assert finding.growing_lesions == ("N",)
    b2 = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b2.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 15, "C": 35, "N": 12})
    finding2 = dr_of(b2, "bernard-tessier")
    assert finding2 is not None
    assert finding2.trigger is DrTrigger.TARGET_LESION
    assert finding2.growing_lesions == ("C", "N")


def test_bernard_tessier_no_trigger_without_a_shrinking_lesion() -> None:
    # A 30 -> 22 (-26.7 %) with a new lesion: progression, not dissociation (worked case W24 logic).
    b = TimelineBuilder().target("A", "liver").new_target("N", "bone")
    b.scan(-7, {"A": 30}).scan(56, {"A": 22, "N": 12})
    assert dr_of(b, "bernard-tessier") is None


# --- Humbert & Chardin 2020 (any responding + any non-responding lesion) -------------------------


@pytest.mark.parametrize(
    ("a_fu", "c_fu", "expected"),
    [
        (30, 35, False),  # A unchanged: not shrinking
        ("29.9", 25, False),  # C unchanged from its nadir: not growing
        ("29.9", "25.1", True),  # the smallest changes either way
    ],
)
def test_humbert_any_decrease_and_any_increase(a_fu: Mm, c_fu: Mm, expected: bool) -> None:
    assert (dr_of(liver_and_lung(a_fu, c_fu), "humbert") is not None) is expected


def test_humbert_growth_is_against_the_own_nadir_and_at_any_timepoint() -> None:
    # C 25 -> 20 -> 21: below its baseline but above its nadir; found at timepoint 2.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 29, "C": 20}).scan(112, {"A": 28, "C": 21})
    finding = dr_of(b, "humbert")
    assert finding is not None
    assert (finding.timepoint_index, finding.trigger) == (2, DrTrigger.TARGET_LESION)


def test_humbert_new_lesion_or_non_target_progression_with_a_shrinking_lesion() -> None:
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 29}, nt={"P": "unequivocal-progression"})
    finding = dr_of(b, "humbert")
    assert finding is not None
    assert finding.trigger is DrTrigger.NON_TARGET_LESION


# --- Tozuka 2020 (only patients with RECIST PD at the first CT; first evaluation only) -----------


def test_tozuka_requires_pd_at_the_first_evaluation() -> None:
    # A 30 -> 29 shrinks, C 25 -> 26 grows: overall SD at the first CT, so not a Tozuka DR.
    assert dr_of(liver_and_lung(29, 26), "tozuka") is None
    # A 30 -> 29, C 25 -> 36: sum 55 -> 65 (+18 %) is SD still; 25 -> 37 makes 66 (+20 %, +11) = PD.
    assert dr_of(liver_and_lung(29, 36), "tozuka") is None
    finding = dr_of(liver_and_lung(29, 37), "tozuka")
    assert finding is not None
    assert (finding.timepoint_index, finding.trigger) == (1, DrTrigger.TARGET_LESION)


def test_tozuka_pd_by_a_new_lesion_with_a_shrinking_lesion() -> None:
    # "some shrinking lesions as well as ... emerging new lesions": PD by the new lesion.
    b = TimelineBuilder().target("A", "liver").new_target("N", "bone")
    b.scan(-7, {"A": 30}).scan(56, {"A": 29, "N": 12})
    finding = dr_of(b, "tozuka")
    assert finding is not None
    assert finding.trigger is DrTrigger.NEW_LESION


def test_tozuka_looks_at_the_first_ct_only() -> None:
    # SD at the first CT, then PD with a shrinking and a growing lesion at the second: no.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 30, "C": 25}).scan(112, {"A": 29, "C": 40})
    assert dr_of(b, "tozuka") is None


# --- Vaflard 2021 (>= 1 responding and >= 1 progressive TARGET lesion; RECIST-like, inclusive) ---


@pytest.mark.parametrize(
    ("a_fu", "c_fu", "expected"),
    [
        (21, 30, True),  # exactly -30 % and exactly +20 % / +5 mm: inclusive thresholds
        ("21.1", 30, False),  # -29.67 %: not responding
        (21, "29.9", False),  # +19.6 %: not progressing
        (0, 30, True),  # disappeared counts as responding
    ],
)
def test_vaflard_per_lesion_recist_thresholds(a_fu: Mm, c_fu: Mm, expected: bool) -> None:
    assert (dr_of(liver_and_lung(a_fu, c_fu), "vaflard-target") is not None) is expected


def test_vaflard_counts_target_lesions_only() -> None:
    # A responds, but only a non-target progresses and a new lesion appears: not a Vaflard DR.
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura").new_target("N", "bone")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(
        56, {"A": 15, "N": 12}, nt={"P": "unequivocal-progression"}
    )
    assert dr_of(b, "vaflard-target") is None


def test_vaflard_lesion_progression_needs_5_mm() -> None:
    # C 10 -> 14.9: +49 % but +4.9 mm; 10 -> 15: +5 mm exactly (RECIST 1.1 section 4.3.1 per lesion).
    assert dr_of(liver_and_lung(15, "14.9", c_bl=10), "vaflard-target") is None
    assert dr_of(liver_and_lung(15, 15, c_bl=10), "vaflard-target") is not None


# --- Sato 2021 (organ-level RECIST at the first evaluation) --------------------------------------


@pytest.mark.parametrize(
    ("a_fu", "c_fu", "expected"),
    [
        (21, 30, True),  # liver exactly -30 % (PR), lung exactly +20 % / +5 mm (PD)
        ("21.1", 30, False),  # liver -29.67 %: SD
        (21, "29.9", False),  # lung +19.6 %: SD
    ],
)
def test_sato_organ_pr_in_one_organ_pd_in_another(a_fu: Mm, c_fu: Mm, expected: bool) -> None:
    finding = dr_of(liver_and_lung(a_fu, c_fu), "sato-organ")
    assert (finding is not None) is expected
    if finding is not None:
        assert finding.trigger is DrTrigger.TARGET_LESION
        assert (finding.shrinking_lesions, finding.growing_lesions) == (("A",), ("C",))


def test_sato_organ_progression_needs_5_mm_in_the_organ_sum() -> None:
    # Lung C 10 -> 14.9: +49 % but +4.9 mm (SD); 10 -> 15: +5 mm (PD).
    assert dr_of(liver_and_lung(15, "14.9", c_bl=10), "sato-organ") is None
    assert dr_of(liver_and_lung(15, 15, c_bl=10), "sato-organ") is not None


def test_sato_organ_uses_the_sum_of_the_organs_targets() -> None:
    # Liver A 20 + B 10 = 30 -> 14 + 7 = 21 (exactly -30 %, PR) although B alone is also -30 %;
    # then A 14 + B 8 = 22 (-26.7 %, SD): no organ responds.
    def build(b_fu: int) -> TimelineBuilder:
        b = TimelineBuilder().target("A", "liver").target("B", "liver").target("C", "lung")
        return b.scan(-7, {"A": 20, "B": 10, "C": 25}).scan(56, {"A": 14, "B": b_fu, "C": 30})

    finding = dr_of(build(7), "sato-organ")
    assert finding is not None
    assert finding.shrinking_lesions == ("A", "B")
    assert dr_of(build(8), "sato-organ") is None


@pytest.mark.parametrize(
    ("nt", "new", "expected"),
    [
        ("present", False, None),
        ("unequivocal-progression", False, DrTrigger.NON_TARGET_LESION),
        ("present", True, DrTrigger.NEW_LESION),
    ],
)
def test_sato_organ_all_organs_respond_but_new_or_non_measurable_deterioration(
    nt: str, new: bool, expected: DrTrigger | None
) -> None:
    # Sato pattern (2): every organ CR/PR (liver -50 %, lung -40 %) with a new lesion or apparent
    # deterioration of unmeasurable lesions.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").non_target("P", "pleura")
    b.new_target("N", "bone").scan(-7, {"A": 30, "C": 25}, nt={"P": "present"})
    b.scan(56, {"A": 15, "C": 15, **({"N": 12} if new else {})}, nt={"P": nt})
    finding = dr_of(b, "sato-organ")
    assert (finding.trigger if finding else None) is expected


def test_sato_organ_not_all_organs_respond_when_one_is_stable() -> None:
    # Liver PR, lung SD (25 -> 24), new lesion: pattern (2) needs ALL organs CR/PR.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 15, "C": 24, "N": 12})
    assert dr_of(b, "sato-organ") is None


def test_sato_organ_an_unmeasured_organ_is_not_evaluated() -> None:
    # Lung target not measured at the first evaluation: the lung organ is not CR/PR, so a new
    # lesion with a responding liver is not pattern (2).
    b = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 15, "N": 12})
    assert dr_of(b, "sato-organ") is None


def test_sato_organ_looks_at_the_first_evaluation_only() -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 30, "C": 25}).scan(112, {"A": 15, "C": 35})
    assert dr_of(b, "sato-organ") is None


def test_sato_organ_nodal_organ_complete_response() -> None:
    # All lymph nodes are one organ (RECIST 1.1); nodes 15 and 16 -> 9 and 9.9 (< 10 mm) = CR of
    # the nodal organ; lung +20 % / +5 mm = PD: mixed organs.
    b = TimelineBuilder().target("L1", node=True).target("L2", node=True).target("C", "lung")
    b.scan(-7, {"L1": 15, "L2": 16, "C": 25}).scan(56, {"L1": 9, "L2": "9.9", "C": 30})
    finding = dr_of(b, "sato-organ")
    assert finding is not None
    assert finding.shrinking_lesions == ("L1", "L2")


# --- cases that separate the definitions' remaining branches --------------------------------------


@pytest.mark.parametrize(
    "definition", ["bernard-tessier", "humbert", "tozuka", "vaflard-target", "sato-organ"]
)
def test_no_dissociated_response_without_a_follow_up(definition: str) -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    assert dr_of(b, definition) is None


def test_finding_is_dated_at_the_timepoint_that_met_the_definition() -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 30, "C": 25}).scan(112, {"A": 15, "C": 35}).scan(168, {"A": 15, "C": 35})
    finding = dr_of(b, "bernard-tessier")
    assert finding is not None
    assert (finding.timepoint_index, finding.timepoint_date) == (2, b.day(112))


def test_humbert_growth_alone_is_not_dissociation() -> None:
    # Two lesions growing, none shrinking: progression of both, not "responding and non-responding".
    assert dr_of(liver_and_lung(31, 26), "humbert") is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [("present", None), ("increased", DrTrigger.NON_TARGET_LESION)],
)
def test_humbert_non_target_states(state: str, expected: DrTrigger | None) -> None:
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 29}, nt={"P": state})
    finding = dr_of(b, "humbert")
    assert (finding.trigger if finding else None) is expected


def test_humbert_a_shrinking_non_target_cannot_be_its_own_counterpart() -> None:
    # A measured non-target P 30 -> 20 read "unequivocal progression" is the only change: one lesion
    # is not "some lesions ... others"; the target A is unchanged.
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30, "P": 30}, nt={"P": "present"})
    b.scan(56, {"A": 30, "P": 20}, nt={"P": "unequivocal-progression"})
    assert dr_of(b, "humbert") is None


def test_tozuka_reads_the_first_ct_even_when_later_scans_differ() -> None:
    # PD with a shrinking and a growing lesion at the first CT, SD-sized disease later: DR at index 1.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 29, "C": 37}).scan(112, {"A": 29, "C": 37})
    finding = dr_of(b, "tozuka")
    assert finding is not None
    assert (finding.timepoint_index, finding.timepoint_date) == (1, b.day(56))


def test_tozuka_pd_at_the_first_ct_without_mixed_lesions_then_mixed_later() -> None:
    # First CT: both lesions grow (PD, nothing shrinks); second CT: A shrinks, C grows. Not Tozuka.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 31, "C": 37}).scan(112, {"A": 29, "C": 38})
    assert dr_of(b, "tozuka") is None


def test_sato_organ_non_nodal_organ_is_not_gone_while_a_lesion_is_measurable() -> None:
    # Liver A 12 -> 9 (-25 %: organ SD; a non-nodal lesion is gone only at 0 mm), lung PD: no DR.
    assert dr_of(liver_and_lung(9, 30, a_bl=12), "sato-organ") is None


def test_sato_organ_finding_is_the_first_evaluation() -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 21, "C": 30}).scan(112, {"A": 15, "C": 15, "N": 12})
    finding = dr_of(b, "sato-organ")
    assert finding is not None
    assert (finding.timepoint_index, finding.timepoint_date) == (1, b.day(56))
    b2 = TimelineBuilder().target("A", "liver").target("C", "lung").new_target("N", "bone")
    b2.scan(-7, {"A": 30, "C": 25}).scan(56, {"A": 15, "C": 15, "N": 12}).scan(112, {"A": 15, "C": 15})
    finding2 = dr_of(b2, "sato-organ")
    assert finding2 is not None
    assert (finding2.timepoint_index, finding2.trigger) == (1, DrTrigger.NEW_LESION)


def test_tozuka_needs_pd_at_the_first_ct_not_at_a_later_one() -> None:
    # First CT: A shrinks, C grows, sum 55 -> 55 (SD); second CT: PD. Tozuka selects patients by
    # PD at the FIRST CT, so this patient is not one of them.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 25})
    b.scan(56, {"A": 29, "C": 26}).scan(112, {"A": 29, "C": 40})
    assert dr_of(b, "tozuka") is None
