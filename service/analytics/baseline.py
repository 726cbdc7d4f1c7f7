"""Baseline characteristics by response group and predictors of DR and PsPD.

Guan et al., Sci Rep 2024, "Statistical analysis" and Table 1:
- categorical characteristics as n (%) per response group (`TABLE1_ROWS`, the paper's order and
  categories) compared with Fisher's exact test;
- continuous variables (NLR, dNLR, lymphocytes, LDH before treatment) by Mann-Whitney U or the
  independent-samples t-test (Welch; the paper does not say which variance assumption);
- univariable and multivariable logistic regression of DR and PsPD, continuous predictors that
  fail a linearity check binarised at the median.

Fisher's exact test for tables larger than 2x2 (Freeman-Halton extension: the p-value is the total
probability, under the multivariate hypergeometric law with the table's margins, of tables no more
probable than the observed one):
- 2x2: scipy `fisher_exact` (two-sided);
- 2 x k: exact, by enumerating every table with the observed margins when there are at most
  `EXACT_LIMIT` of them (Table 1's 2 x 5 blocks with 177 patients have about 10^5);
- otherwise (r x c with r, c > 2, or too many tables): Monte Carlo over `scipy.stats.random_table`
  with a fixed seed (`MONTE_CARLO_SEED`) and `MONTE_CARLO_SAMPLES` tables, via scipy's
  `fisher_exact(method=MonteCarloMethod(...))`: reproducible, with a standard error of at most
  0.5 / sqrt(samples) ~ 0.0035 on p. The result names the method used.

Logistic regression is our own Newton-Raphson (IRLS) with Wald CIs (statsmodels is only a test
dependency; the unit tests compare with statsmodels `Logit`). Linearity in the logit is checked
with the Box-Tidwell test: the term x*ln(x) added to the univariable model; p < 0.05 means the
linearity assumption fails and the predictor is binarised at its median (>= median = 1), as the
paper did. Values <= 0 are shifted to start at 1 before taking logs (Box-Tidwell needs x > 0).
Quasi-complete separation (a level with no or only events, common with 12 DR patients) leaves the
MLE infinite: such a term is reported as not estimable with a warning instead of a huge number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

from service.analytics.cohort import GROUPS, TUMOUR_GROUPS

EXACT_LIMIT = 2_000_000
MONTE_CARLO_SEED = 20240
MONTE_CARLO_SAMPLES = 20_000

#: Table 1 rows: analysis-table column, label, categories in the paper's order.
TABLE1_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("sex", "Sex", ("male", "female")),
    ("age_band", "Age, years", ("<60", ">=60")),
    ("smoking", "Smoking status", ("never", "previous/current")),
    ("ecog_band", "ECOG PS", ("0-1", ">=2")),
    ("bmi_band", "BMI, kg/m2", ("<18.6", ">=18.6")),
    ("tumour_group", "Tumor type", TUMOUR_GROUPS),
    ("line_band", "Treatment line", ("first", "later")),
    ("ici_class", "ICI treatment", ("PD-1", "PD-L1")),
    ("strategy", "Treatment strategy", ("monotherapy", "combination")),
    ("pdl1_band", "PD-L1 expression", ("NA", "<1", "1-49", ">=50")),
    ("nlr_band", "NLR", ("<5", ">=5")),
    ("radiotherapy", "Radiotherapy", ("no", "yes")),
)
CONTINUOUS = ("nlr_pre", "dnlr_pre", "lymphocytes_pre", "ldh_pre")
UNKNOWN = "unknown"


# -- Fisher's exact test --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestResult:
    test: str  # "fisher-exact", "fisher-freeman-halton-exact", "fisher-freeman-halton-monte-carlo", ...
    statistic: float | None
    p: float


def _log_comb(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.asarray(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1), dtype=np.float64)


def _two_by_k_exact(table: np.ndarray) -> float | None:
    """Freeman-Halton p for a 2 x k table by enumeration, or None when there are too many tables."""
    cols = table.sum(axis=0)
    r1 = int(table[0].sum())
    order = np.argsort(cols)  # enumerate the small columns, the largest one is implied
    cols = cols[order]
    first = table[0][order]
    if int(np.prod(cols[:-1] + 1, dtype=np.float64)) > EXACT_LIMIT:
        return None
    grids = np.meshgrid(*[np.arange(c + 1) for c in cols[:-1]], indexing="ij")
    partial = np.stack([g.ravel() for g in grids], axis=1) if grids else np.zeros((1, 0), dtype=np.int64)
    last = r1 - partial.sum(axis=1)
    ok = (last >= 0) & (last <= cols[-1])
    tables = np.column_stack([partial[ok], last[ok]])
    log_p = _log_comb(np.broadcast_to(cols, tables.shape), tables).sum(axis=1)
    observed = _log_comb(cols, first).sum()
    total = np.logaddexp.reduce(log_p)
    extreme = log_p <= observed + 1e-7 * abs(observed)  # relative tolerance as in R's fisher.test
    return float(min(1.0, np.exp(np.logaddexp.reduce(log_p[extreme]) - total)))


def fisher_exact(table: np.ndarray | Sequence[Sequence[int]]) -> TestResult:
    """Fisher's exact test of independence for an r x c table of counts (module docstring)."""
    counts = np.asarray(table, dtype=np.int64)
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]  # empty rows/columns carry nothing
    if counts.ndim != 2 or min(counts.shape) < 2:
        return TestResult("fisher-exact", None, 1.0)
    if counts.shape == (2, 2):
        result = stats.fisher_exact(counts)
        return TestResult("fisher-exact", float(result.statistic), float(result.pvalue))
    if 2 in counts.shape:
        oriented = counts if counts.shape[0] == 2 else counts.T
        p = _two_by_k_exact(oriented)
        if p is not None:
            return TestResult("fisher-freeman-halton-exact", None, p)
    method = stats.MonteCarloMethod(
        n_resamples=MONTE_CARLO_SAMPLES, rng=np.random.default_rng(MONTE_CARLO_SEED)
    )
    result = stats.fisher_exact(counts, method=method)
    return TestResult("fisher-freeman-halton-monte-carlo", None, float(result.pvalue))


