"""Response summaries: exact CIs and the seed study's rates (Guan 2024, Results and Fig. 1)."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from service.analytics.response import clopper_pearson, response_summary

from .frames import result, seed_study_response_results, table


@pytest.mark.parametrize(("k", "n"), [(4, 29), (7, 117), (1, 30), (30, 177), (0, 12), (12, 12), (93, 177)])
def test_clopper_pearson_matches_statsmodels_beta_method(k: int, n: int) -> None:
    low, high = clopper_pearson(k, n)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.05, method="beta")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_clopper_pearson_closed_form_at_zero_events() -> None:
    # k = 0: the upper bound solves (1 - p)^n = alpha / 2 (Clopper & Pearson 1934).
    low, high = clopper_pearson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)


def test_seed_study_first_evaluation_rates_and_dr_by_category() -> None:
    # Guan 2024 Results: ORR 17.0 %, DCR 83.1 % (first evaluation, Fig. 1a); DR 12 (6.8 %), PsPD 7
    # (4.0 %), atypical 19 (10.7 %); DR by first evaluation 4/29, 7/117, 1/30 (Fig. 1c).
    summary = response_summary(table(seed_study_response_results()))
    rates = {p.name: p for p in summary.rates()}

    def percent(name: str) -> float:
        estimate = rates[name].estimate
        assert estimate is not None
        return round(100 * estimate, 1)

    assert percent("orr_first_evaluation") == 16.9  # 30/177, printed as 17.0
    assert percent("dcr_first_evaluation") == 83.1
    assert (rates["dr"].numerator, percent("dr")) == (12, 6.8)
    assert (rates["pspd"].numerator, percent("pspd")) == (7, 4.0)
    assert (rates["atypical"].numerator, percent("atypical")) == (19, 10.7)
    by_first = summary.dr_by_first_evaluation
    found = dict(zip(by_first.categories, zip(by_first.dr, by_first.totals, strict=True), strict=True))
    assert (found["PR"], found["SD"], found["PD"]) == ((4, 29), (7, 117), (1, 30))


def test_orr_by_best_response_differs_from_first_evaluation() -> None:
    # A PR at first evaluation that is never confirmed counts for the first-evaluation ORR only.
    frame = table([result(group="PD", first="PR", bor="PD"), result(group="CR-PR", first="SD", bor="PR")])
    rates = {p.name: p for p in response_summary(frame).rates()}
    assert rates["orr"].numerator == 1
    assert rates["orr_first_evaluation"].numerator == 1
    assert rates["dcr"].numerator == 1  # the confirmed PD is not disease control


def test_dcb_leaves_out_patients_censored_before_six_months() -> None:
    frame = table([result(dcb=True), result(dcb=False), result(dcb=None), result(dcb=True)])
    rates = {p.name: p for p in response_summary(frame).rates()}
    assert (rates["dcb"].numerator, rates["dcb"].denominator) == (2, 3)


def test_dr_by_timepoint_and_trigger_count_dr_patients_only() -> None:
    frame = table(
        [
            result(group="DR", dr=(1, "new-lesion")),
            result(group="DR", dr=(3, "new-lesion")),
            result(group="DR", dr=(3, "target-lesion")),
            result(group="SD"),
        ]
    )
    summary = response_summary(frame)
    assert dict(zip(summary.dr_by_timepoint.categories, summary.dr_by_timepoint.counts, strict=True)) == {
        "1": 1,
        "3": 2,
    }
    assert summary.dr_by_trigger.count("new-lesion") == 2
    assert summary.dr_by_trigger.count("target-lesion") == 1
