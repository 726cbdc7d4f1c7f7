"""Portal reports: the analyses of this package with the privacy rules applied (`privacy`).

Each function takes the (filtered) analysis table and the caller's minimum cell size and returns
a frozen dataclass of what may be shown: suppressed counts are None, proportions only where both
counts are shown, curves cut below the at-risk threshold, tests and models on groups of at least
`threshold` patients (the others are listed with the reason). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from service.analytics.baseline import (
    CONTINUOUS,
    DR_PREDICTORS,
    Comparison,
    Distribution,
    PredictorAnalysis,
    baseline_table,
    continuous_comparisons,
    predictors_of,
)
from service.analytics.cohort import survival_frame
from service.analytics.privacy import DisclosureProblem, cut_curve, is_small, protect, refusal_reason, shown
from service.analytics.response import CategoryCounts, proportion, response_summary
from service.analytics.survival import CoxModel, LogRank, cox_regression, km_analysis


class RefusedAnalysis(ValueError):
    """The analysis cannot be shown at this minimum cell size (the message says why)."""


@dataclass(frozen=True, slots=True)
class Count:
    label: str
    count: int | None  # None: suppressed


@dataclass(frozen=True, slots=True)
class ShownProportion:
    name: str
    numerator: int | None
    denominator: int | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True, slots=True)
class Refusal:
    subject: str
    reason: str


def _shown_proportion(name: str, k: int | None, n: int | None) -> ShownProportion:
    if k is None or n is None or n == 0:
        return ShownProportion(name, k, n, None, None, None)
    p = proportion(name, k, n)
    return ShownProportion(name, k, n, p.estimate, p.ci_low, p.ci_high)


# -- response summary -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseReport:
    n: int | None
    threshold: int
    rates: tuple[ShownProportion, ...]
    bor: tuple[Count, ...]
    first_evaluation: tuple[Count, ...]
    groups: tuple[Count, ...]
    dr_by_first_evaluation: tuple[ShownProportion, ...]
    dr_by_tumour_group: tuple[ShownProportion, ...]
    dr_by_timepoint: tuple[Count, ...]
    dr_by_trigger: tuple[Count, ...]
    suppressed: int


def _partition(problem: DisclosureProblem, counts: CategoryCounts) -> dict[str, int]:
    return dict(zip(counts.categories, problem.cells(counts.counts), strict=True))


def response_report(frame: pd.DataFrame, threshold: int, *, confirmed: bool = True) -> ResponseReport:
    s = response_summary(frame, confirmed=confirmed)
    p = DisclosureProblem()
    bor = _partition(p, s.bor)
    first = _partition(p, s.first_evaluation)
    groups = _partition(p, s.groups)
    all_groups = tuple(groups.values())
    p.link(tuple(bor.values()), all_groups)
    p.link(tuple(first.values()), all_groups)
    n_key = p.candidate("n", all_groups, total=True)
    for name, cells in (("bor", bor), ("first_evaluation", first), ("group", groups)):
        for category, cell in cells.items():
            p.candidate(f"{name}:{category}", [cell])
    p.candidate("orr", [bor["CR"], bor["PR"]], total=True)
    p.candidate("dcr", [bor["CR"], bor["PR"], bor["SD"]], total=True)
    p.candidate("orr_first_evaluation", [first["CR"], first["PR"]], total=True)
    p.candidate("dcr_first_evaluation", [first["CR"], first["PR"], first["SD"]], total=True)
    p.candidate("atypical", [groups["DR"], groups["PsPD"]], total=True)
    dcb_yes, dcb_no, dcb_na = p.cells([s.dcb, s.dcb_evaluable - s.dcb, s.n - s.dcb_evaluable])
    p.link((dcb_yes, dcb_no, dcb_na), all_groups)
    p.candidate("dcb", [dcb_yes])
    p.candidate("dcb_evaluable", [dcb_yes, dcb_no], total=True)
    # DR by first evaluation: the first-evaluation partition split by DR / not DR.
    fe = s.dr_by_first_evaluation
    fe_dr = dict(zip(fe.categories, p.cells(fe.dr), strict=True))
    fe_other = dict(
        zip(fe.categories, p.cells([t - d for t, d in zip(fe.totals, fe.dr, strict=True)]), strict=True)
    )
    ne_dr, ne_other = p.cells(
        [s.groups.count("DR") - sum(fe.dr), (s.n - sum(fe.totals)) - (s.groups.count("DR") - sum(fe.dr))]
    )
    for c in fe.categories:
        p.link((fe_dr[c], fe_other[c]), (first[c],))
        p.candidate(f"dr_by_first_evaluation:{c}", [fe_dr[c]])
    p.link((*fe_dr.values(), ne_dr), (groups["DR"],))
    p.link((ne_dr, ne_other), (first["NE"],))
    # DR by tumour group.
    tg = s.dr_by_tumour_group
    tg_dr = dict(zip(tg.categories, p.cells(tg.dr), strict=True))
    tg_other = dict(
        zip(tg.categories, p.cells([t - d for t, d in zip(tg.totals, tg.dr, strict=True)]), strict=True)
    )
    un_dr, un_other = p.cells(
        [s.groups.count("DR") - sum(tg.dr), (s.n - sum(tg.totals)) - (s.groups.count("DR") - sum(tg.dr))]
    )
    p.link((*tg_dr.values(), un_dr), (groups["DR"],))
    p.link((*tg_dr.values(), *tg_other.values(), un_dr, un_other), all_groups)
    for c in tg.categories:
        p.candidate(f"dr_by_tumour_group:{c}", [tg_dr[c]])
        p.candidate(f"tumour_group:{c}", [tg_dr[c], tg_other[c]], total=True)
    # DR by timepoint and by trigger: partitions of the DR patients (plus the unknown rest).
    for name, counts in (("dr_by_timepoint", s.dr_by_timepoint), ("dr_by_trigger", s.dr_by_trigger)):
        cells = dict(zip(counts.categories, p.cells(counts.counts), strict=True))
        (rest,) = p.cells([s.groups.count("DR") - counts.total])
        p.link((*cells.values(), rest), (groups["DR"],))
        for c, cell in cells.items():
            p.candidate(f"{name}:{c}", [cell])
    hidden = protect(p, threshold)

    def show(key: str) -> int | None:
        return shown(p, hidden, key)

    rates = (
        _shown_proportion("orr", show("orr"), show("n")),
        _shown_proportion("dcr", show("dcr"), show("n")),
        _shown_proportion("orr_first_evaluation", show("orr_first_evaluation"), show("n")),
        _shown_proportion("dcr_first_evaluation", show("dcr_first_evaluation"), show("n")),
        _shown_proportion("dcb", show("dcb"), show("dcb_evaluable")),
        _shown_proportion("atypical", show("atypical"), show("n")),
        _shown_proportion("dr", show("group:DR"), show("n")),
        _shown_proportion("pspd", show("group:PsPD"), show("n")),
    )
    return ResponseReport(
        n=show(n_key),
        threshold=threshold,
        rates=rates,
        bor=tuple(Count(c, show(f"bor:{c}")) for c in s.bor.categories),
        first_evaluation=tuple(
            Count(c, show(f"first_evaluation:{c}")) for c in s.first_evaluation.categories
        ),
        groups=tuple(Count(c, show(f"group:{c}")) for c in s.groups.categories),
        dr_by_first_evaluation=tuple(
            _shown_proportion(c, show(f"dr_by_first_evaluation:{c}"), show(f"first_evaluation:{c}"))
            for c in fe.categories
        ),
        dr_by_tumour_group=tuple(
            _shown_proportion(c, show(f"dr_by_tumour_group:{c}"), show(f"tumour_group:{c}"))
            for c in tg.categories
        ),
        dr_by_timepoint=tuple(Count(c, show(f"dr_by_timepoint:{c}")) for c in s.dr_by_timepoint.categories),
        dr_by_trigger=tuple(Count(c, show(f"dr_by_trigger:{c}")) for c in s.dr_by_trigger.categories),
        suppressed=len(hidden),
    )


# -- Table 1 --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaselineRow:
    variable: str
    label: str
    category: str
    total: int | None
    counts: tuple[int | None, ...]  # one per group, None = suppressed
    total_percent: float | None  # of all patients in the table, 1 decimal (Table 1 layout)
    percents: tuple[float | None, ...]  # of the group's patients


@dataclass(frozen=True, slots=True)
class BaselineTest:
    variable: str
    test: str | None
    p: float | None
    refused: str | None


@dataclass(frozen=True, slots=True)
class BaselineReport:
    groups: tuple[str, ...]
    group_sizes: tuple[int, ...]
    n: int
    threshold: int
    rows: tuple[BaselineRow, ...]
    tests: tuple[BaselineTest, ...]
    refused: tuple[Refusal, ...]
    suppressed: int


def _percent(count: int | None, of: int) -> float | None:
    """Percentage to one decimal, rounded half up as printed in the paper's tables."""
    if count is None or of == 0:
        return None
    return float((Decimal(count * 100) / Decimal(of)).quantize(Decimal("0.1"), ROUND_HALF_UP))


