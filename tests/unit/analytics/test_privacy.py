"""Small-cell suppression: no count of 1-10 is shown, nor recoverable from one response.

The attacker of these tests sees one response and knows how its numbers relate (cells add up to
the shown totals, every count is a whole number >= 0). For each suppressed count we ask a linear
program for its smallest and largest value consistent with everything shown: if they differ, the
response does not reveal it. (Table constraints with margins are totally unimodular, so the LP
bounds are attained by whole-number tables.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from service.analytics.baseline import baseline_table
from service.analytics.privacy import DisclosureProblem, Thresholds, cut_curve, protect, shown
from service.analytics.reports import BaselineRow, baseline_report, response_report

from .frames import result, table

THRESHOLD = 11


def _range(n_vars: int, equalities: Sequence[tuple[Sequence[int], int]], target: Sequence[int]) -> float:
    """max - min of sum(x[target]) over x >= 0 with the shown equalities."""
    a = np.zeros((len(equalities), n_vars))
    b = np.zeros(len(equalities))
    for row, (cells, value) in enumerate(equalities):
        a[row, list(cells)] = 1
        b[row] = value
    c = np.zeros(n_vars)
    c[list(target)] = 1
    low = linprog(c, A_eq=a if len(b) else None, b_eq=b if len(b) else None, bounds=(0, None), method="highs")
    high = linprog(
        -c, A_eq=a if len(b) else None, b_eq=b if len(b) else None, bounds=(0, None), method="highs"
    )
    if high.status == 3:  # unbounded above: certainly not determined
        return float("inf")
    assert low.status == 0
    assert high.status == 0
    return float(-high.fun - low.fun)


def _table_problem(cells: list[list[int]]) -> tuple[DisclosureProblem, list[list[int]]]:
    p = DisclosureProblem()
    grid = [list(p.cells(row)) for row in cells]
    n_rows, n_cols = len(cells), len(cells[0])
    for i in range(n_rows):
        p.candidate(f"row:{i}", grid[i], total=True)
        for j in range(n_cols):
            p.candidate(f"cell:{i}:{j}", [grid[i][j]])
    for j in range(n_cols):
        p.candidate(f"col:{j}", [grid[i][j] for i in range(n_rows)], total=True)
    p.candidate("all", [c for row in grid for c in row], total=True)
    return p, grid


def test_counts_1_to_10_are_suppressed_and_0_and_11_shown() -> None:
    p, _ = _table_problem([[0, 11], [12, 40]])
    assert protect(p, THRESHOLD) == frozenset()  # 0 and 11 (and the totals) are all shown
    for small in (1, 10):
        p, _ = _table_problem([[small, 30], [25, 40]])
        hidden = protect(p, THRESHOLD)
        assert shown(p, hidden, "cell:0:0") is None


def test_single_small_cell_gets_complements_in_its_row_and_column() -> None:
    # 5 alone hidden would be 40 - 35 from its row total: a partner must go in the row and column.
    p, _ = _table_problem([[5, 35], [20, 30]])
    hidden = protect(p, THRESHOLD)
    assert "cell:0:0" in hidden
    assert len({"cell:0:1", "row:0"} & hidden) >= 1
    assert len({"cell:1:0", "col:0"} & hidden) >= 1


def test_threshold_one_shows_everything() -> None:
    p, _ = _table_problem([[1, 2], [3, 4]])
    assert protect(p, 1) == frozenset()


def test_approved_study_role_lowers_the_threshold() -> None:
    thresholds = Thresholds({"stats.approved-study": 1}, default=11)
    assert thresholds.for_roles(["stats.read"]) == 11
    assert thresholds.for_roles(["stats.read", "stats.approved-study"]) == 1


def test_curve_is_cut_at_first_point_below_threshold() -> None:
    assert cut_curve([30, 20, 11, 10, 12], 11) == 3
    assert cut_curve([30, 20], 11) == 2


small_counts = st.one_of(st.integers(0, 12), st.integers(0, 60))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda r: st.integers(2, 5).flatmap(
            lambda c: st.lists(st.lists(small_counts, min_size=c, max_size=c), min_size=r, max_size=r)
        )
    )
)
def test_no_suppressed_count_of_a_table_with_margins_is_recoverable(cells: list[list[int]]) -> None:
    p, grid = _table_problem(cells)
    hidden = protect(p, THRESHOLD)
    n_vars = len(p.values)
    equalities = [(p.candidates[k][0], p.value(k)) for k in p.candidates if k not in hidden]
    for key in p.candidates:
        value = p.value(key)
        if 0 < value < THRESHOLD:
            assert key in hidden
    for key in hidden:  # complements (>= 11) may be recoverable; the small counts must not be
        if 0 < p.value(key) < THRESHOLD:
            assert _range(n_vars, equalities, p.candidates[key][0]) >= 1 - 1e-6, key
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            if 0 < value < THRESHOLD:
                assert _range(n_vars, equalities, [grid[i][j]]) >= 1 - 1e-6


GROUPS = ("DR", "PsPD", "CR-PR", "SD", "PD")


@st.composite
def small_cohorts(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for _ in range(draw(st.integers(15, 70))):
        rows.append(
            result(
                group=draw(st.sampled_from(GROUPS)),
                first=draw(st.sampled_from(("CR", "PR", "SD", "PD"))),
                sex=draw(st.sampled_from(("male", "female"))),
                tumour=draw(st.sampled_from(("NSCLC", "SCLC", "gastric", "HCC", "other"))),
                ecog=draw(st.integers(0, 2)),
                dr=(draw(st.integers(1, 4)), draw(st.sampled_from(("new-lesion", "target-lesion")))),
            )
        )
    frame = table(rows)
    frame.loc[frame["group"] != "DR", ["dr_timepoint", "dr_trigger"]] = None
    return frame


@settings(max_examples=15, deadline=None)
@given(small_cohorts())
def test_no_suppressed_count_is_recoverable_from_a_table1_response(frame: pd.DataFrame) -> None:
    """Whole Table 1 responses: per characteristic, cells by group with the shown 'All' column and
    the shown group sizes; nothing suppressed is pinned down by what the response shows."""
    report = baseline_report(frame, GROUPS, THRESHOLD, with_tests=False)
    truth = {b.variable: b.counts for b in baseline_table(frame, report.groups, with_tests=False).blocks}
    assert all(n >= THRESHOLD for n in report.group_sizes)
    assert not set(report.groups) & {r.subject for r in report.refused}
    by_variable: dict[str, list[BaselineRow]] = {}
    for row in report.rows:
        by_variable.setdefault(row.variable, []).append(row)
    for rows in by_variable.values():
        k, g = len(rows), len(report.groups)
        index = {(i, j): i * g + j for i in range(k) for j in range(g)}
        equalities: list[tuple[list[int], int]] = []
        for j, size in enumerate(report.group_sizes):
            equalities.append(([index[i, j] for i in range(k)], size))
        for i, row in enumerate(rows):
            if row.total is not None:
                equalities.append(([index[i, j] for j in range(g)], row.total))
            for j, count in enumerate(row.counts):
                assert count is None or not 0 < count < THRESHOLD
                if count is not None:
                    equalities.append(([index[i, j]], count))
        counts = truth[rows[0].variable]
        for i, row in enumerate(rows):
            if 0 < sum(counts[i]) < THRESHOLD:
                assert row.total is None
                assert _range(k * g, equalities, [index[i, j] for j in range(g)]) >= 1 - 1e-6
            for j in range(g):
                if 0 < counts[i][j] < THRESHOLD:
                    assert row.counts[j] is None
                    assert _range(k * g, equalities, [index[i, j]]) >= 1 - 1e-6, (row.variable, i, j)
                else:
                    assert row.counts[j] in (None, counts[i][j])


@settings(max_examples=15, deadline=None)
@given(small_cohorts())
def test_no_suppressed_count_is_recoverable_from_dr_by_first_evaluation(frame: pd.DataFrame) -> None:
    """The response summary's DR-by-first-evaluation part: DR and non-DR patients per category,
    with the category sizes, the DR total and the cohort size as margins when shown."""
    report = response_report(frame, THRESHOLD)
    cats = [p.name for p in report.dr_by_first_evaluation]
    first = {c.label: c.count for c in report.first_evaluation}
    groups = {c.label: c.count for c in report.groups}
    index = {(c, dr): 2 * i + dr for i, c in enumerate(cats) for dr in (0, 1)}
    n_vars = 2 * len(cats)
    equalities: list[tuple[list[int], int]] = []
    for prop in report.dr_by_first_evaluation:
        if prop.numerator is not None:
            equalities.append(([index[prop.name, 1]], prop.numerator))
        size = first[prop.name]
        if size is not None:
            equalities.append(([index[prop.name, 0], index[prop.name, 1]], size))
    dr_total = groups["DR"]
    if dr_total is not None:
        equalities.append(([index[c, 1] for c in cats], dr_total))
    if report.n is not None:
        equalities.append((list(range(n_vars)), report.n))
    truth = (frame["group"] == "DR").groupby(frame["first_evaluation"]).sum()
    for c in cats:
        dr_count = int(truth.get(c, 0))
        shown_count = next(p.numerator for p in report.dr_by_first_evaluation if p.name == c)
        if 0 < dr_count < THRESHOLD:
            assert shown_count is None
            assert _range(n_vars, equalities, [index[c, 1]]) >= 1 - 1e-6
        else:
            assert shown_count in (None, dr_count)
    for rate in report.rates:
        if rate.numerator is None or rate.denominator is None:
            assert rate.estimate is None
            assert rate.ci_low is None
