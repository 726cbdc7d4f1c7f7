"""Pseudoprogression, hyperprogression and delayed response (reference 1d)."""

from __future__ import annotations

import math
from decimal import Decimal

from service.domain.atypical import tumour_growth_kinetics, tumour_growth_rate
from service.domain.engine import assess
from service.domain.results import AtypicalKind, Response, ResponseGroup

from .builders import AS_OF, TimelineBuilder, single_target


def kinds(b: TimelineBuilder) -> dict[AtypicalKind, list[str]]:
    out: dict[AtypicalKind, list[str]] = {}
    for f in assess(b.build(), as_of=AS_OF).atypical:
        out.setdefault(f.kind, []).append(f.definition)
    return out


def test_w19_pseudoprogression() -> None:
    # Reference W19: BL 50; wk8 62 (PD / iUPD); wk14 40 (iSD); wk22 30 (iPR) => PsPD, group PsPD.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 62})
    b.scan(98, {"T": 40}).scan(154, {"T": 30})
    result = assess(b.build(), as_of=AS_OF)
    pspd = [f for f in result.atypical if f.kind is AtypicalKind.PSPD]
    assert len(pspd) == 1
    assert pspd[0].timepoint_index == 1
    assert pspd[0].definition == "irecist"
    assert pspd[0].overall_at_detection is Response.PD
    assert dict(pspd[0].metrics)["resolved_at_index"] == Decimal(2)
    assert result.response_group is ResponseGroup.PSPD
    # W19: RECIST BOR PD and PFS event at wk8.
    assert result.best_response is not None
    assert result.best_response.response is Response.PD
    assert (result.endpoints.pfs_days, result.endpoints.pfs_event) == (56, True)


def test_confirmed_progression_is_not_pseudoprogression() -> None:
    # Reference W20: iPR, iUPD, iCPD => no PsPD.
    assert AtypicalKind.PSPD not in kinds(
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .scan(56, {"T": 35})
        .scan(112, {"T": 45})
        .scan(154, {"T": 50})
    )


def test_tgr_formula_matches_ferte_definition() -> None:
    # TGR = 100 (exp(3 ln(Dt/D0) / months) - 1); months = days / 30.4375 (reference 1d).
    months = 61 / 30.4375
    expected = 100 * (math.exp(3 * math.log(50 / 40) / months) - 1)
    assert math.isclose(float(tumour_growth_rate(Decimal(40), Decimal(50), 61)), expected, rel_tol=1e-12)
    assert math.isclose(
        float(tumour_growth_kinetics(Decimal(40), Decimal(50), 61)), 10 / months, rel_tol=1e-12
    )


def hpd_case(pre: int, base: int, first: int) -> TimelineBuilder:
    b = TimelineBuilder().target("T", "liver")
    return b.scan(-70, {"T": pre}).scan(-9, {"T": base}).scan(52, {"T": first})


def test_hpd_definitions_from_pre_baseline_kinetics() -> None:
    # 40 -> 50 -> 80 over two 61-day periods: TGR_ref 39.7, TGR_exp 102.1 (ratio 2.57, delta 62.4);
    # TGK_ref 5.0, TGK_exp 15.0 mm/month (ratio 3) => Champiat, Saada-Bouzid, Ferrara; not Kas (> 100).
    found = kinds(hpd_case(40, 50, 80))
    assert sorted(found[AtypicalKind.HPD]) == ["champiat", "ferrara", "saada-bouzid"]


def test_hpd_kas_needs_delta_tgr_above_100() -> None:
    # 40 -> 50 -> 100: TGR_exp = 100 (exp(3 ln 2 / 2.004) - 1) = 182.5; delta 142.8 > 100.
    assert "kas" in kinds(hpd_case(40, 50, 100))[AtypicalKind.HPD]


def test_no_hpd_without_pre_baseline_or_without_pd_at_first_evaluation() -> None:
    no_pre = TimelineBuilder().target("T").scan(-9, {"T": 50}).scan(52, {"T": 100})
    assert AtypicalKind.HPD not in kinds(no_pre)
    no_pd = hpd_case(40, 50, 55)  # +10 %: not PD
    assert AtypicalKind.HPD not in kinds(no_pd)


def test_shrinking_reference_period_does_not_meet_ratio_definitions() -> None:
    # Project decision: ratios need TGR_ref > 0; delta-TGR definitions still apply.
    found = kinds(hpd_case(60, 50, 80))
    assert sorted(found[AtypicalKind.HPD]) == ["ferrara", "kas"]


def test_delayed_response_after_sd_and_12_weeks() -> None:
    # Project-defined DeR (reference 1d): first iPR/iCR after >= 1 iSD, >= 84 days after start.
    found = kinds(
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .scan(56, {"T": 45})
        .scan(112, {"T": 40})
        .scan(168, {"T": 30})
    )
    assert found[AtypicalKind.DER] == ["project-delayed-response"]


def test_early_response_is_not_delayed() -> None:
    assert AtypicalKind.DER not in kinds(
        TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(56, {"T": 30})
    )
    # first response at day 56 < 84 even after an SD at day 28
    b = TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(28, {"T": 45}).scan(56, {"T": 30})
    assert AtypicalKind.DER not in kinds(b)


def test_single_target_rules_never_yield_dr() -> None:
    assert AtypicalKind.DR not in kinds(TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(56, {"T": 10}))
    assert assess(single_target(50, 10), as_of=AS_OF).response_group is ResponseGroup.SD  # PR unconfirmed