def baseline_report(
    frame: pd.DataFrame, groups: Sequence[str], threshold: int, *, by: str = "group", with_tests: bool = True
) -> BaselineReport:
    """Table 1 with suppression. Groups with fewer than `threshold` patients are left out of the
    table (listed in `refused`), so every shown group size and the total are large and shown; then
    the characteristics are independent given those sizes, and each block (categories x groups,
    with its row totals = the "All patients" column) is protected on its own with the group sizes
    as known margins."""
    sizes = {g: int((frame[by] == g).sum()) for g in groups}
    refused = tuple(Refusal(g, r) for g in groups if (r := refusal_reason(g, sizes[g], threshold)))
    kept = [g for g in groups if sizes[g] >= threshold]
    table = baseline_table(frame, kept, by=by, with_tests=with_tests and len(kept) >= 2)
    rows: list[BaselineRow] = []
    tests: list[BaselineTest] = []
    hidden_total = 0
    for block in table.blocks:
        p = DisclosureProblem()
        grid = [p.cells(row) for row in block.counts]  # grid[category][group]
        for j, g in enumerate(kept):
            p.candidate(f"n:{g}", [grid[i][j] for i in range(len(grid))], total=True, fixed=True)
        for i, category in enumerate(block.categories):
            p.candidate(f"{category}:*", grid[i], total=True)
            for j, g in enumerate(kept):
                p.candidate(f"{category}:{g}", [grid[i][j]])
        hidden = protect(p, threshold)
        hidden_total += len(hidden)
        for category in block.categories:
            total = shown(p, hidden, f"{category}:*")
            counts = tuple(shown(p, hidden, f"{category}:{g}") for g in kept)
            rows.append(
                BaselineRow(
                    block.variable,
                    block.label,
                    category,
                    total,
                    counts,
                    _percent(total, sum(sizes[g] for g in kept)),
                    tuple(_percent(c, sizes[g]) for c, g in zip(counts, kept, strict=True)),
                )
            )
        if block.test is not None:
            tests.append(BaselineTest(block.variable, block.test.test, block.test.p, None))
    return BaselineReport(
        groups=tuple(kept),
        group_sizes=tuple(sizes[g] for g in kept),
        n=sum(sizes[g] for g in kept),
        threshold=threshold,
        rows=tuple(rows),
        tests=tuple(tests),
        refused=refused,
        suppressed=hidden_total,
    )


