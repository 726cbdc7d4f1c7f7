"""Table 1, Fisher's exact tests, continuous comparisons and logistic regression."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from service.analytics.baseline import (
    baseline_table,
    box_tidwell_p,
    compare_continuous,
    fisher_exact,
    logistic_fit,
    predictors_of,
)

from .frames import result, table


def _brute_force_fisher(table_: list[list[int]]) -> float:
    """Freeman-Halton p by listing every table with the same margins (independent of the code)."""
    rows = [sum(r) for r in table_]
    cols = [sum(c) for c in zip(*table_, strict=True)]
    n = sum(rows)

    def probability(t: list[list[int]]) -> float:
        num = math.prod(math.factorial(r) for r in rows) * math.prod(math.factorial(c) for c in cols)
        return num / (math.factorial(n) * math.prod(math.factorial(v) for row in t for v in row))

    observed = probability(table_)
    total = 0.0
    first_rows = itertools.product(*[range(min(rows[0], c) + 1) for c in cols])
    for first in first_rows:
        if sum(first) != rows[0]:
            continue
        rest = [c - f for c, f in zip(cols, first, strict=True)]
        if len(rows) == 2:
            candidates = [[list(first), rest]]
        else:  # three rows: enumerate the second row too
            candidates = []
            for second in itertools.product(*[range(r + 1) for r in rest]):
                if sum(second) == rows[1]:
                    candidates.append(
                        [list(first), list(second), [r - s for r, s in zip(rest, second, strict=True)]]
                    )
        for t in candidates:
            p = probability(t)
            if p <= observed * (1 + 1e-7):
                total += p
    return total


def test_fisher_2x2_is_scipy_two_sided() -> None:
    # Guan 2024 Supplementary S1 style comparison: male 10/12 DR vs 8/30 true PD.
    t = [[10, 8], [2, 22]]
    assert fisher_exact(t).p == pytest.approx(stats.fisher_exact(t).pvalue)
    assert fisher_exact(t).test == "fisher-exact"


@pytest.mark.parametrize(
    "t",
    [
        [[3, 1, 2], [1, 3, 4]],
        [[4, 1, 3, 6, 2], [2, 4, 2, 5, 6]],  # 2 x 5: the shape of a Table 1 block
        [[0, 5, 2], [6, 0, 1]],
    ],
)
def test_fisher_2xk_exact_equals_brute_force_enumeration(t: list[list[int]]) -> None:
    got = fisher_exact(t)
    assert got.test == "fisher-freeman-halton-exact"
    assert got.p == pytest.approx(_brute_force_fisher(t), rel=1e-9)


def test_fisher_rxc_monte_carlo_is_close_to_exact_and_reproducible() -> None:
    t = [[4, 1, 2], [1, 3, 1], [0, 2, 5]]
    first, second = fisher_exact(t), fisher_exact(t)
    assert first.test == "fisher-freeman-halton-monte-carlo"
    assert first.p == second.p  # fixed seed
    assert first.p == pytest.approx(_brute_force_fisher(t), abs=0.015)


def test_table1_block_counts_and_unknown_row_keep_group_totals() -> None:
    frame = table(
        [result(group="DR", sex="male")] * 3
        + [result(group="DR", sex="female")]
        + [result(group="PD", sex="female")] * 2
        + [result(group="PD", sex=None)]
    )
    t = baseline_table(frame, ["DR", "PD"])
    sex = next(b for b in t.blocks if b.variable == "sex")
    assert sex.categories == ("male", "female", "unknown")
    assert sex.counts == ((3, 0), (1, 2), (0, 1))
    assert t.group_sizes == (4, 3)
    for block in t.blocks:
        assert tuple(sum(col) for col in zip(*block.counts, strict=True)) == t.group_sizes


def test_continuous_tests_are_scipy_mann_whitney_and_welch() -> None:
    a = pd.Series([2.1, 3.5, 4.0, 5.2, 1.9, 2.8])
    b = pd.Series([4.4, 6.1, 5.5, 7.9, 3.3, 6.6, None])
    mw = compare_continuous(a, b)
    assert mw.p == pytest.approx(stats.mannwhitneyu(a, b.dropna(), alternative="two-sided").pvalue)
    welch = compare_continuous(a, b, test="t-test")
    assert welch.p == pytest.approx(stats.ttest_ind(a, b.dropna(), equal_var=False).pvalue)


def test_logistic_regression_matches_statsmodels_logit() -> None:
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(size=250), rng.integers(0, 2, 250)])
    y = (rng.random(250) < 1 / (1 + np.exp(-(-1.0 + 0.8 * x[:, 0] - 0.6 * x[:, 1])))).astype(float)
    ours = logistic_fit(x, y)
    reference = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    np.testing.assert_allclose(ours.coef, reference.params, atol=1e-8)
    np.testing.assert_allclose(ours.se, reference.bse, atol=1e-8)
    assert ours.log_likelihood == pytest.approx(reference.llf, abs=1e-8)


def test_box_tidwell_detects_a_logit_that_is_not_linear_in_x() -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(0.2, 20, 800)
    threshold_like = (rng.random(800) < np.where(x > 3, 0.8, 0.05)).astype(float)  # step, not linear
    linear = (rng.random(800) < 1 / (1 + np.exp(-(-2 + 0.2 * x)))).astype(float)
    p_step = box_tidwell_p(x, threshold_like)
    p_linear = box_tidwell_p(x, linear)
    assert p_step is not None
    assert p_step < 0.05
    assert p_linear is not None
    assert p_linear > 0.05


def test_predictor_that_fails_linearity_is_binarised_at_its_median() -> None:
    # Guan 2024 Statistical analysis: predictors failing linearity are binarised at the median.
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(800):
        nlr = float(rng.uniform(0.2, 20))
        dr = rng.random() < (0.8 if nlr > 3 else 0.05)
        rows.append(result(group="DR" if dr else "SD", nlr=f"{nlr:.2f}"))
    frame = table(rows)
    analysis = predictors_of(frame, "DR", ["nlr_pre", "sex"])
    assert "nlr_pre" in analysis.binarised
    assert analysis.binarised["nlr_pre"] == pytest.approx(frame["nlr_pre"].median())
    names = [t.term for m in analysis.univariable for t in m.terms]
    assert "nlr_pre>=median=yes" in names


def test_separation_is_reported_not_estimated() -> None:
    # All monotherapy patients are DR: the odds ratio is infinite (quasi-complete separation).
    rows = [result(group="DR", combination=False)] * 5 + [result(group="SD", combination=True)] * 40
    rows += [result(group="DR", combination=True)] * 3
    analysis = predictors_of(table(rows), "DR", ["strategy"])
    (term,) = analysis.univariable[0].terms
    assert not term.estimable
    assert term.odds_ratio is None
    assert any("separation" in w for w in analysis.univariable[0].warnings)
