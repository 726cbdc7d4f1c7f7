"""Portal reports: the analyses of this package with the privacy rules applied (`privacy`).

Each function takes the (filtered) analysis table and the caller's minimum cell size and returns
a frozen dataclass of what may be shown: suppressed counts are None, proportions only where both
counts are shown, curves cut below the at-risk threshold, tests and models on groups of at least
`threshold` patients (the others are listed with the reason). With a `perturbation` (every role
but the trusted analyst) every count shown is perturbed by its cell key and every proportion,
percentage and interval is computed from the perturbed counts; survival estimates are rounded to
`SURVIVAL_DECIMALS` (docs/privacy/disclosure-control.md). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from service.analytics.baseline import (
    CONTINUOUS,
    DR_PREDICTORS,
    Comparison,
    Distribution,
    LogisticModel,
    PredictorAnalysis,
    baseline_table,
    continuous_comparisons,
    predictors_of,
)
from service.analytics.cohort import survival_frame
from service.analytics.privacy import (
    CellKeyPerturbation,
    DisclosureProblem,
    cell_key,
    cut_curve,
    is_small,
    protect,
    refusal_reason,
    shown,
)
from service.analytics.response import (
    CategoryCounts,
    DrBreakdown,
    ResponseSummary,
    proportion,
    record_keys,
    response_summary,
)
from service.analytics.survival import CoxModel, KmCurve, LogRank, cox_regression, design, km_analysis


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
    """A proportion of shown counts; a perturbed numerator above its perturbed denominator is
    capped at it (both are perturbed independently, so either may move)."""
    if k is None or n is None or n == 0:
        return ShownProportion(name, k, n, None, None, None)
    k = min(k, n)
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
    return dict(zip(counts.categories, problem.cells(counts.counts, counts.keys), strict=True))


def _count(frame: pd.DataFrame, mask: pd.Series | None, perturbation: CellKeyPerturbation | None) -> int:
    """How many rows of `frame` (those in `mask`, or all) a report shows: exact, or perturbed by
    the cell key of those rows."""
    keys = record_keys(frame) if mask is None else record_keys(frame)[mask.to_numpy(dtype=bool)]
    n = len(keys)
    return n if perturbation is None else perturbation.perturb(n, cell_key(keys.tolist()))


def response_report(
    frame: pd.DataFrame,
    threshold: int,
    *,
    confirmed: bool = True,
    perturbation: CellKeyPerturbation | None = None,
) -> ResponseReport:
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
    dcb_yes, dcb_no, dcb_na = p.cells(
        [s.dcb, s.dcb_evaluable - s.dcb, s.n - s.dcb_evaluable],
        [s.dcb_keys, s.dcb_evaluable_keys - s.dcb_keys, s.n_keys - s.dcb_evaluable_keys],
    )
    p.link((dcb_yes, dcb_no, dcb_na), all_groups)
    p.candidate("dcb", [dcb_yes])
    p.candidate("dcb_evaluable", [dcb_yes, dcb_no], total=True)
    # DR by first evaluation: the first-evaluation partition split by DR / not DR.
    fe = s.dr_by_first_evaluation
    fe_dr, fe_other, (ne_dr, ne_other) = _dr_cells(p, fe, s)
    for c in fe.categories:
        p.link((fe_dr[c], fe_other[c]), (first[c],))
        p.candidate(f"dr_by_first_evaluation:{c}", [fe_dr[c]])
    p.link((*fe_dr.values(), ne_dr), (groups["DR"],))
    p.link((ne_dr, ne_other), (first["NE"],))
    # DR by tumour group.
    tg = s.dr_by_tumour_group
    tg_dr, tg_other, (un_dr, un_other) = _dr_cells(p, tg, s)
    p.link((*tg_dr.values(), un_dr), (groups["DR"],))
    p.link((*tg_dr.values(), *tg_other.values(), un_dr, un_other), all_groups)
    for c in tg.categories:
        p.candidate(f"dr_by_tumour_group:{c}", [tg_dr[c]])
        p.candidate(f"tumour_group:{c}", [tg_dr[c], tg_other[c]], total=True)
    # DR by timepoint and by trigger: partitions of the DR patients (plus the unknown rest).
    for name, counts in (("dr_by_timepoint", s.dr_by_timepoint), ("dr_by_trigger", s.dr_by_trigger)):
        cells = dict(zip(counts.categories, p.cells(counts.counts, counts.keys), strict=True))
        (rest,) = p.cells(
            [s.groups.count("DR") - counts.total], [_keys_of(s.groups, "DR") - sum(counts.keys)]
        )
        p.link((*cells.values(), rest), (groups["DR"],))
        for c, cell in cells.items():
            p.candidate(f"{name}:{c}", [cell])
    hidden = protect(p, threshold)

    def show(key: str) -> int | None:
        return shown(p, hidden, key, perturbation)

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


def _keys_of(counts: CategoryCounts, category: str) -> int:
    return counts.keys[counts.categories.index(category)]


def _dr_cells(
    p: DisclosureProblem, breakdown: DrBreakdown, s: ResponseSummary
) -> tuple[dict[str, int], dict[str, int], tuple[int, int]]:
    """Base cells of a DR breakdown: DR and not-DR per category, and DR and not-DR outside every
    category (missing or other values), with their cell keys."""
    dr = dict(zip(breakdown.categories, p.cells(breakdown.dr, breakdown.dr_keys), strict=True))
    other = dict(
        zip(
            breakdown.categories,
            p.cells(
                [t - d for t, d in zip(breakdown.totals, breakdown.dr, strict=True)],
                [t - d for t, d in zip(breakdown.total_keys, breakdown.dr_keys, strict=True)],
            ),
            strict=True,
        )
    )
    dr_n, dr_keys = s.groups.count("DR"), _keys_of(s.groups, "DR")
    rest_dr = dr_n - sum(breakdown.dr)
    rest_dr_keys = dr_keys - sum(breakdown.dr_keys)
    rest = p.cells(
        [rest_dr, (s.n - sum(breakdown.totals)) - rest_dr],
        [rest_dr_keys, (s.n_keys - sum(breakdown.total_keys)) - rest_dr_keys],
    )
    return dr, other, (rest[0], rest[1])


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
    frame: pd.DataFrame,
    groups: Sequence[str],
    threshold: int,
    *,
    by: str = "group",
    with_tests: bool = True,
    perturbation: CellKeyPerturbation | None = None,
) -> BaselineReport:
    """Table 1 with suppression. Groups with fewer than `threshold` patients are left out of the
    table (listed in `refused`), so every shown group size and the total are large and shown; then
    the characteristics are independent given those sizes, and each block (categories x groups,
    with its row totals = the "All patients" column) is protected on its own with the group sizes
    as known margins. With a `perturbation`, group sizes, the total and every cell are perturbed
    by their cell keys and the percentages are of the perturbed sizes."""
    true_sizes = {g: int((frame[by] == g).sum()) for g in groups}
    refused = tuple(Refusal(g, r) for g in groups if (r := refusal_reason(g, true_sizes[g], threshold)))
    kept = [g for g in groups if true_sizes[g] >= threshold]
    sizes = {g: _count(frame, frame[by] == g, perturbation) for g in kept}
    total = _count(frame, frame[by].isin(kept), perturbation)
    table = baseline_table(frame, kept, by=by, with_tests=with_tests and len(kept) >= 2)
    rows: list[BaselineRow] = []
    tests: list[BaselineTest] = []
    hidden_total = 0
    for block in table.blocks:
        p = DisclosureProblem()
        grid = [p.cells(row, keys) for row, keys in zip(block.counts, block.keys, strict=True)]
        for j, g in enumerate(kept):
            p.candidate(f"n:{g}", [grid[i][j] for i in range(len(grid))], total=True, fixed=True)
        for i, category in enumerate(block.categories):
            p.candidate(f"{category}:*", grid[i], total=True)
            for j, g in enumerate(kept):
                p.candidate(f"{category}:{g}", [grid[i][j]])
        hidden = protect(p, threshold)
        hidden_total += len(hidden)
        for category in block.categories:
            row_total = shown(p, hidden, f"{category}:*", perturbation)
            counts = tuple(shown(p, hidden, f"{category}:{g}", perturbation) for g in kept)
            rows.append(
                BaselineRow(
                    block.variable,
                    block.label,
                    category,
                    row_total,
                    counts,
                    _percent(row_total, total),
                    tuple(_percent(c, sizes[g]) for c, g in zip(counts, kept, strict=True)),
                )
            )
        if block.test is not None:
            tests.append(BaselineTest(block.variable, block.test.test, block.test.p, None))
    return BaselineReport(
        groups=tuple(kept),
        group_sizes=tuple(sizes[g] for g in kept),
        n=total,
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
    frame: pd.DataFrame,
    groups: Sequence[str],
    threshold: int,
    *,
    test: str = "mann-whitney",
    perturbation: CellKeyPerturbation | None = None,
) -> ContinuousReport:
    """Median and quartiles per group (never min/max: those are single patients' values) and the
    pairwise tests, for groups with at least `threshold` values; with a `perturbation` the number
    of values per group is perturbed by its cell key."""
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
            replace(d, n=_count(frame, (frame["group"] == d.group) & frame[v].notna(), perturbation))
            if d.n >= threshold
            else d
            if d.n == 0
            else Distribution(d.group, 0, None, None, None)
            for d in ds
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


#: Protected roles: survival estimates to whole percent, curves and medians on a weekly grid (no
#: single event day or step of one patient is shown; docs/privacy/disclosure-control.md).
SURVIVAL_DECIMALS = 2
PROTECTED_GRID_DAYS = 7


def _coarse(value: float | None) -> float | None:
    return None if value is None else round(value, SURVIVAL_DECIMALS)


def _on_week(day: float | None) -> int | None:
    return None if day is None else PROTECTED_GRID_DAYS * round(day / PROTECTED_GRID_DAYS)


def _weekly_points(curve: KmCurve, keep: int) -> tuple[CurvePoint, ...]:
    """The step function of the shown part of a curve read at every `PROTECTED_GRID_DAYS`,
    estimates rounded to `SURVIVAL_DECIMALS`."""
    if keep == 0:
        return ()
    times = np.asarray(curve.times[:keep])
    grid = np.arange(0, int(times[-1]) + 1, PROTECTED_GRID_DAYS)
    at = np.searchsorted(times, grid, side="right") - 1
    return tuple(
        CurvePoint(
            int(day),
            round(curve.survival[i], SURVIVAL_DECIMALS),
            round(curve.ci_low[i], SURVIVAL_DECIMALS),
            round(curve.ci_high[i], SURVIVAL_DECIMALS),
        )
        for day, i in zip(grid.tolist(), at.tolist(), strict=True)
    )


def survival_report(
    frame: pd.DataFrame,
    endpoint: str,
    threshold: int,
    *,
    by: str | None = "group",
    groups: Sequence[str] | None = None,
    grid_step_days: int = 90,
    perturbation: CellKeyPerturbation | None = None,
) -> SurvivalReport:
    """Kaplan-Meier by `by` with log-rank tests. Groups below `threshold` are refused (not drawn,
    not tested, not counted in any total); curves stop before the first point with fewer than
    `threshold` at risk, and the median and its CI are withheld when they fall beyond that cut.
    With a `perturbation`: n, events and numbers at risk are perturbed by their cell keys, curves
    are read on a weekly grid and estimates rounded (module constants)."""
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
    exact = perturbation is None
    curves, risk_rows = [], []
    for curve in analysis.curves:
        keep = cut_curve(curve.at_risk, threshold)
        cut_day = curve.times[keep] if keep < len(curve.times) else None
        in_group = tidy["group"] == curve.group

        def within(day: float | None, cut: int | None = cut_day) -> float | None:
            shown_day = day if day is not None and (cut is None or day < cut) else None
            return shown_day if exact else _on_week(shown_day)

        points = (
            tuple(
                CurvePoint(curve.times[i], curve.survival[i], curve.ci_low[i], curve.ci_high[i])
                for i in range(keep)
            )
            if exact
            else _weekly_points(curve, keep)
        )
        curves.append(
            CurveReport(
                group=curve.group,
                n=_count(tidy, in_group, perturbation),
                events=None
                if is_small(curve.events, threshold)
                else _count(tidy, in_group & (tidy["event"] == 1), perturbation),
                median_days=within(curve.median_days),
                median_ci_low=within(curve.median_ci_low),
                median_ci_high=within(curve.median_ci_high),
                points=points,
                cut_at_day=cut_day if exact else _on_week(cut_day),
            )
        )
        for row in analysis.tables[curve.group]:
            if row.at_risk >= threshold and (cut_day is None or row.day < cut_day):
                risk_rows.append(
                    RiskTableRow(
                        curve.group,
                        row.day,
                        _count(tidy, in_group & (tidy["duration_days"] >= row.day), perturbation),
                        row.survival if exact else round(row.survival, SURVIVAL_DECIMALS),
                        row.ci_low if exact else round(row.ci_low, SURVIVAL_DECIMALS),
                        row.ci_high if exact else round(row.ci_high, SURVIVAL_DECIMALS),
                    )
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
    perturbation: CellKeyPerturbation | None = None,
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
    if perturbation is not None:

        def counted(model: CoxModel, used: Sequence[str]) -> CoxModel:
            rows = data.loc[design(data, used, references)[2]]
            events = rows[f"{endpoint}_event"].astype(bool)
            return replace(
                model,
                n=_count(rows, None, perturbation),
                events=_count(rows, events, perturbation),
            )

        univariable = tuple(counted(m, [c]) for m, c in zip(univariable, covariates, strict=True))
        multivariable = None if multivariable is None else counted(multivariable, chosen)
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
    perturbation: CellKeyPerturbation | None = None,
) -> PredictorReport:
    """Logistic regression of DR or PsPD: refused when the outcome group (or its complement) has
    fewer than `threshold` patients, or a categorical predictor has a level below it."""
    events = int((frame["group"] == outcome_group).sum())
    for subject, n in ((outcome_group, events), (f"not {outcome_group}", len(frame) - events)):
        reason = refusal_reason(subject, n, threshold)
        if reason:
            raise RefusedAnalysis(reason)
    _check_levels(frame, [p for p in predictors if p in frame], threshold)
    analysis = predictors_of(frame, outcome_group, predictors, selection=selection)
    if perturbation is not None:
        analysis = _perturbed_models(frame, outcome_group, predictors, analysis, perturbation)
    return PredictorReport(threshold, analysis)


_BINARISED = ">=median"


def _perturbed_models(
    frame: pd.DataFrame,
    outcome_group: str,
    predictors: Sequence[str],
    analysis: PredictorAnalysis,
    perturbation: CellKeyPerturbation,
) -> PredictorAnalysis:
    """The logistic models with n and events perturbed by the cell keys of their complete cases
    (a binarised predictor `x>=median` is missing exactly where `x` is)."""

    def counted(model: LogisticModel, names: Sequence[str]) -> LogisticModel:
        rows = frame.dropna(subset=[n.removesuffix(_BINARISED) for n in names])
        events = rows["group"] == outcome_group
        return replace(model, n=_count(rows, None, perturbation), events=_count(rows, events, perturbation))

    def names_in(model: LogisticModel, used: Sequence[str]) -> list[str]:
        return [u for u in used if any(t.term == u or t.term.startswith(f"{u}=") for t in model.terms)]

    # the predictors in the order `predictors_of` fits its univariable models
    used = [
        f"{c}{_BINARISED}" if c in analysis.binarised else c for c in predictors if c not in analysis.skipped
    ]
    univariable = tuple(counted(m, [u]) for m, u in zip(analysis.univariable, used, strict=True))
    multivariable = analysis.multivariable
    if multivariable is not None:
        multivariable = counted(multivariable, names_in(multivariable, used))
    return replace(analysis, univariable=univariable, multivariable=multivariable)