# -- continuous variables -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContinuousReport:
    threshold: int
    distributions: Mapping[str, tuple[Distribution, ...]]
    comparisons: tuple[Comparison, ...]
    refused: tuple[Refusal, ...]


def continuous_report(
    frame: pd.DataFrame, groups: Sequence[str], threshold: int, *, test: str = "mann-whitney"
) -> ContinuousReport:
    """Median and quartiles per group (never min/max: those are single patients' values) and the
    pairwise tests, for groups with at least `threshold` values."""
    refused = []
    allowed = []
    for g in groups:
        reason = refusal_reason(g, int((frame["group"] == g).sum()), threshold)
        if reason:
            refused.append(Refusal(g, reason))
        else:
            allowed.append(g)
    dists, comparisons = continuous_comparisons(
        frame, allowed, variables=CONTINUOUS, test=test, min_values=max(2, threshold)
    )
    cleaned = {
        v: tuple(
            d if d.n >= threshold or d.n == 0 else Distribution(d.group, 0, None, None, None) for d in ds
        )
        for v, ds in dists.items()
    }
    # the number of values per group is shown only when it is not small
    return ContinuousReport(threshold, cleaned, comparisons, tuple(refused))


# -- survival -------------------------------------------------------------------------------------


@dataclass(frozen=True)  # no slots: orjson writes dict-backed dataclasses ~4x faster (API JSON)
class CurvePoint:
    day: int
    survival: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class CurveReport:
    group: str
    n: int
    events: int | None
    median_days: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    points: tuple[CurvePoint, ...]
    cut_at_day: int | None  # first day with fewer than `threshold` at risk (not shown), None if never


