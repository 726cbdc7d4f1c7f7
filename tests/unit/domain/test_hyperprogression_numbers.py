"""Hyperprogression: every definition judged at its threshold, with the numbers and the reason.

Definitions (docs/rules/hyperprogression.md): Champiat 2017 (Clin Cancer Res 23:1920) TGR_exp/TGR_ref
>= 2; Saada-Bouzid 2017 (Ann Oncol 28:1605) TGKR = TGK_exp/TGK_ref >= 2; Ferrara 2018 (JAMA Oncol
4:1543) ΔTGR > 50 %/month; Kas 2020 (JAMA Netw Open) ΔTGR > 100 %/month. TGR per Ferte 2014
(100 (exp(3 ln(Dt/D0) / months) - 1)), TGK in mm per month; months = days / 30.4375.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from service.domain.atypical import GrowthKinetics, hpd_verdicts
from service.domain.engine import assess
from service.domain.results import AtypicalKind

from .builders import AS_OF, TimelineBuilder

D = Decimal


def _verdict(k: GrowthKinetics, definition: str) -> tuple[bool, str]:
    (v,) = [v for v in hpd_verdicts(k) if v.definition == definition]
    return v.met, v.reason


@pytest.mark.parametrize(("tgr_exp", "met"), [(D("19.99"), False), (D(20), True), (D("20.01"), True)])
def test_champiat_2017_tgr_ratio_at_least_2(tgr_exp: Decimal, met: bool) -> None:
    assert _verdict(GrowthKinetics(D(10), tgr_exp, D(1), D(1)), "champiat")[0] is met


@pytest.mark.parametrize(("tgk_exp", "met"), [(D("5.99"), False), (D(6), True), (D("6.01"), True)])
def test_saada_bouzid_2017_tgkr_at_least_2(tgk_exp: Decimal, met: bool) -> None:
    assert _verdict(GrowthKinetics(D(1), D(1), D(3), tgk_exp), "saada-bouzid")[0] is met


@pytest.mark.parametrize(("tgr_exp", "met"), [(D("59.99"), False), (D(60), False), (D("60.01"), True)])
def test_ferrara_2018_delta_tgr_above_50(tgr_exp: Decimal, met: bool) -> None:
    assert _verdict(GrowthKinetics(D(10), tgr_exp, D(1), D(1)), "ferrara")[0] is met


@pytest.mark.parametrize(("tgr_exp", "met"), [(D("109.99"), False), (D(110), False), (D("110.01"), True)])
def test_kas_2020_delta_tgr_above_100(tgr_exp: Decimal, met: bool) -> None:
    assert _verdict(GrowthKinetics(D(10), tgr_exp, D(1), D(1)), "kas")[0] is met


@pytest.mark.parametrize("reference", [D(-1), D(0)])
def test_ratio_definitions_need_a_growing_reference_period(reference: Decimal) -> None:
    # Decision (docs/rules/hyperprogression.md): with TGR_ref / TGK_ref <= 0 the ratio is undefined.
    k = GrowthKinetics(reference, D(500), reference, D(50))
    for definition in ("champiat", "saada-bouzid"):
        met, reason = _verdict(k, definition)
        assert not met
        assert "undefined" in reason
    assert k.tgr_ratio is None
    assert k.tgk_ratio is None


def _hpd_case(pre: int, base: int, first: int) -> TimelineBuilder:
    b = TimelineBuilder().target("T", "liver")
    return b.scan(-70, {"T": pre}).scan(-9, {"T": base}).scan(52, {"T": first})


def test_hpd_finding_carries_kinetics_ratios_reference_scans_and_reason() -> None:
    # 40 -> 50 -> 80 mm, 61 days each period. Expected values from the published formulas.
    months = 61 / 30.4375
    tgr_ref = 100 * (math.exp(3 * math.log(50 / 40) / months) - 1)
    tgr_exp = 100 * (math.exp(3 * math.log(80 / 50) / months) - 1)
    tgk_ref, tgk_exp = 10 / months, 30 / months
    a = assess(_hpd_case(40, 50, 80).build(), as_of=AS_OF)
    (champiat,) = [f for f in a.atypical if f.kind is AtypicalKind.HPD and f.definition == "champiat"]
    m = {k: float(v) for k, v in champiat.metrics}
    expected = {
        "tgr_ref_pct_per_month": tgr_ref,
        "tgr_exp_pct_per_month": tgr_exp,
        "delta_tgr_pct_per_month": tgr_exp - tgr_ref,
        "tgk_ref_mm_per_month": tgk_ref,
        "tgk_exp_mm_per_month": tgk_exp,
        "tgr_ratio": tgr_exp / tgr_ref,
        "tgk_ratio": 3.0,
    }
    assert set(m) == set(expected)
    for name, value in expected.items():
        assert math.isclose(m[name], value, abs_tol=1e-4), name
    facts = dict(champiat.trace.facts)
    assert facts["reason"] == f"TGR ratio {tgr_exp / tgr_ref:.2f} >= 2"
    assert (facts["scan_-1_date"], facts["scan_0_date"], facts["scan_1_date"]) == (
        "2023-10-23",
        "2023-12-23",
        "2024-02-22",
    )
    assert (facts["scan_-1_sum_mm"], facts["scan_0_sum_mm"], facts["scan_1_sum_mm"]) == ("40", "50", "80")


def test_a_definition_not_met_leaves_its_reason() -> None:
    # Same case: ΔTGR about 62 %/month meets Ferrara (> 50) but not Kas (> 100).
    a = assess(_hpd_case(40, 50, 80).build(), as_of=AS_OF)
    not_met = {t.rule: dict(t.facts)["reason"] for t in a.traces if t.rule.endswith("/not-met")}
    assert list(not_met) == ["hpd/kas/not-met"]
    assert not_met["hpd/kas/not-met"].startswith("delta TGR 62.")
    assert not_met["hpd/kas/not-met"].endswith("<= 100 %/month")


@pytest.mark.parametrize(
    ("builder", "reason"),
    [
        (TimelineBuilder().target("T").scan(-9, {"T": 50}).scan(52, {"T": 100}), "no pre-baseline scan"),
        (_hpd_case(40, 50, 55), "RECIST 1.1 at the first evaluation is SD, not PD"),
    ],
)
def test_no_hpd_judgement_says_why(builder: TimelineBuilder, reason: str) -> None:
    a = assess(builder.build(), as_of=AS_OF)
    assert AtypicalKind.HPD not in {f.kind for f in a.atypical}
    (trace,) = [t for t in a.traces if t.rule == "hpd/not-evaluable"]
    assert dict(trace.facts)["reason"] == reason
