"""Response summaries of the seed study (Guan et al., Sci Rep 2024, Methods "Evaluation of efficacy").

- ORR = CR or PR; DCR = CR, PR or SD (NonCR-NonPD counts as SD). Two bases are reported: the RECIST
  1.1 best overall response (`bor`, confirmed by default: RECIST 1.1 section 4.6 for non-randomised
  studies) and the first radiographic evaluation (`first-evaluation`): the paper's 17.0 % / 83.1 %
  are first-evaluation figures (Fig. 1a: 30 and 147 of 177).
- DCB = CR, PR or SD lasting more than 6 months (engine `Endpoints.dcb`); patients censored before
  6 months without progression (dcb None) are left out of the denominator.
- Atypical, DR and PsPD rates over the cohort; DR by first-evaluation RECIST category (Fig. 1c: 4/29
  PR, 7/117 SD, 1/30 PD), by tumour group (Fig. 1d), by timepoint of detection (Fig. 1f) and by
  trigger (target / non-target / new lesion).
- 95 % CIs are exact Clopper-Pearson intervals (beta quantiles), two-sided.

Everything returned is counts (`numerator`/`denominator`), each with the sum of its patients'
record keys when the table has a `record_key` column (`keys`; zeros otherwise): `privacy` decides
what may be shown and perturbs it by those cell keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from scipy.stats import beta

from service.analytics.cohort import FIRST_EVALUATION, TUMOUR_GROUPS

BOR_CATEGORIES = ("CR", "PR", "SD", "PD", "NE")
_BOR_CATEGORY = {"CR": "CR", "PR": "PR", "SD": "SD", "NonCR-NonPD": "SD", "PD": "PD"}
DR_TRIGGERS = ("target-lesion", "non-target-lesion", "new-lesion")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial CI (Clopper & Pearson 1934): beta quantiles, 0 and 1 at the edges."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


@dataclass(frozen=True, slots=True)
class Proportion:
    """`numerator` of `denominator` patients, with the exact 95 % CI (None when the denominator is 0)."""

    name: str
    numerator: int
    denominator: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


def proportion(name: str, k: int, n: int) -> Proportion:
    if n == 0:
        return Proportion(name, k, n, None, None, None)
    low, high = clopper_pearson(k, n)
    return Proportion(name, k, n, k / n, low, high)


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """Counts of patients per category (the base cells of a response table)."""

    name: str
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    keys: tuple[int, ...]  # sum of the record keys of each category's patients

    @property
    def total(self) -> int:
        return sum(self.counts)

    def count(self, *categories: str) -> int:
        return sum(c for k, c in zip(self.categories, self.counts, strict=True) if k in categories)


@dataclass(frozen=True, slots=True)
class DrBreakdown:
    """DR among the patients of each category: `dr[i]` of `totals[i]` (Fig. 1c/1d)."""

    name: str
    categories: tuple[str, ...]
    dr: tuple[int, ...]
    totals: tuple[int, ...]
    dr_keys: tuple[int, ...]
    total_keys: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ResponseSummary:
    n: int
    n_keys: int
    bor: CategoryCounts
    first_evaluation: CategoryCounts
    dcb_evaluable: int
    dcb: int
    dcb_evaluable_keys: int
    dcb_keys: int
    groups: CategoryCounts
    dr_by_first_evaluation: DrBreakdown
    dr_by_tumour_group: DrBreakdown
    dr_by_timepoint: CategoryCounts
    dr_by_trigger: CategoryCounts

    def rates(self) -> tuple[Proportion, ...]:
        """ORR, DCR (both bases), DCB, atypical, DR and PsPD rates with exact CIs."""
        n = self.n
        b, f, g = self.bor, self.first_evaluation, self.groups
        return (
            proportion("orr", b.count("CR", "PR"), n),
            proportion("dcr", b.count("CR", "PR", "SD"), n),
            proportion("orr_first_evaluation", f.count("CR", "PR"), n),
            proportion("dcr_first_evaluation", f.count("CR", "PR", "SD"), n),
            proportion("dcb", self.dcb, self.dcb_evaluable),
            proportion("atypical", g.count("DR", "PsPD"), n),
            proportion("dr", g.count("DR"), n),
            proportion("pspd", g.count("PsPD"), n),
        )


def record_keys(frame: pd.DataFrame) -> pd.Series:
    """The record key of each row (`record_key` column; zeros when the table has none)."""
    if "record_key" in frame:
        return frame["record_key"].astype("int64")
    return pd.Series(0, index=frame.index, dtype="int64")


def _counts(name: str, values: pd.Series, categories: Sequence[str], keys: pd.Series) -> CategoryCounts:
    tally = values.value_counts()
    key_sums = keys.loc[values.index].groupby(values.to_numpy()).sum()
    return CategoryCounts(
        name,
        tuple(categories),
        tuple(int(tally.get(c, 0)) for c in categories),
        tuple(int(key_sums.get(c, 0)) for c in categories),
    )


def _dr_breakdown(name: str, frame: pd.DataFrame, column: str, categories: Sequence[str]) -> DrBreakdown:
    is_dr = frame["group"] == "DR"
    keys = record_keys(frame)
    totals = frame[column].value_counts()
    drs = frame.loc[is_dr, column].value_counts()
    total_keys = keys.groupby(frame[column].to_numpy()).sum()
    dr_keys = keys[is_dr].groupby(frame.loc[is_dr, column].to_numpy()).sum()
    return DrBreakdown(
        name,
        tuple(categories),
        tuple(int(drs.get(c, 0)) for c in categories),
        tuple(int(totals.get(c, 0)) for c in categories),
        tuple(int(dr_keys.get(c, 0)) for c in categories),
        tuple(int(total_keys.get(c, 0)) for c in categories),
    )


def response_summary(frame: pd.DataFrame, *, confirmed: bool = True) -> ResponseSummary:
    """Response summary of a cohort (module docstring). `confirmed` picks the BOR basis."""
    bor_column = "bor_confirmed" if confirmed else "bor"
    bor = frame[bor_column].map(lambda v: _BOR_CATEGORY.get(v, "NE"))
    first = frame["first_evaluation"].fillna("NE")
    dcb = frame["dcb"].dropna()
    dcb_yes = dcb.astype(bool)
    keys = record_keys(frame)
    dr = frame[frame["group"] == "DR"]
    timepoints = sorted({int(t) for t in dr["dr_timepoint"].dropna()})
    return ResponseSummary(
        n=len(frame),
        n_keys=int(keys.sum()),
        bor=_counts("bor", bor, BOR_CATEGORIES, keys),
        first_evaluation=_counts("first_evaluation", first, FIRST_EVALUATION, keys),
        dcb_evaluable=len(dcb),
        dcb=int(dcb_yes.sum()),
        dcb_evaluable_keys=int(keys.loc[dcb.index].sum()),
        dcb_keys=int(keys.loc[dcb_yes.index[dcb_yes.to_numpy()]].sum()),
        groups=_counts("group", frame["group"], ("DR", "PsPD", "CR-PR", "SD", "PD", "NE"), keys),
        dr_by_first_evaluation=_dr_breakdown(
            "dr_by_first_evaluation", frame.assign(fe=first), "fe", ("CR", "PR", "SD", "PD")
        ),
        dr_by_tumour_group=_dr_breakdown("dr_by_tumour_group", frame, "tumour_group", TUMOUR_GROUPS),
        dr_by_timepoint=_counts(
            "dr_by_timepoint",
            dr["dr_timepoint"].dropna().astype(int).astype(str),
            [str(t) for t in timepoints],
            keys,
        ),
        dr_by_trigger=_counts("dr_by_trigger", dr["dr_trigger"].dropna(), DR_TRIGGERS, keys),
    )
