"""Timepoints, baseline and lesion categories (FHIR contract section 1; RECIST 1.1 section 3)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from service.domain.engine import assess
from service.domain.model import LabKind, LesionRole
from service.domain.parameters import AssessmentParameters
from service.domain.results import LesionStatus, Response, ResponseGroup
from service.domain.timeline import Category, NoBaseline, TimelineView, build_view

from .builders import AS_OF, TimelineBuilder, single_target


def view_of(b: TimelineBuilder, as_of: date = AS_OF) -> TimelineView:
    view = build_view(b.build(), AssessmentParameters(), as_of=as_of)
    assert isinstance(view, TimelineView)
    return view


def test_scans_within_window_form_one_timepoint_dated_by_earliest() -> None:
    # Contract section 1: studies within timepoint_window_days (7) form one timepoint.
    b = TimelineBuilder().target("A").target("B", "liver")
    b.scan(-5, {"A": 20}).scan(-1, {"B": 30}).scan(60, {"A": 10}).scan(67, {"B": 15})
    view = view_of(b)
    assert view.baseline.day == b.day(-5)
    assert [tp.day for tp in view.follow_ups] == [b.day(60)]
    assert view.follow_ups[0].reading("B").value_mm == Decimal(15)


def test_scan_eight_days_later_starts_a_new_timepoint() -> None:
    b = TimelineBuilder().target("A").scan(-3, {"A": 20}).scan(60, {"A": 10}).scan(68, {"A": 10})
    assert len(view_of(b).follow_ups) == 2


def test_baseline_is_latest_timepoint_on_or_before_start_within_window() -> None:
    b = TimelineBuilder().target("A")
    b.scan(-60, {"A": 15}).scan(-20, {"A": 20}).scan(0, {"A": 22}).scan(56, {"A": 10})
    view = view_of(b)
    assert view.baseline.day == b.day(0)  # treatment-start day counts as "on or before"
    assert view.pre_baseline is not None
    assert view.pre_baseline.day == b.day(-20)


def test_pre_baseline_must_be_within_84_days_of_baseline() -> None:
    b = TimelineBuilder().target("A").scan(-100, {"A": 15}).scan(-7, {"A": 20}).scan(56, {"A": 10})
    assert view_of(b).pre_baseline is None


def test_no_baseline_gives_ne_group_and_data_issue() -> None:
    # Baseline window 28 days (contract section 1); a scan 30 days before start is too old.
    b = TimelineBuilder().target("A").scan(-30, {"A": 20}).scan(56, {"A": 10}).death(300)
    b.lab(LabKind.NEUTROPHILS, -3, 6).lab(LabKind.LYMPHOCYTES, -3, 2)
    result = assess(b.build(), as_of=AS_OF)
    assert result.response_group is ResponseGroup.NE
    assert [i.code for i in result.issues] == ["no-baseline"]
    assert result.timepoints == ()
    assert result.best_response is None
    assert result.endpoints.os_days == 300
    assert result.endpoints.os_event is True
    assert result.endpoints.nlr_pre == Decimal("3.00")
    assert isinstance(build_view(b.build(), AssessmentParameters(), as_of=AS_OF), NoBaseline)


def test_timepoints_after_as_of_are_ignored() -> None:
    tl = single_target(50, 40, 80)  # follow-ups at days 56 and 112
    result = assess(tl, as_of=date(2024, 3, 31))
    assert [t.index for t in result.timepoints] == [1]
    assert result.best_response is not None
    assert result.best_response.response is Response.SD


def test_baseline_is_not_emitted_and_index_1_is_first_evaluation() -> None:
    result = assess(single_target(50, 40, 30), as_of=AS_OF)
    assert [t.index for t in result.timepoints] == [1, 2]
    assert {lr.timepoint_index for lr in result.lesions} == {1, 2}


def test_auto_selection_largest_measurable_five_total_two_per_organ_nodes_one_organ() -> None:
    # RECIST 1.1 section 3.3: <= 5 targets, <= 2 per organ, all nodes one organ; node SA >= 15 mm.
    b = TimelineBuilder()
    for lid, organ in [("L1", "lung"), ("L2", "lung"), ("L3", "lung"), ("H1", "liver"), ("H2", "liver")]:
        b.lesion(lid, organ)
    b.lesion("N1", node=True).lesion("N2", node=True).lesion("N3", node=True).lesion("S1", "skin")
    b.scan(
        -7,
        {"L1": 40, "L2": 30, "L3": 50, "H1": 9, "H2": 25, "N1": 14, "N2": 22, "N3": 16, "S1": 12},
    )
    b.scan(56, {"L1": 40})
    view = view_of(b)
    # L3, L1 (lung, 2 max), H2 (H1 9 mm not measurable), N2, N3 (N1 14 mm SA not measurable): 5 total.
    assert {t.lesion_id for t in view.targets} == {"L3", "L1", "H2", "N2", "N3"}
    assert {t.lesion_id for t in view.non_targets} == {"L2", "H1", "N1", "S1"}
    assert set(view.auto_selected_targets) == {"L3", "L1", "H2", "N2", "N3"}


def test_declared_targets_count_towards_auto_selection_limits() -> None:
    b = TimelineBuilder().target("L1", "lung").target("L2", "lung").lesion("L3", "lung").lesion("H1", "liver")
    b.scan(-7, {"L1": 20, "L2": 20, "L3": 60, "H1": 15})
    view = view_of(b)
    assert [t.lesion_id for t in view.targets] == ["H1", "L1", "L2"]
    assert view.auto_selected_targets == ("H1",)


def test_lesion_first_seen_after_baseline_is_new_whatever_its_role() -> None:
    # Contract section 1: "A lesion first seen after baseline is a new lesion, whatever its role says."
    b = TimelineBuilder().target("A").target("X", "liver")
    b.scan(-7, {"A": 30}).scan(56, {"A": 20, "X": 15})
    view = view_of(b)
    assert [t.lesion_id for t in view.new_lesions] == ["X"]
    assert view.new_lesions[0].category is Category.NEW_TARGET
    result = assess(b.build(), as_of=AS_OF)
    assert result.timepoints[0].new_lesion
    assert result.timepoints[0].overall is Response.PD
    x = next(lr for lr in result.lesions if lr.lesion_id == "X")
    assert x.status is LesionStatus.NEW
    assert not x.is_target


def test_fragments_of_one_lesion_are_added() -> None:
    # RECIST 1.1 guideline "Lesions that split" / worked case W15: A 40 -> fragments 15 + 12 = 27.
    b = TimelineBuilder().target("A").target("B", "liver")
    b.scan(-7, {"A": 40, "B": 25}).scan(56, {"A": (15, 12), "B": 20})
    result = assess(b.build(), as_of=AS_OF)
    tp = result.timepoints[0]
    assert tp.sum_mm == Decimal(47)
    assert tp.change_from_baseline_pct == Decimal("-27.69")
    assert tp.target is Response.SD  # W15: SD (-27.7 %)


def test_coalesced_lesions_one_takes_the_mass_other_zero() -> None:
    # Reference W15 (alt): C 20 + D 18 = 38 -> inseparable mass 35 assigned to C, D = 0 => SD (-7.9 %).
    b = TimelineBuilder().target("C").target("D", "liver").scan(-7, {"C": 20, "D": 18})
    b.scan(56, {"C": 35, "D": "disappeared"})
    tp = assess(b.build(), as_of=AS_OF).timepoints[0]
    assert tp.sum_mm == Decimal(35)
    assert tp.target is Response.SD
    assert tp.change_from_baseline_pct == Decimal("-7.89")


def test_equivocal_new_node_counts_only_when_next_scan_confirms_and_is_back_dated() -> None:
    # Reference W16 / recist.eortc.org FAQ "New lymph node lesions": new node SA 11 mm as sole change.
    b = TimelineBuilder().target("A").lesion("N", node=True)
    b.scan(-7, {"A": 30}).scan(56, {"A": 30, "N": 11})
    open_case = assess(b.build(), as_of=AS_OF)
    assert open_case.timepoints[0].overall is Response.SD
    assert "equivocal-new-lesion" in {i.code for i in open_case.issues}
    b.scan(112, {"A": 30, "N": 12})
    confirmed = assess(b.build(), as_of=AS_OF)
    assert confirmed.timepoints[0].overall is Response.PD  # PD dated at the first scan
    assert confirmed.endpoints.pfs_days == 56


def test_equivocal_new_node_that_regresses_is_never_new() -> None:
    b = TimelineBuilder().target("A").lesion("N", node=True)
    b.scan(-7, {"A": 30}).scan(56, {"A": 30, "N": 11}).scan(112, {"A": 30, "N": 8})
    result = assess(b.build(), as_of=AS_OF)
    assert [t.overall for t in result.timepoints] == [Response.SD, Response.SD]


def test_new_node_short_axis_15_mm_is_new_at_once() -> None:
    b = TimelineBuilder().target("A").lesion("N", node=True)
    b.scan(-7, {"A": 30}).scan(56, {"A": 30, "N": 15})
    assert assess(b.build(), as_of=AS_OF).timepoints[0].overall is Response.PD


def test_unknown_lesion_is_reported_not_fatal() -> None:
    b = TimelineBuilder().target("A").scan(-7, {"A": 30}).scan(56, {"A": 20, "ghost": 10})
    result = assess(b.build(), as_of=AS_OF)
    assert "unknown-lesion" in {i.code for i in result.issues}
    assert result.timepoints[0].overall is Response.PR


def test_declared_non_target_role_is_kept() -> None:
    b = TimelineBuilder().target("A").lesion("B", "liver", role=LesionRole.NON_TARGET)
    b.scan(-7, {"A": 30, "B": 40}).scan(56, {"A": 20, "B": 40})
    view = view_of(b)
    assert [t.lesion_id for t in view.non_targets] == ["B"]
    assert view.auto_selected_targets == ()
