"""Dissociated response definitions (reference 1c; contract section 2; seed study Fig. 5)."""

from __future__ import annotations

import pytest

from service.domain.dissociated import REGISTRY
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalFinding, AtypicalKind, DrTrigger, Response, ResponseGroup

from .builders import AS_OF, TimelineBuilder


def dr_of(b: TimelineBuilder, definition: str = "bernard-tessier") -> AtypicalFinding | None:
    result = assess(b.build(), AssessmentParameters(dr_definition=definition), as_of=AS_OF)
    return next((f for f in result.atypical if f.kind is AtypicalKind.DR), None)


def two_targets(a_fu: int | str, c_fu: int | str, a_bl: int = 30, c_bl: int = 20) -> TimelineBuilder:
    b = TimelineBuilder().target("A", "liver").target("C", "lung")
    return b.scan(-7, {"A": a_bl, "C": c_bl}).scan(56, {"A": a_fu, "C": c_fu})


def test_registry_has_published_definitions_with_versions() -> None:
    assert set(REGISTRY) == {"bernard-tessier", "sato-organ", "tozuka", "humbert", "vaflard-target"}
    for definition in REGISTRY.values():
        assert definition.version
        assert definition.detect.__doc__
        assert definition.citation
    assert AssessmentParameters().dr_definition == "bernard-tessier"


def test_w24_no_bernard_tessier_dr_without_more_than_30_pct_decrease() -> None:
    # Reference W24: A 30 -> 22 (-26.7 %), C 20 -> 26 (+30 %, +6 mm) => Bernard-Tessier no.
    assert dr_of(two_targets(22, 26)) is None


def test_w24_humbert_style_some_shrink_some_grow_is_dr() -> None:
    # Reference W24: "Tozuka/Humbert-style 'some shrink, some grow' yes".
    finding = dr_of(two_targets(22, 26), "humbert")
    assert finding is not None
    assert finding.trigger is DrTrigger.TARGET_LESION


def test_bernard_tessier_target_lesion_trigger() -> None:
    # Contract section 2: one lesion shrinks > 30 % while another grows > 20 % and >= 5 mm.
    finding = dr_of(two_targets(20, 26))  # A -33.3 %, C +30 % / +6 mm
    assert finding is not None
    assert finding.definition == "bernard-tessier"
    assert finding.trigger is DrTrigger.TARGET_LESION
    assert (finding.shrinking_lesions, finding.growing_lesions) == (("A",), ("C",))
    assert finding.timepoint_index == 1
    assert finding.overall_at_detection is Response.SD  # sum 50 -> 46: DR coexisting with SD (W23)


@pytest.mark.parametrize(
    ("a_fu", "c_fu", "expected"),
    [
        (21, 26, False),  # A exactly -30 %: not MORE than 30 %
        (20, 24, False),  # C exactly +20 % (and only +4 mm): not MORE than 20 %
        (20, 25, True),  # C +25 %, +5 mm
        (20, "24.1", False),  # C +20.5 % but +4.1 mm < 5 mm
    ],
)
def test_bernard_tessier_strict_thresholds(a_fu: int | str, c_fu: int | str, expected: bool) -> None:
    # Strict inequalities (worked case W24, docs/rules/worked-cases.md): "> 30 %" and "> 20 % and >= 5 mm".
    assert (dr_of(two_targets(a_fu, c_fu)) is not None) is expected


def test_exact_20_pct_with_5_mm_is_not_more_than_20_pct() -> None:
    # C 25 -> 30: exactly +20 % and +5 mm (RECIST PD for the lesion, but not "> 20 %").
    assert dr_of(two_targets(20, 30, c_bl=25)) is None


def test_growth_is_measured_from_the_lesions_own_nadir() -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 20})
    b.scan(56, {"A": 25, "C": 10}).scan(
        112, {"A": 18, "C": 16}
    )  # C +60 % / +6 mm from its nadir 10; sum 34 (-32 %)
    finding = dr_of(b)
    assert finding is not None
    assert finding.timepoint_index == 2
    assert finding.overall_at_detection is Response.PR  # seed study Fig. 5: DR at a PR timepoint


def test_new_lesion_trigger_with_shrinking_lesion_at_pd() -> None:
    b = TimelineBuilder().target("A", "liver").lesion("X", "bone").scan(-7, {"A": 30})
    b.scan(56, {"A": 15, "X": 12})
    finding = dr_of(b)
    assert finding is not None
    assert finding.trigger is DrTrigger.NEW_LESION
    assert finding.overall_at_detection is Response.PD  # seed study Fig. 5: DR at a PD timepoint
    assert finding.growing_lesions == ("X",)