# -- Table 1 --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaselineBlock:
    """One characteristic: `counts[i][j]` patients of category i in group j; `keys[i][j]` the sum
    of their record keys (the cell key before the modulo; zeros without a `record_key` column)."""

    variable: str
    label: str
    categories: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    test: TestResult | None
    keys: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class BaselineTable:
    groups: tuple[str, ...]
    group_sizes: tuple[int, ...]
    blocks: tuple[BaselineBlock, ...]


def baseline_table(
    frame: pd.DataFrame,
    groups: Sequence[str] = GROUPS,
    *,
    by: str = "group",
    rows: Sequence[tuple[str, str, tuple[str, ...]]] = TABLE1_ROWS,
    with_tests: bool = True,
) -> BaselineTable:
    """Table 1: counts of every category by group; a missing value is counted as `unknown`.

    `unknown` appears only when some patient lacks the value, so that every block's columns add
    up to the group sizes. Tests compare the groups (columns) on the known categories.
    """
    part = frame[frame[by].isin(list(groups))]
    sizes = tuple(int((part[by] == g).sum()) for g in groups)
    blocks = []
    for column, label, categories in rows:
        values = part[column].astype(object).where(part[column].notna(), UNKNOWN).astype(str)
        extra = sorted(set(values) - set(categories) - {UNKNOWN})
        cats = (*categories, *extra) + ((UNKNOWN,) if (values == UNKNOWN).any() else ())
        crossed = pd.crosstab(values, part[by])
        counts = tuple(
            tuple(int(crossed.at[c, g]) if c in crossed.index and g in crossed.columns else 0 for g in groups)
            for c in cats
        )
        key_sums = (
            pd.crosstab(values, part[by], values=part["record_key"], aggfunc="sum").fillna(0)
            if "record_key" in part
            else None
        )
        keys = tuple(
            tuple(
                int(key_sums.at[c, g])
                if key_sums is not None and c in key_sums.index and g in key_sums.columns
                else 0
                for g in groups
            )
            for c in cats
        )
        known = np.array([row for c, row in zip(cats, counts, strict=True) if c != UNKNOWN])
        test = fisher_exact(known) if with_tests and len(groups) >= 2 and known.size else None
        blocks.append(BaselineBlock(column, label, cats, counts, test, keys))
    return BaselineTable(tuple(groups), sizes, tuple(blocks))


# -- continuous variables -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Distribution:
    group: str
    n: int
    median: float | None
    q1: float | None
    q3: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    variable: str
    group_a: str
    group_b: str
    test: TestResult


def distribution(values: pd.Series, group: str) -> Distribution:
    clean = values.dropna().to_numpy(dtype=np.float64)
    if clean.size == 0:
        return Distribution(group, 0, None, None, None)
    q1, median, q3 = np.percentile(clean, [25, 50, 75])
    return Distribution(group, int(clean.size), float(median), float(q1), float(q3))


