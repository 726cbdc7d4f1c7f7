"""The worksheet lays out RECIST 1.1 / iRECIST as a radiologist's worksheet, from the engine's result.

Hand-worked case (RECIST 1.1, Eisenhauer et al. 2009): a liver target of 40 mm and a lymph-node
target of 18 mm short axis (25 mm long axis, which RECIST ignores for nodes, section 3.1.1) give a
baseline sum of 58 mm. At scan 1 the node is not measured: the target response is NE (section
4.3.1: all targets must be measured), and the sheet says which lesion was missing. At scan 2 the sum is
20 + 12 = 32 mm, -44.83 % from baseline, but a new bone lesion appears: PD (section 4.3.2, table 1)
and iUPD under iRECIST (Seymour et al. 2017), and the new lesion is marked on that scan only.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from service.application.worksheet import Worksheet, worksheet_of
from service.domain.engine import assess
from service.domain.model import (
    Lesion,
    LesionMeasurement,
    LesionRole,
    NonTargetAssessment,
    NonTargetState,
    PatientTimeline,
    Scan,
)
from service.domain.parameters import AssessmentParameters

TIMELINE = PatientTimeline(
    patient_id="p1",
    treatment_start=date(2024, 1, 10),
    lesions=(
        Lesion("L1", "liver", False, LesionRole.TARGET),
        Lesion("L2", "lymph-node", True, LesionRole.TARGET),
        Lesion("L3", "bone", False, LesionRole.NEW_NON_TARGET),
    ),
    scans=(
        Scan(
            date(2024, 1, 5),
            (LesionMeasurement("L1", Decimal(40)), LesionMeasurement("L2", Decimal(25), Decimal(18))),
        ),
        Scan(date(2024, 3, 5), (LesionMeasurement("L1", Decimal(30)),)),
        Scan(
            date(2024, 5, 5),
            (LesionMeasurement("L1", Decimal(20)), LesionMeasurement("L2", Decimal(20), Decimal(12))),
            (NonTargetAssessment("L3", NonTargetState.PRESENT),),
        ),
    ),
    ici_administration_dates=(date(2024, 1, 10), date(2024, 1, 31)),
)


def sheet() -> Worksheet:
    return worksheet_of(TIMELINE, assess(TIMELINE, AssessmentParameters(), as_of=date(2024, 6, 1)))


def test_baseline_row_sums_the_node_short_axis_not_its_long_axis() -> None:
    baseline = sheet().rows[0]
    assert baseline.index == 0
    assert baseline.sum_mm == Decimal(58)
    assert [c.diameter_mm for c in baseline.cells[:2]] == [Decimal(40), Decimal(18)]
    assert baseline.recist is None
    assert [les.axis for les in sheet().lesions] == ["long", "short", "long"]


def test_unmeasured_target_makes_the_scan_ne_and_says_which_lesion() -> None:
    scan1 = sheet().rows[1]
    assert scan1.recist == "NE"
    assert scan1.irecist == "NE"
    reasons = {trace.rule: dict(trace.facts) for trace in scan1.not_evaluable_because}
    assert reasons["recist1.1/target/ne-not-all-measured"]["missing"] == "L2"


def test_new_lesion_is_pd_despite_shrinking_targets_and_is_marked_once() -> None:
    rows = sheet().rows
    assert rows[2].sum_mm == Decimal(32)
    assert rows[2].change_from_baseline_pct == Decimal("-44.83")
    assert rows[2].recist == "PD"
    assert rows[2].irecist == "iUPD"
    assert [row.new_lesions for row in rows] == [(), (), ("L3",)]
    assert rows[2].not_evaluable_because == ()


def test_treatment_timeline_has_the_ici_start_then_the_doses() -> None:
    kinds = [(event.on, event.kind) for event in sheet().treatments]
    assert kinds == [(date(2024, 1, 10), "ici-start"), (date(2024, 1, 31), "ici-dose")]
