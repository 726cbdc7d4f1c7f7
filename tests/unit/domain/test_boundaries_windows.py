"""Day windows of the timeline and the endpoints at, one day inside and one day outside each edge.

- One timepoint = scans within 7 days of the group's earliest scan (FHIR contract section 1;
  RECIST 1.1 section 4.1 allows a few days between the studies of one assessment).
- Baseline = latest imaging on or before treatment start, at most 28 days before it (RECIST 1.1
  section 3.2: "as close as possible to the treatment start and never more than 4 weeks before").
- Pre-baseline scan for hyperprogression: at most 12 weeks (84 days) before baseline (Champiat et
  al., Clin Cancer Res 2017: the pre-treatment tumour growth rate).
- Durable clinical benefit: CR/PR/SD lasting MORE than 6 months (Rizvi et al., Science 2015), here
  183 days; blood ratios before treatment from the 28 days up to and including the start day.
docs/rules/boundaries.md lists them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.engine import assess
from service.domain.model import LabKind
from service.domain.parameters import AssessmentParameters
from service.domain.results import Endpoints
from service.domain.timeline import NoBaseline, TimelineView, build_view

from .builders import AS_OF, TimelineBuilder

PARAMS = AssessmentParameters()


def view_of(b: TimelineBuilder) -> TimelineView | NoBaseline:
    return build_view(b.build(), PARAMS, as_of=AS_OF)


def test_the_defaults_are_the_documented_windows() -> None:
    assert (
        PARAMS.timepoint_window_days,
        PARAMS.baseline_window_days,
        PARAMS.pre_baseline_window_days,
        PARAMS.dcb_days,
    ) == (7, 28, 84, 183)


@pytest.mark.parametrize(("second_scan", "follow_ups"), [(62, 1), (63, 1), (64, 2)])
def test_scans_within_7_days_form_one_timepoint(second_scan: int, follow_ups: int) -> None:
    b = TimelineBuilder().target("A", "liver").target("C", "lung").scan(-7, {"A": 30, "C": 20})
    b.scan(56, {"A": 30}).scan(second_scan, {"C": 20})
    view = view_of(b)
    assert isinstance(view, TimelineView)
    assert len(view.follow_ups) == follow_ups
    assert view.follow_ups[0].day == b.day(56)  # dated by the group's earliest scan


@pytest.mark.parametrize(("scan_day", "has_baseline"), [(-29, False), (-28, True), (0, True), (1, False)])
def test_baseline_at_most_28_days_before_start_and_not_after(scan_day: int, has_baseline: bool) -> None:
    b = TimelineBuilder().target("A", "liver").scan(scan_day, {"A": 30}).scan(56, {"A": 30})
    view = view_of(b)
    assert isinstance(view, TimelineView) is has_baseline
    if isinstance(view, TimelineView):
        assert view.baseline.day == b.day(scan_day)


@pytest.mark.parametrize(("earlier_day", "has_pre_baseline"), [(-91, True), (-92, False)])
def test_pre_baseline_at_most_84_days_before_baseline(earlier_day: int, has_pre_baseline: bool) -> None:
    b = TimelineBuilder().target("A", "liver").scan(earlier_day, {"A": 20}).scan(-7, {"A": 30})
    view = view_of(b.scan(56, {"A": 30}))
    assert isinstance(view, TimelineView)
    assert (view.pre_baseline is not None) is has_pre_baseline


def endpoints(b: TimelineBuilder) -> Endpoints:
    return assess(b.build(), as_of=AS_OF).endpoints


@pytest.mark.parametrize(("pd_day", "dcb"), [(183, False), (184, True)])
def test_durable_clinical_benefit_needs_more_than_183_days_without_progression(
    pd_day: int, dcb: bool
) -> None:
    # SD at days 56 and 120, PD (+40 %) on `pd_day`: PFS = pd_day days.
    b = TimelineBuilder().target("A", "liver").scan(-7, {"A": 50}).scan(56, {"A": 50}).scan(120, {"A": 50})
    result = endpoints(b.scan(pd_day, {"A": 70}))
    assert (result.pfs_days, result.pfs_event, result.dcb) == (pd_day, True, dcb)


@pytest.mark.parametrize(("last_day", "dcb"), [(183, None), (184, True)])
def test_durable_clinical_benefit_unknown_while_censored_within_183_days(
    last_day: int, dcb: bool | None
) -> None:
    b = TimelineBuilder().target("A", "liver").scan(-7, {"A": 50}).scan(56, {"A": 50})
    result = endpoints(b.scan(last_day, {"A": 50}))
    assert (result.pfs_days, result.pfs_event, result.dcb) == (last_day, False, dcb)


def with_labs(day: int) -> TimelineBuilder:
    b = TimelineBuilder().target("A", "liver").scan(-7, {"A": 50}).scan(56, {"A": 50})
    return b.lab(LabKind.NEUTROPHILS, day, 6).lab(LabKind.LYMPHOCYTES, day, 2)


@pytest.mark.parametrize(
    ("lab_day", "pre", "post"),
    [(-29, None, None), (-28, Decimal(3), None), (0, Decimal(3), None), (1, None, Decimal(3))],
)
def test_pre_treatment_nlr_from_the_28_days_up_to_the_start_day(
    lab_day: int, pre: Decimal | None, post: Decimal | None
) -> None:
    result = endpoints(with_labs(lab_day))
    assert (result.nlr_pre, result.nlr_post) == (pre, post)