def compare_continuous(a: pd.Series, b: pd.Series, *, test: str = "mann-whitney") -> TestResult:
    """Two-sided Mann-Whitney U (`mann-whitney`) or Welch t-test (`t-test`) between two samples."""
    x = a.dropna().to_numpy(dtype=np.float64)
    y = b.dropna().to_numpy(dtype=np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError("each group needs at least two values")
    if test == "mann-whitney":
        result = stats.mannwhitneyu(x, y, alternative="two-sided")
        return TestResult("mann-whitney", float(result.statistic), float(result.pvalue))
    if test == "t-test":
        result = stats.ttest_ind(x, y, equal_var=False)
        return TestResult("welch-t-test", float(result.statistic), float(result.pvalue))
    raise ValueError(f"unknown test {test!r}")


def continuous_comparisons(
    frame: pd.DataFrame,
    groups: Sequence[str] = GROUPS,
    *,
    variables: Sequence[str] = CONTINUOUS,
    test: str = "mann-whitney",
    min_values: int = 2,
) -> tuple[dict[str, tuple[Distribution, ...]], tuple[Comparison, ...]]:
    """Medians and quartiles per group, and every pairwise test (groups with >= `min_values` values)."""
    dists: dict[str, tuple[Distribution, ...]] = {}
    comparisons = []
    for variable in variables:
        per_group = {g: frame.loc[frame["group"] == g, variable] for g in groups}
        dists[variable] = tuple(distribution(v, g) for g, v in per_group.items())
        for a, b in combinations(groups, 2):
            if min(per_group[a].notna().sum(), per_group[b].notna().sum()) >= max(2, min_values):
                comparisons.append(
                    Comparison(variable, a, b, compare_continuous(per_group[a], per_group[b], test=test))
                )
    return dists, tuple(comparisons)


# -- logistic regression --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogisticFit:
    coef: np.ndarray  # intercept first
    se: np.ndarray
    log_likelihood: float
    iterations: int
    converged: bool


def logistic_fit(x: np.ndarray, y: np.ndarray, *, max_iter: int = 100, tol: float = 1e-10) -> LogisticFit:
    """Maximum-likelihood logistic regression by Newton-Raphson (IRLS); an intercept is added."""
    design_ = np.column_stack([np.ones(len(y)), np.asarray(x, dtype=np.float64)])
    target = np.asarray(y, dtype=np.float64)
    beta = np.zeros(design_.shape[1])
    converged = False
    iterations = 0
    info = np.eye(len(beta))
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported
        eta = design_ @ beta
        mu = 1 / (1 + np.exp(-eta))
        w = mu * (1 - mu)
        grad = design_.T @ (target - mu)
        info = (design_ * w[:, None]).T @ design_
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            break
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    eta = design_ @ beta
    mu = 1 / (1 + np.exp(-eta))
    info = (design_ * (mu * (1 - mu))[:, None]).T @ design_
    try:
        se = np.sqrt(np.diag(np.linalg.inv(info)))
    except np.linalg.LinAlgError:
        se = np.full(len(beta), np.nan)
    loglik = float(np.sum(target * eta - np.logaddexp(0, eta)))
    return LogisticFit(beta, se, loglik, iterations, converged)


def box_tidwell_p(x: np.ndarray, y: np.ndarray) -> float | None:
    """p-value of the x*ln(x) term added to logit(y) ~ x (module docstring); None if not estimable."""
    values = np.asarray(x, dtype=np.float64)
    if values.size < 3 or np.unique(values).size < 3:
        return None
    if values.min() <= 0:
        values = values - values.min() + 1
    fit = logistic_fit(np.column_stack([values, values * np.log(values)]), y)
    if not fit.converged or not np.isfinite(fit.se[2]) or fit.se[2] == 0:
        return None
    return float(2 * stats.norm.sf(abs(fit.coef[2] / fit.se[2])))


@dataclass(frozen=True, slots=True)
class OddsRatio:
    term: str
    odds_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    estimable: bool


@dataclass(frozen=True, slots=True)
class LogisticModel:
    outcome: str
    n: int
    events: int
    terms: tuple[OddsRatio, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PredictorAnalysis:
    outcome: str
    linearity: Mapping[str, float | None]  # Box-Tidwell p per continuous predictor
    binarised: Mapping[str, float]  # predictor -> median used as cut
    univariable: tuple[LogisticModel, ...]
    multivariable: LogisticModel | None
    skipped: Mapping[str, str]  # predictor -> why it was left out (no values, no variation)


DR_PREDICTORS = (
    "sex",
    "age_years",
    "smoking",
    "ecog_band",
    "bmi",
    "tumour_group",
    "line_band",
    "ici_class",
    "strategy",
    "pdl1_band",
    "nlr_pre",
    "radiotherapy",
)
_SEPARATION_LIMIT = 10.0  # |log OR| beyond this with a huge SE: the MLE runs away (separation)


def _indicators(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    levels = frame[column].astype(str)
    counts = levels.value_counts()
    reference = sorted(counts.index, key=lambda lv: (-counts[lv], lv))[0]
    names = [lv for lv in sorted(counts.index) if lv != reference]
    x = np.column_stack([(levels == lv).to_numpy(dtype=np.float64) for lv in names]) if names else None
    return (x if x is not None else np.empty((len(frame), 0))), [f"{column}={lv}" for lv in names]


def logistic_model(frame: pd.DataFrame, outcome: str, predictors: Sequence[str]) -> LogisticModel:
    """Logistic model of the boolean column `outcome` on `predictors` (complete cases)."""
    part = frame.dropna(subset=[outcome, *predictors])
    if part.empty:
        return LogisticModel(outcome, 0, 0, (), ("no patient has all the predictors",))
    blocks, names = [], []
    for column in predictors:
        if pd.api.types.is_numeric_dtype(part[column]) and not pd.api.types.is_bool_dtype(part[column]):
            blocks.append(part[column].to_numpy(dtype=np.float64)[:, None])
            names.append(column)
        else:
            x, labels = _indicators(part, column)
            blocks.append(x)
            names.extend(labels)
    x = np.hstack(blocks) if blocks else np.empty((len(part), 0))
    y = part[outcome].astype(bool).to_numpy(dtype=np.float64)
    warnings: list[str] = []
    events = int(y.sum())
    if events == 0 or events == len(y):
        return LogisticModel(outcome, len(y), events, (), ("outcome does not vary in this cohort",))
    fit = logistic_fit(x, y)
    if not fit.converged:
        warnings.append("Newton-Raphson did not converge (separation likely)")
    terms = []
    for j, name in enumerate(names, start=1):
        coef, se = float(fit.coef[j]), float(fit.se[j])
        if not np.isfinite(se) or abs(coef) > _SEPARATION_LIMIT or not fit.converged:
            terms.append(OddsRatio(name, None, None, None, None, False))
            warnings.append(f"{name}: not estimable (quasi-complete separation)")
            continue
        z = stats.norm.ppf(0.975)
        terms.append(
            OddsRatio(
                name,
                float(np.exp(coef)),
                float(np.exp(coef - z * se)),
                float(np.exp(coef + z * se)),
                float(2 * stats.norm.sf(abs(coef / se))),
                True,
            )
        )
    return LogisticModel(outcome, len(y), events, tuple(terms), tuple(warnings))


def predictors_of(
    frame: pd.DataFrame,
    outcome_group: str,
    predictors: Sequence[str] = DR_PREDICTORS,
    *,
    selection: str = "all",
    alpha: float = 0.05,
) -> PredictorAnalysis:
    """Predictors of membership of `outcome_group` (DR or PsPD), the paper's Supplementary S4/S5.

    Continuous predictors failing Box-Tidwell are replaced by `<name>>=median`. `selection="all"`
    enters every predictor in the multivariable model; `"significant"` only those with a
    univariable p < `alpha` (the paper's rule for its Cox models); no model when none qualifies.
    """
    work = frame.assign(_outcome=frame["group"] == outcome_group)
    linearity: dict[str, float | None] = {}
    binarised: dict[str, float] = {}
    used: list[str] = []
    skipped: dict[str, str] = {}
    for column in predictors:
        series = work[column]
        if series.dropna().astype(str).nunique() < 2:
            skipped[column] = "no values" if series.notna().sum() == 0 else "does not vary in this cohort"
            continue
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            known = work.dropna(subset=[column])
            p = box_tidwell_p(known[column].to_numpy(dtype=np.float64), known["_outcome"].to_numpy())
            linearity[column] = p
            if p is not None and p < alpha:
                cut = float(known[column].median())
                name = f"{column}>=median"
                high = (work[column] >= cut).map({True: "yes", False: "no"})
                work[name] = high.where(work[column].notna(), None)
                binarised[column] = cut
                used.append(name)
                continue
        used.append(column)
    univariable = tuple(logistic_model(work, "_outcome", [c]) for c in used)
    univariable = tuple(LogisticModel(outcome_group, m.n, m.events, m.terms, m.warnings) for m in univariable)
    if selection == "significant":
        chosen = [
            c
            for c, m in zip(used, univariable, strict=True)
            if any(t.p is not None and t.p < alpha for t in m.terms)
        ]
    elif selection == "all":
        chosen = used
    else:
        raise ValueError(f"unknown selection {selection!r}")
    multivariable = None
    if chosen:
        m = logistic_model(work, "_outcome", chosen)
        multivariable = LogisticModel(outcome_group, m.n, m.events, m.terms, m.warnings)
    return PredictorAnalysis(outcome_group, linearity, binarised, univariable, multivariable, skipped)
