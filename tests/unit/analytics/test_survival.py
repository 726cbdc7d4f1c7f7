"""Kaplan-Meier, log-rank and Cox regression against independent implementations."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import survdiff

from service.analytics.survival import cox_fit, cox_regression, kaplan_meier, km_analysis, risk_table

from .frames import result, table


def _numbers(values: Iterable[float | None]) -> np.ndarray:
    """Estimates as an array; every one must exist (an estimable model)."""
    out = list(values)
    assert all(v is not None for v in out)
    return np.array(out, dtype=float)


def _tied_cohort(seed: int = 7, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fixed cohort in whole days (many ties), 3 covariates, about 30 % censored."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n), rng.integers(0, 3, n)]).astype(float)
    hazard = np.exp(x @ np.array([0.7, -0.4, 0.25]))
    event_day = np.ceil(rng.exponential(120 / hazard))
    censor_day = np.ceil(rng.exponential(300, size=n))
    return np.minimum(event_day, censor_day), (event_day <= censor_day).astype(float), x


def test_cox_matches_statsmodels_phreg_efron_within_1e5() -> None:
    durations, events, x = _tied_cohort()
    assert len(np.unique(durations)) < len(durations) / 2  # heavily tied, as whole days are
    model = cox_fit(durations, events, x, ["a", "b", "c"])
    reference = PHReg(durations, x, status=events, ties="efron").fit()
    np.testing.assert_allclose(_numbers(t.coef for t in model.terms), reference.params, atol=1e-5, rtol=0)
    np.testing.assert_allclose(_numbers(t.se for t in model.terms), reference.bse, atol=1e-5, rtol=0)
    assert model.log_likelihood == pytest.approx(reference.llf, abs=1e-6)
    assert model.converged


def test_cox_categorical_design_uses_indicators_against_the_most_frequent_level() -> None:
    durations, events, x = _tied_cohort(seed=11)
    levels = np.array(["PD", "SD", "DR"])[x[:, 2].astype(int)]
    frame = pd.DataFrame({"os_days": durations, "os_event": events.astype(bool), "grp": levels})
    model = cox_regression(frame, "os", ["grp"], references={"grp": "SD"})
    names = [t.name for t in model.terms]
    assert names == ["grp=DR", "grp=PD"]
    design = np.column_stack([levels == "DR", levels == "PD"]).astype(float)
    reference = PHReg(durations, design, status=events, ties="efron").fit()
    np.testing.assert_allclose(_numbers(t.coef for t in model.terms), reference.params, atol=1e-5, rtol=0)
    hr, coef, low, high = (
        model.terms[0].hr,
        model.terms[0].coef,
        model.terms[0].ci_low,
        model.terms[0].ci_high,
    )
    assert hr is not None
    assert coef is not None
    assert low is not None
    assert high is not None
    assert hr == pytest.approx(np.exp(coef))
    assert low < hr < high


def test_ph_check_flags_crossing_hazards_and_passes_proportional_ones() -> None:
    rng = np.random.default_rng(5)
    n = 600
    group = rng.integers(0, 2, n).astype(float)
    # Group 1: early deaths or long survival (Weibull shape 0.5) vs group 0 shape 2.5: crossing curves.
    shape = np.where(group == 1, 0.5, 2.5)
    days = np.ceil(200 * rng.weibull(shape))
    crossing = cox_fit(days, np.ones(n), group[:, None], ["g"])
    assert crossing.terms[0].ph_p is not None
    assert crossing.terms[0].ph_p < 0.001
    durations, events, x = _tied_cohort()
    proportional = cox_fit(durations, events, x, ["a", "b", "c"])
    assert proportional.ph_global_p is not None
    assert proportional.ph_global_p > 0.05


def test_ph_check_agrees_with_lifelines_rank_test() -> None:
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    durations, events, x = _tied_cohort(seed=3)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(T=durations, E=events)
    fitted = CoxPHFitter().fit(frame, "T", "E")
    expected = proportional_hazard_test(fitted, frame, time_transform="rank").summary["p"].to_numpy()
    ours = _numbers(t.ph_p for t in cox_fit(durations, events, x, ["a", "b", "c"]).terms)
    np.testing.assert_allclose(ours, expected, atol=0.03)  # residual means differ with tied events


def test_km_median_is_first_time_survival_reaches_half() -> None:
    # Five deaths at days 1..5: S = 0.8, 0.6, 0.4, ... so the median is day 3 (first S <= 0.5).
    curve = kaplan_meier(np.array([1, 2, 3, 4, 5]), np.array([1, 1, 1, 1, 1]))
    assert curve.median_days == 3
    assert curve.survival[:4] == pytest.approx((1.0, 0.8, 0.6, 0.4))


def test_km_median_not_reached_is_none_and_risk_table_counts_patients_still_followed() -> None:
    durations = np.array([10, 20, 30, 40, 50, 60])
    events = np.array([1, 0, 0, 0, 0, 0])
    curve = kaplan_meier(durations, events)
    assert curve.median_days is None
    rows = risk_table(curve, [0, 25, 55])
    assert [r.at_risk for r in rows] == [6, 4, 1]
    assert rows[1].survival == pytest.approx(5 / 6)


def test_logrank_matches_statsmodels_survdiff() -> None:
    durations, events, x = _tied_cohort(seed=21)
    groups = np.array(["A", "B", "C"])[x[:, 2].astype(int)]
    frame = pd.DataFrame(
        {"duration_days": durations.astype(int), "event": events.astype(int), "group": groups}
    )
    analysis = km_analysis(frame)
    statistic, p = survdiff(durations, events, groups)
    assert analysis.overall is not None
    assert analysis.overall.statistic == pytest.approx(statistic, rel=1e-8)
    assert analysis.overall.p == pytest.approx(p, rel=1e-6)
    assert len(analysis.pairwise) == 3
    pair = next(lr for lr in analysis.pairwise if lr.groups == ("A", "B"))
    mask = np.isin(groups, ["A", "B"])
    assert pair.p == pytest.approx(survdiff(durations[mask], events[mask], groups[mask])[1], rel=1e-6)


def test_logrank_without_any_event_is_p_1_as_lifelines_not_an_error() -> None:
    """Two groups followed without a single death: nothing tells them apart. lifelines'
    `multivariate_logrank_test` (generalised inverse of the covariance) gives statistic 0, p 1;
    a plain solve of the all-zero covariance would fail ('Singular matrix', once a 422)."""
    from lifelines.statistics import multivariate_logrank_test

    frame = pd.DataFrame(
        {"duration_days": [30, 60, 90, 45, 75, 120], "event": [0] * 6, "group": ["A"] * 3 + ["B"] * 3}
    )
    analysis = km_analysis(frame)
    reference = multivariate_logrank_test(frame["duration_days"], frame["group"], frame["event"])
    assert analysis.overall is not None
    assert analysis.overall.statistic == pytest.approx(reference.test_statistic, abs=1e-12)
    assert analysis.overall.p == pytest.approx(reference.p_value)
    assert analysis.overall.p == pytest.approx(1.0)


def test_km_by_group_from_the_analysis_table() -> None:
    frame = table(
        [result(group="PD", os_=(d, True)) for d in (30, 60, 90)]
        + [result(group="SD", os_=(d, d < 300)) for d in (200, 250, 400, 500)]
    )
    from service.analytics.cohort import survival_frame

    analysis = km_analysis(survival_frame(frame, "os", "group"))
    medians = {c.group: c.median_days for c in analysis.curves}
    assert medians == {"PD": 60, "SD": 250}


def test_km_estimate_band_and_median_ci_match_lifelines() -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    durations, events, _ = _tied_cohort(seed=13, n=150)
    curve = kaplan_meier(durations, events)
    reference = KaplanMeierFitter().fit(durations, events)
    assert curve.times == tuple(int(t) for t in reference.survival_function_.index)
    np.testing.assert_allclose(curve.survival, reference.survival_function_.iloc[:, 0], atol=1e-12)
    band = reference.confidence_interval_survival_function_
    np.testing.assert_allclose(curve.ci_low, band.iloc[:, 0], atol=1e-12)
    np.testing.assert_allclose(curve.ci_high, band.iloc[:, 1], atol=1e-12)
    assert curve.at_risk == tuple(int(a) for a in reference.event_table["at_risk"])
    median_ci = median_survival_times(band)
    assert curve.median_days == reference.median_survival_time_
    assert (curve.median_ci_low, curve.median_ci_high) == (median_ci.iloc[0, 0], median_ci.iloc[0, 1])


def test_km_analysis_on_fractional_durations_matches_lifelines_and_survdiff() -> None:
    # Durations that are not whole days (here months) take the sorting path of the shared count
    # table instead of the dense day axis; curves and tests must not depend on the path.
    from lifelines import KaplanMeierFitter

    durations, events, x = _tied_cohort(seed=29, n=240)
    months = durations / 30.4375
    groups = np.array(["A", "B", "C"])[x[:, 2].astype(int)]
    frame = pd.DataFrame({"duration_days": months, "event": events.astype(int), "group": groups})
    analysis = km_analysis(frame)
    for curve in analysis.curves:
        mask = groups == curve.group
        reference = KaplanMeierFitter().fit(months[mask], events[mask])
        np.testing.assert_allclose(curve.survival, reference.survival_function_.iloc[:, 0], atol=1e-12)
        assert curve.at_risk == tuple(int(a) for a in reference.event_table["at_risk"])
    statistic, p = survdiff(months, events, groups)
    assert analysis.overall is not None
    assert analysis.overall.statistic == pytest.approx(statistic, rel=1e-8)
    assert analysis.overall.p == pytest.approx(p, rel=1e-6)