@dataclass(frozen=True, slots=True)
class RiskTableRow:
    group: str
    day: int
    at_risk: int
    survival: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class SurvivalReport:
    endpoint: str
    by: str | None
    threshold: int
    curves: tuple[CurveReport, ...]
    risk_table: tuple[RiskTableRow, ...]
    overall: LogRank | None
    pairwise: tuple[LogRank, ...]
    refused: tuple[Refusal, ...]
    warnings: tuple[str, ...]


def survival_report(
    frame: pd.DataFrame,
    endpoint: str,
    threshold: int,
    *,
    by: str | None = "group",
    groups: Sequence[str] | None = None,
    grid_step_days: int = 90,
) -> SurvivalReport:
    """Kaplan-Meier by `by` with log-rank tests. Groups below `threshold` are refused (not drawn,
    not tested, not counted in any total); curves stop before the first point with fewer than
    `threshold` at risk, and the median and its CI are withheld when they fall beyond that cut."""
    tidy = survival_frame(frame, endpoint, by)
    if by is None:
        tidy = tidy.assign(group="all")
    names = list(groups) if groups is not None else sorted(tidy["group"].unique())
    refused = []
    allowed = []
    for g in names:
        reason = refusal_reason(g, int((tidy["group"] == g).sum()), threshold)
        (refused.append(Refusal(g, reason)) if reason else allowed.append(g))
    analysis = km_analysis(tidy[tidy["group"].isin(allowed)], groups=allowed, grid_step_days=grid_step_days)
    curves, risk_rows = [], []
    for curve in analysis.curves:
        keep = cut_curve(curve.at_risk, threshold)
        cut_day = curve.times[keep] if keep < len(curve.times) else None

        def within(day: float | None, cut: int | None = cut_day) -> float | None:
            return day if day is not None and (cut is None or day < cut) else None

        points = tuple(
            CurvePoint(curve.times[i], curve.survival[i], curve.ci_low[i], curve.ci_high[i])
            for i in range(keep)
        )
        curves.append(
            CurveReport(
                group=curve.group,
                n=curve.n,
                events=None if is_small(curve.events, threshold) else curve.events,
                median_days=within(curve.median_days),
                median_ci_low=within(curve.median_ci_low),
                median_ci_high=within(curve.median_ci_high),
                points=points,
                cut_at_day=cut_day,
            )
        )
        for row in analysis.tables[curve.group]:
            if row.at_risk >= threshold and (cut_day is None or row.day < cut_day):
                risk_rows.append(
                    RiskTableRow(curve.group, row.day, row.at_risk, row.survival, row.ci_low, row.ci_high)
                )
    return SurvivalReport(
        endpoint=endpoint,
        by=by,
        threshold=threshold,
        curves=tuple(curves),
        risk_table=tuple(risk_rows),
        overall=analysis.overall,
        pairwise=analysis.pairwise,
        refused=tuple(refused),
        warnings=analysis.warnings,
    )


