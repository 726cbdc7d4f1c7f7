"""The thresholds drawn on the sum-of-diameters plot are RECIST 1.1's (section 4.3.1).

PR: at least a 30 % decrease of the sum from baseline. PD: at least a 20 % increase over the
smallest sum so far (nadir) and at least 5 mm in absolute terms; for small nadirs the 5 mm
dominates (nadir 20 mm: 20 % is 4 mm, so PD starts at 25 mm, not 24 mm).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.application.worksheet import pd_threshold_mm, pr_threshold_mm


@pytest.mark.parametrize(
    ("baseline", "threshold"),
    [(Decimal(100), Decimal(70)), (Decimal("112.5"), Decimal("78.75")), (Decimal(10), Decimal(7))],
)
def test_pr_threshold_is_30_percent_below_baseline(baseline: Decimal, threshold: Decimal) -> None:
    assert pr_threshold_mm(baseline) == threshold


@pytest.mark.parametrize(
    ("nadir", "threshold"),
    [
        (Decimal(100), Decimal(120)),  # 20 % = 20 mm > 5 mm
        (Decimal(25), Decimal(30)),  # 20 % = 5 mm exactly: both rules agree
        (Decimal(20), Decimal(25)),  # 20 % = 4 mm < 5 mm: the absolute rule decides
        (Decimal(0), Decimal(5)),  # all targets gone at the nadir: 5 mm of regrowth
    ],
)
def test_pd_threshold_is_20_percent_and_at_least_5_mm_over_nadir(nadir: Decimal, threshold: Decimal) -> None:
    assert pd_threshold_mm(nadir) == threshold


def test_no_sum_no_threshold() -> None:
    assert pr_threshold_mm(None) is None
    assert pd_threshold_mm(None) is None
