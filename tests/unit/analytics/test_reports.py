"""Portal reports: groups under the minimum size are refused with a reason, curves are cut."""

from __future__ import annotations

import pytest

from service.analytics.reports import (
    RefusedAnalysis,
    baseline_report,
    cox_report,
    predictor_report,
    survival_report,
)

from .frames import result, seed_study_response_results, table

THRESHOLD = 11


def _cohort() -> list[dict[str, object]]:
    rows = [
        result(group="SD", os_=(100 + 10 * i, i % 3 == 0), sex="male" if i % 2 else "female")
        for i in range(40)
    ]
    rows += [result(group="PD", os_=(20 + 5 * i, True), sex="male" if i % 2 else "female") for i in range(20)]
    rows += [result(group="PsPD", os_=(300 + i, False)) for i in range(7)]  # Guan 2024: 7 PsPD patients
    return rows


def test_survival_refuses_small_groups_and_keeps_them_out_of_the_tests() -> None:
    report = survival_report(table(_cohort()), "os", THRESHOLD)
    assert [r.subject for r in report.refused] == ["PsPD"]
    assert "fewer than 11" in report.refused[0].reason
    assert {c.group for c in report.curves} == {"PD", "SD"}
    assert report.overall is not None
    assert set(report.overall.groups) == {"PD", "SD"}


def test_curves_stop_before_fewer_than_threshold_remain_at_risk() -> None:
    report = survival_report(table(_cohort()), "os", THRESHOLD)
    pd_curve = next(c for c in report.curves if c.group == "PD")
    # PD deaths at days 20, 25, ..., 115: 10 remain at risk from day 70 on, so day 70 is cut.
    assert pd_curve.cut_at_day == 70
    assert max(p.day for p in pd_curve.points) < 70
    assert all(row.at_risk >= THRESHOLD for row in report.risk_table)
    # the PD median (day 65: S = 10/20 after the 10th death) lies before the cut and is shown
    assert pd_curve.median_days == 65


def test_lower_threshold_of_an_approved_study_shows_the_small_group() -> None:
    report = survival_report(table(_cohort()), "os", 1)
    assert report.refused == ()
    assert {c.group for c in report.curves} == {"PD", "PsPD", "SD"}


def test_cox_refuses_a_covariate_level_under_the_threshold() -> None:
    with pytest.raises(RefusedAnalysis, match="group=PsPD"):
        cox_report(table(_cohort()), "os", ["group", "sex"], THRESHOLD)
    model = cox_report(table(_cohort()), "os", ["group", "sex"], 1)
    assert model.multivariable is not None
    terms = {t.name: t for t in model.multivariable.terms}
    # PsPD patients here never die: the likelihood keeps rising as its HR -> 0, no finite estimate.
    assert not terms["group=PsPD"].estimable
    assert terms["group=PsPD"].hr is None
    assert terms["group=PD"].estimable
    assert terms["group=PD"].hr is not None
    assert terms["group=PD"].hr > 1  # PD patients die earlier than SD (the reference) in this cohort
    assert [t.name for t in model.multivariable.terms] == [
        "group=PD",
        "group=PsPD",
        "sex=female",
    ]  # reference: the most frequent level


def test_logistic_model_of_pspd_is_refused_with_seven_patients() -> None:
    frame = table(seed_study_response_results())
    with pytest.raises(RefusedAnalysis, match="PsPD has fewer than 11"):
        predictor_report(frame, "PsPD", THRESHOLD, predictors=["sex"])


def test_table1_leaves_out_groups_under_the_threshold_with_a_reason() -> None:
    report = baseline_report(
        table(seed_study_response_results()), ["DR", "PsPD", "CR-PR", "SD", "PD"], THRESHOLD
    )
    assert report.groups == ("DR", "CR-PR", "SD", "PD")
    assert report.group_sizes == (12, 25, 103, 30)
    assert [r.subject for r in report.refused] == ["PsPD"]
    assert report.n == 170