def test_non_target_trigger() -> None:
    b = TimelineBuilder().target("A", "liver").non_target("P", "pleura")
    b.scan(-7, {"A": 30}, nt={"P": "present"}).scan(56, {"A": 15}, nt={"P": "unequivocal-progression"})
    finding = dr_of(b)
    assert finding is not None
    assert finding.trigger is DrTrigger.NON_TARGET_LESION


def test_trigger_precedence_target_over_non_target_over_new() -> None:
    b = (
        TimelineBuilder()
        .target("A", "liver")
        .target("C", "lung")
        .non_target("P", "pleura")
        .lesion("X", "bone")
    )
    b.scan(-7, {"A": 30, "C": 20}, nt={"P": "present"})
    b.scan(56, {"A": 15, "C": 30, "X": 12}, nt={"P": "unequivocal-progression"})
    finding = dr_of(b)
    assert finding is not None
    assert finding.trigger is DrTrigger.TARGET_LESION
    assert finding.growing_lesions == ("C", "P", "X")
    b2 = TimelineBuilder().target("A", "liver").non_target("P", "pleura").lesion("X", "bone")
    b2.scan(-7, {"A": 30}, nt={"P": "present"}).scan(
        56, {"A": 15, "X": 12}, nt={"P": "unequivocal-progression"}
    )
    finding2 = dr_of(b2)
    assert finding2 is not None
    assert finding2.trigger is DrTrigger.NON_TARGET_LESION


def test_one_lesion_cannot_be_both_the_shrinking_and_the_growing_one() -> None:
    # "at least one other lesion": A -40 % vs baseline yet +50 % vs its own nadir is one lesion only.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 100, "C": 20})
    b.scan(56, {"A": 40, "C": 20}).scan(112, {"A": 60, "C": 20})
    finding = dr_of(b)
    assert finding is None


def test_dr_drives_response_group() -> None:
    result = assess(two_targets(20, 26).build(), as_of=AS_OF)
    assert result.response_group is ResponseGroup.DR
    assert result.is_atypical


def test_dr_not_evaluated_after_confirmed_progression() -> None:
    # Project decision: DR is looked for up to the first iCPD only.
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 20})
    b.scan(56, {"A": 30, "C": 30}).scan(98, {"A": 30, "C": 40}).scan(140, {"A": 10, "C": 60})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall.value for t in result.immune_timepoints] == ["iUPD", "iCPD", "iCPD"]
    assert dr_of(b) is None


def test_sato_organ_mixed_organ_response() -> None:
    # Sato 2021 (1): CR/PR in some organs AND PD in others at the first evaluation.
    b = TimelineBuilder().target("H1", "liver").target("H2", "liver").target("L1", "lung")
    b.scan(-7, {"H1": 30, "H2": 20, "L1": 20}).scan(56, {"H1": 15, "H2": 10, "L1": 26})
    finding = dr_of(b, "sato-organ")
    assert finding is not None
    assert finding.trigger is DrTrigger.TARGET_LESION
    assert finding.shrinking_lesions == ("H1", "H2")
    assert finding.growing_lesions == ("L1",)


def test_sato_organ_all_organs_respond_but_new_lesion() -> None:
    # Sato 2021 (2): all organs CR/PR but new lesions.
    b = TimelineBuilder().target("H1", "liver").lesion("X", "bone").scan(-7, {"H1": 30})
    b.scan(56, {"H1": 15, "X": 12})
    finding = dr_of(b, "sato-organ")
    assert finding is not None
    assert finding.trigger is DrTrigger.NEW_LESION


def test_tozuka_only_with_pd_at_first_evaluation() -> None:
    # Tozuka 2020: only patients with RECIST PD at the first CT; some shrink, some grow or new.
    pd = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 20})
    pd.scan(56, {"A": 28, "C": 40})
    finding = dr_of(pd, "tozuka")
    assert finding is not None
    assert finding.overall_at_detection is Response.PD
    assert dr_of(two_targets(22, 26), "tozuka") is None  # W24: SD at first evaluation


def test_vaflard_target_lesion_statuses() -> None:
    # Vaflard 2021: >= 1 responding (<= -30 %) and >= 1 progressing (>= +20 %, >= 5 mm) target lesion.
    assert dr_of(two_targets(21, 25), "vaflard-target") is not None  # exactly -30 % and +25 %/+5 mm
    assert dr_of(two_targets(22, 26), "vaflard-target") is None