# -- Cox and logistic models ----------------------------------------------------------------------


def _check_levels(frame: pd.DataFrame, columns: Sequence[str], threshold: int) -> None:
    if len(frame) < threshold:
        raise RefusedAnalysis(refusal_reason("the cohort", len(frame), threshold) or "")
    for column in columns:
        values = frame[column].dropna()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue
        for level, n in values.astype(str).value_counts().items():
            reason = refusal_reason(f"{column}={level}", int(n), threshold)
            if reason:
                raise RefusedAnalysis(reason)


@dataclass(frozen=True, slots=True)
class CoxReport:
    endpoint: str
    threshold: int
    univariable: tuple[CoxModel, ...]
    multivariable: CoxModel | None
    covariates: tuple[str, ...]


def cox_report(
    frame: pd.DataFrame,
    endpoint: str,
    covariates: Sequence[str],
    threshold: int,
    *,
    references: Mapping[str, str] | None = None,
    selection: str = "all",
    check_ph: bool = True,
) -> CoxReport:
    """Univariable Cox models for each covariate and a multivariable one: all covariates
    (`selection="all"`) or those with a univariable p < 0.05 (`"significant"`, the paper's rule).
    Refused when the cohort or any level of a categorical covariate has fewer than `threshold`
    patients."""
    data = frame.dropna(subset=[f"{endpoint}_days", f"{endpoint}_event"])
    _check_levels(data, covariates, threshold)
    try:
        univariable = tuple(
            cox_regression(data, endpoint, [c], references=references, check_ph=check_ph) for c in covariates
        )
    except ValueError as exc:  # a covariate that does not vary: no model can be fitted
        raise RefusedAnalysis(str(exc)) from exc
    if selection == "significant":
        chosen = [
            c
            for c, m in zip(covariates, univariable, strict=True)
            if any(t.p is not None and t.p < 0.05 for t in m.terms)
        ]
    elif selection == "all":
        chosen = list(covariates)
    else:
        raise ValueError(f"unknown selection {selection!r}")
    multivariable = (
        cox_regression(data, endpoint, chosen, references=references, check_ph=check_ph)
        if len(chosen) > 1
        else None
    )
    for model in (*univariable, multivariable):
        if model is not None and is_small(model.events, threshold):
            raise RefusedAnalysis(f"fewer than {threshold} events; a model would reveal a small count")
    return CoxReport(endpoint, threshold, univariable, multivariable, tuple(covariates))


@dataclass(frozen=True, slots=True)
class PredictorReport:
    threshold: int
    analysis: PredictorAnalysis


def predictor_report(
    frame: pd.DataFrame,
    outcome_group: str,
    threshold: int,
    *,
    predictors: Sequence[str] = DR_PREDICTORS,
    selection: str = "all",
) -> PredictorReport:
    """Logistic regression of DR or PsPD: refused when the outcome group (or its complement) has
    fewer than `threshold` patients, or a categorical predictor has a level below it."""
    events = int((frame["group"] == outcome_group).sum())
    for subject, n in ((outcome_group, events), (f"not {outcome_group}", len(frame) - events)):
        reason = refusal_reason(subject, n, threshold)
        if reason:
            raise RefusedAnalysis(reason)
    _check_levels(frame, [p for p in predictors if p in frame], threshold)
    return PredictorReport(threshold, predictors_of(frame, outcome_group, predictors, selection=selection))
