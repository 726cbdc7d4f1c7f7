"""Inbound mapping (docs/fhir-contract.md section 1) on the hand-written fixture `patient-nsclc-pembrolizumab.json`.

Fixture facts used below: ICI pembrolizumab (ATC L01FF02) first given 2024-03-04T09:30+01:00,
carboplatin (L01XA02) the same day, line-of-therapy extension 2; baseline CT 2024-02-26,
follow-up CT 2024-04-29; L1 lung 2.34 cm at baseline and too-small at follow-up; L2 a node by
location only (SNOMED 59441001), short axis 16 mm then 0.9 cm; L3 non-target; L4 first seen at
follow-up with a declared role `target`; last encounter 2024-05-10.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.inbound import (
    InboundMapping,
    group_bundle_by_patient,
    parse_fhir_date,
    patient_input,
)
from service.domain.model import (
    IciClass,
    LabKind,
    LesionRole,
    MeasurementFlag,
    NonTargetState,
    PatientTimeline,
    TumourType,
)
from tests.unit.fhir.conftest import by_id, patient_resources

Resources = list[dict[str, Any]]


def timeline_of(resources: Resources) -> PatientTimeline:
    result = patient_input("p1", resources)
    assert result.timeline is not None, result.issues
    return result.timeline


def measurement(tl: PatientTimeline, ref: str) -> Any:
    return next(m for s in tl.scans for m in s.measurements if m.ref == ref)


def scan_of(tl: PatientTimeline, ref: str) -> Any:
    return next(s for s in tl.scans if any(m.ref == ref for m in s.measurements))


def medication(
    rid: str, atc: str | None, on: str, *, text: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": codes.ATC, "code": atc}]} if atc else {}
    if text:
        concept["text"] = text
    return {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
        "effectiveDateTime": on,
    }


def without(resources: Resources, *ids: str) -> Resources:
    return [r for r in resources if r["id"] not in ids]


# --- dates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", date(2024, 1, 1)),  # partial year: first day of the period
        ("2024-03", date(2024, 3, 1)),  # partial month
        ("2024-03-15", date(2024, 3, 15)),
        ("2024-03-15T23:30:00-05:00", date(2024, 3, 15)),  # local date as written, UTC would be 03-16
        ("2024-03-15T00:30:00+02:00", date(2024, 3, 15)),  # UTC would be 03-14
        ("2024-03-15T10:00:00.123456789Z", date(2024, 3, 15)),  # nanosecond instant
        (date(2024, 3, 15), date(2024, 3, 15)),  # what fhir.resources yields for `date`
        (datetime(2024, 3, 15, 23, 30, tzinfo=timezone(timedelta(hours=-5))), date(2024, 3, 15)),
    ],
)
def test_every_fhir_date_shape_gives_its_calendar_date(value: object, expected: date) -> None:
    assert parse_fhir_date(value) == expected


@pytest.mark.parametrize("value", ["2024-13", "15/03/2024", "2024-02-30", "", 20240315, None])
def test_invalid_dates_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):  # ValueError is the contract of parse_fhir_date
        parse_fhir_date(value)


# --- measurements -----------------------------------------------------------------------------------
def test_centimetres_become_exact_decimal_millimetres(resources: Resources) -> None:
    tl = timeline_of(resources)
    assert measurement(tl, "Observation/m1").long_axis_mm == Decimal("23.4")  # 2.34 cm, no float drift
    assert measurement(tl, "Observation/m4").short_axis_mm == Decimal("9")  # 0.9 cm short axis
    assert measurement(tl, "Observation/m2").short_axis_mm == Decimal("16")
    assert isinstance(measurement(tl, "Observation/m1").long_axis_mm, Decimal)


def test_too_small_interpretation_is_a_flag_not_a_value(resources: Resources) -> None:
    m3 = measurement(timeline_of(resources), "Observation/m3")
    assert m3.flag is MeasurementFlag.TOO_SMALL
    assert m3.long_axis_mm is None  # the engine values it at 5 mm (RECIST 1.1 "too small to measure")


def test_disappeared_interpretation(resources: Resources) -> None:
    m3 = by_id(resources, "m3")
    m3["interpretation"][0]["coding"][0]["code"] = "disappeared"
    assert measurement(timeline_of(resources), "Observation/m3").flag is MeasurementFlag.DISAPPEARED


def test_unconvertible_unit_is_an_issue_and_the_rest_is_kept(resources: Resources) -> None:
    quantity = by_id(resources, "m1")["component"][0]["valueQuantity"]
    quantity.update({"unit": "[in_i]", "code": "[in_i]"})
    result = patient_input("p1", resources)
    assert result.timeline is not None
    assert [(i.code, i.ref) for i in result.issues if i.severity == "error"] == [
        ("unit-not-convertible", "Observation/m1")
    ]
    refs = {m.ref for s in result.timeline.scans for m in s.measurements}
    assert refs == {"Observation/m2", "Observation/m3", "Observation/m4", "Observation/m5"}


def test_malformed_resource_is_an_issue_and_the_rest_is_kept(resources: Resources) -> None:
    by_id(resources, "m2")["component"] = "22 mm"  # not a list: fails to parse
    resources.append("not a resource")  # type: ignore[arg-type]
    result = patient_input("p1", resources)
    assert result.timeline is not None
    errors = {(i.code, i.ref) for i in result.issues if i.severity == "error"}
    last = f"resource[{len(resources) - 1}]"
    assert errors == {("malformed-resource", "Observation/m2"), ("malformed-resource", last)}
    assert len([m for s in result.timeline.scans for m in s.measurements]) == 4


def test_measurement_without_derived_from_joins_the_study_of_its_date(resources: Resources) -> None:
    # m4 has no derivedFrom; its date-time 2024-04-29T08:20Z falls on the day of ImagingStudy/is2.
    assert scan_of(timeline_of(resources), "Observation/m4").ref == "ImagingStudy/is2"


def test_measurement_without_any_study_keeps_its_own_date(resources: Resources) -> None:
    m5 = by_id(resources, "m5")
    del m5["derivedFrom"]
    m5["effectiveDateTime"] = "2024-05-06"
    result = patient_input("p1", resources)
    assert result.timeline is not None
    scan = next(s for s in result.timeline.scans if any(m.ref == "Observation/m5" for m in s.measurements))
    assert (scan.study_date, scan.ref) == (date(2024, 5, 6), None)
    assert ("measurement-without-study", "Observation/m5") in {(i.code, i.ref) for i in result.issues}


def test_one_scan_per_imaging_study_including_pre_baseline(resources: Resources) -> None:
    tl = timeline_of(resources)
    assert [(s.study_date, s.ref) for s in tl.scans] == [
        (date(2023, 12, 20), "ImagingStudy/is0"),
        (date(2024, 2, 26), "ImagingStudy/is1"),
        (date(2024, 4, 29), "ImagingStudy/is2"),
    ]


@pytest.mark.parametrize("status", [{"code": "final"}, ["final"], 7])
def test_a_status_that_is_not_a_string_is_reported_never_raised(resources: Resources, status: object) -> None:
    # docs/architecture.md: statuses are whitelisted; a malformed one is bad data, not a crash.
    by_id(resources, "m2")["status"] = status
    result = patient_input("p1", resources)
    assert result.timeline is not None
    assert ("status-not-usable", "Observation/m2") in {(i.code, i.ref) for i in result.issues}
    assert "Observation/m2" not in {m.ref for s in result.timeline.scans for m in s.measurements}


def test_only_final_amended_corrected_observations_are_read(resources: Resources) -> None:
    # m6-draft (preliminary, 40 mm) must not become a second L1 reading on 2024-04-29 (docs/architecture.md 3).
    result = patient_input("p1", resources)
    assert result.timeline is not None
    refs = {m.ref for s in result.timeline.scans for m in s.measurements}
    assert "Observation/m6-draft" not in refs
    assert {"Observation/m3", "Observation/m5"} <= refs  # amended and corrected are read
    assert ("status-not-usable", "Observation/m6-draft") in {(i.code, i.ref) for i in result.issues}


def test_non_target_status_is_read_per_scan(resources: Resources) -> None:
    tl = timeline_of(resources)
    states = [(s.study_date, nt.lesion_id, nt.state) for s in tl.scans for nt in s.non_target]
    assert states == [
        (date(2024, 2, 26), "L3", NonTargetState.PRESENT),
        (date(2024, 4, 29), "L3", NonTargetState.ABSENT),
    ]


# --- lesions ----------------------------------------------------------------------------------------
def test_lymph_node_is_implied_by_location_59441001(resources: Resources) -> None:
    lesions = {les.lesion_id: les for les in timeline_of(resources).lesions}
    assert lesions["L2"].is_lymph_node  # no lymph-node extension, location SNOMED 59441001
    assert not lesions["L1"].is_lymph_node


def test_lymph_node_extension_marks_a_node_whatever_the_location(resources: Resources) -> None:
    by_id(resources, "bs3")["extension"].append({"url": codes.EXT_LYMPH_NODE, "valueBoolean": True})
    lesions = {les.lesion_id: les for les in timeline_of(resources).lesions}
    assert lesions["L3"].is_lymph_node


def test_roles_and_organs_come_from_the_body_structure(resources: Resources) -> None:
    lesions = {les.lesion_id: (les.organ, les.role, les.ref) for les in timeline_of(resources).lesions}
    assert lesions["L1"] == ("lung", LesionRole.TARGET, "BodyStructure/bs1")
    assert lesions["L3"] == ("liver", LesionRole.NON_TARGET, "BodyStructure/bs3")


def test_missing_role_is_left_to_the_engine_without_an_issue(resources: Resources) -> None:
    # Contract: roles missing at baseline are assigned by RECIST 1.1 in the engine.
    del by_id(resources, "bs1")["extension"]
    result = patient_input("p1", resources)
    assert result.timeline is not None
    assert next(les for les in result.timeline.lesions if les.lesion_id == "L1").role is None
    assert not [i for i in result.issues if i.ref == "BodyStructure/bs1"]


def test_unknown_role_code_is_a_warning_and_no_role(resources: Resources) -> None:
    by_id(resources, "bs1")["extension"][0]["valueCoding"]["code"] = "index-lesion"
    result = patient_input("p1", resources)
    assert result.timeline is not None
    assert next(les for les in result.timeline.lesions if les.lesion_id == "L1").role is None
    assert ("warning", "unknown-lesion-role", "BodyStructure/bs1") in {
        (i.severity, i.code, i.ref) for i in result.issues
    }


def test_new_lesion_first_seen_after_baseline_stays_a_lesion_without_role_problem(
    resources: Resources,
) -> None:
    # Contract: a lesion first seen after baseline is new whatever its role says; deciding that is
    # the engine's job, so inbound keeps L4 and its declared role and raises nothing about it.
    result = patient_input("p1", resources)
    assert result.timeline is not None
    l4 = next(les for les in result.timeline.lesions if les.lesion_id == "L4")
    assert l4.role is LesionRole.TARGET
    assert measurement(result.timeline, "Observation/m5").long_axis_mm == Decimal("12")
    assert not [i for i in result.issues if i.ref in ("BodyStructure/bs4", "Observation/m5")]


def test_lesion_without_identifier_is_an_issue_and_so_are_its_measurements(resources: Resources) -> None:
    del by_id(resources, "bs1")["identifier"]
    result = patient_input("p1", resources)
    assert result.timeline is not None
    found = {(i.code, i.ref) for i in result.issues}
    assert ("lesion-without-identifier", "BodyStructure/bs1") in found
    assert {("lesion-not-usable", "Observation/m1"), ("lesion-not-usable", "Observation/m3")} <= found
    assert "L1" not in {les.lesion_id for les in result.timeline.lesions}
    assert {les.lesion_id for les in result.timeline.lesions} == {"L2", "L3", "L4"}


def test_measurement_of_unknown_lesion_is_an_issue(resources: Resources) -> None:
    by_id(resources, "m5")["focus"] = [{"reference": "BodyStructure/elsewhere"}]
    result = patient_input("p1", resources)
    assert ("lesion-not-found", "Observation/m5") in {(i.code, i.ref) for i in result.issues}


# --- therapy ----------------------------------------------------------------------------------------
def test_ici_start_class_combination_and_line(resources: Resources) -> None:
    tl = timeline_of(resources)
    # 09:30+01:00 on 2024-03-04 is that local day; the second dose (03-25) is not the start.
    assert tl.treatment_start == date(2024, 3, 4)
    assert (tl.profile.ici_drug, tl.profile.ici_class) == ("pembrolizumab", IciClass.PD1)
    assert tl.profile.combination is True  # carboplatin (ATC L01XA02) the same day
    assert tl.profile.line_of_therapy == 2


def test_monotherapy_without_another_antineoplastic(resources: Resources) -> None:
    assert timeline_of(without(resources, "ma3")).profile.combination is False


@pytest.mark.parametrize(
    ("chemo_day", "combination"),
    [
        (codes.COMBINATION_WINDOW_DAYS, True),  # last day of the first-cycle window
        (codes.COMBINATION_WINDOW_DAYS + 1, False),  # outside it: a later line, not a combination
    ],
)
def test_combination_window_boundary(resources: Resources, chemo_day: int, combination: bool) -> None:
    chemo_on = (date(2024, 3, 4) + timedelta(days=chemo_day)).isoformat()
    resources = [*without(resources, "ma3"), medication("chemo", "L01XA02", chemo_on)]
    assert timeline_of(resources).profile.combination is combination


@pytest.mark.parametrize(
    ("ici_on", "chemo_on", "window", "combination"),
    [
        ("0001-01-01", "0001-01-02", 21, True),  # the window reaches before the first date there is
        ("0001-01-02", "0001-01-01", 21, True),
        ("9999-12-31", "9999-12-30", 21, True),  # and after the last
        ("9999-12-30", "9999-12-31", 21, True),
        ("0001-01-01", "0001-01-23", 21, False),
        ("2024-03-04", "2024-03-04", 0, True),  # a window of 0 days: the same day only
        ("2024-03-04", "2024-03-05", 0, False),
        ("9999-12-31", "9999-12-31", -1, False),  # a negative window holds nothing (and never raises)
        ("0001-01-01", "0001-01-01", -1, False),
    ],
)
def test_combination_window_at_the_ends_of_the_calendar(
    resources: Resources, ici_on: str, chemo_on: str, window: int, combination: bool
) -> None:
    therapy = [medication("ici", "L01FF02", ici_on), medication("chemo", "L01XA02", chemo_on)]
    resources = [*without(resources, "ma1", "ma2", "ma3"), *therapy]
    result = patient_input("p1", resources, InboundMapping(combination_window_days=window))
    assert result.timeline is not None
    assert result.timeline.profile.combination is combination


@pytest.mark.parametrize(
    ("atc", "text", "drug", "ici_class"),
    [
        ("L01FF05", None, "atezolizumab", IciClass.PDL1),  # WHO ATC L01FF05 atezolizumab (PD-L1)
        ("L01FF01", None, "nivolumab", IciClass.PD1),
        (None, "Durvalumab 50 MG/ML Injection", "durvalumab", IciClass.PDL1),  # recognised by name
    ],
)
def test_ici_class_by_atc_or_name(
    resources: Resources, atc: str | None, text: str | None, drug: str, ici_class: IciClass
) -> None:
    resources = [*without(resources, "ma1", "ma2", "ma3"), medication("ici", atc, "2024-03-04", text=text)]
    tl = timeline_of(resources)
    assert (tl.profile.ici_drug, tl.profile.ici_class, tl.treatment_start) == (
        drug,
        ici_class,
        date(2024, 3, 4),
    )


def test_earliest_administration_is_the_start_whatever_the_order(resources: Resources) -> None:
    resources.reverse()
    assert timeline_of(resources).treatment_start == date(2024, 3, 4)


def test_medication_request_only_when_no_administration(resources: Resources) -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": codes.ATC, "code": "L01FF02"}]},
        "authoredOn": "2024-02-28",
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2024-03-01"}}}}],
    }
    # With administrations, the request does not move the start.
    assert timeline_of([*resources, request]).treatment_start == date(2024, 3, 4)
    # Without (here: the administrations were not done), the request's planned start is used.
    for rid in ("ma1", "ma2"):
        by_id(resources, rid)["status"] = "not-done"
    assert timeline_of([*resources, request]).treatment_start == date(2024, 3, 1)


def test_ici_administration_dates_are_the_given_ici_doses_sorted_and_unique(resources: Resources) -> None:
    # For treatment beyond progression (Guan 2024, Fig. 2g). Fixture: pembrolizumab ma1 2024-03-04,
    # ma2 2024-03-25; carboplatin ma3 (not an ICI, ATC L01XA02) is no ICI dose.
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr-later",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": codes.ATC, "code": "L01FF02"}]},
        "authoredOn": "2024-07-01",
    }
    resources = [
        *reversed(resources),
        medication("late", "L01FF02", "2024-06-10T08:00:00+02:00"),
        medication("same-day", "L01FF02", "2024-03-25T16:00:00Z"),  # second record of 03-25
        medication("by-name", None, "2024-05-20", text="Pembrolizumab 25 MG/ML"),  # ICI by name
        medication("ongoing", "L01FF02", "2024-07-02", status="in-progress"),
        medication("stopped", "L01FF02", "2024-04-15", status="stopped"),  # maybe not given
        medication("not-done", "L01FF02", "2024-04-16", status="not-done"),
        medication("chemo-later", "L01XA02", "2024-04-17"),
        request,  # a plan, not a dose
    ]
    assert timeline_of(resources).ici_administration_dates == (
        date(2024, 3, 4),
        date(2024, 3, 25),
        date(2024, 5, 20),
        date(2024, 6, 10),
        date(2024, 7, 2),
    )


def test_medication_reference_to_a_medication_resource(resources: Resources) -> None:
    ma1 = by_id(resources, "ma1")
    del ma1["medicationCodeableConcept"]
    ma1["medicationReference"] = {"reference": "Medication/pembro"}
    pembro = {
        "resourceType": "Medication",
        "id": "pembro",
        "code": {"coding": [{"system": codes.ATC, "code": "L01FF02"}]},
    }
    assert timeline_of([*without(resources, "ma2"), pembro]).treatment_start == date(2024, 3, 4)


def test_no_ici_means_no_timeline_and_an_issue(resources: Resources) -> None:
    result = patient_input("p1", without(resources, "ma1", "ma2"))
    assert result.timeline is None
    assert [(i.severity, i.code) for i in result.issues if i.severity == "error"] == [
        ("error", "no-ici-start")
    ]


# --- tumour type ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("system", "code", "morphology", "expected"),
    [
        (codes.ICD10CM, "C34.1", "8140/3", TumourType.NSCLC),  # lung adenocarcinoma
        (codes.ICD10CM, "C34.1", "8041/3", TumourType.SCLC),  # ICD-O-3 8041/3 small cell carcinoma
        (codes.ICD10CM, "C3490", None, TumourType.NSCLC),  # undotted ICD-10-CM
        (codes.ICD10CM, "C16.9", None, TumourType.GASTRIC),
        (codes.ICD10CM, "C22.0", None, TumourType.HCC),  # liver cell carcinoma
        (codes.ICD10CM, "C22.1", None, TumourType.OTHER),  # intrahepatic bile duct carcinoma is not HCC
        (codes.ICD10CM, "C56.9", None, TumourType.OVARIAN),
        (codes.ICD10CM, "C25.0", None, TumourType.PANCREATIC),
        (codes.ICD10CM, "C43.9", None, TumourType.OTHER),  # melanoma: other
        (codes.SNOMED, "254632001", None, TumourType.SCLC),
        (codes.SNOMED, "254637007", None, TumourType.NSCLC),
    ],
)
def test_tumour_type_mapping(
    resources: Resources, system: str, code: str, morphology: str | None, expected: TumourType
) -> None:
    condition = by_id(resources, "c1")
    condition["code"] = {"coding": [{"system": system, "code": code}]}
    if morphology is None:
        del condition["extension"]
    else:
        condition["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = morphology
    assert timeline_of(resources).profile.tumour_type is expected


def test_secondary_cancer_without_primary_profile_gives_no_tumour_type(resources: Resources) -> None:
    condition = by_id(resources, "c1")
    del condition["meta"]
    condition["code"] = {"coding": [{"system": codes.ICD10CM, "code": "C78.0"}]}  # secondary, lung
    assert timeline_of(resources).profile.tumour_type is None


# --- labs, covariates, outcomes -------------------------------------------------------------------------
def test_cell_counts_are_normalised_to_10e9_per_litre(resources: Resources) -> None:
    labs = {lab.kind: lab.value for lab in timeline_of(resources).labs}
    assert labs[LabKind.LYMPHOCYTES] == Decimal("1.5")  # 1500 /uL
    assert labs[LabKind.NEUTROPHILS] == Decimal("4.2")  # 10*3/uL equals 10*9/L
    assert labs[LabKind.LEUKOCYTES] == Decimal("7")


def test_lab_in_unknown_unit_is_an_issue(resources: Resources) -> None:
    by_id(resources, "neut")["valueQuantity"].update({"unit": "mmol/L", "code": "mmol/L"})
    result = patient_input("p1", resources)
    assert result.timeline is not None
    assert LabKind.NEUTROPHILS not in {lab.kind for lab in result.timeline.labs}
    assert ("unit-not-convertible", "Observation/neut") in {(i.code, i.ref) for i in result.issues}


def test_clinical_profile_takes_pre_treatment_values(resources: Resources) -> None:
    profile = timeline_of(resources).profile
    assert profile.ecog == 1  # 2024-02-20; ECOG 3 on 2024-04-01 is after the ICI start
    assert profile.bmi == Decimal("24.2")
    assert profile.smoking == "former"  # SNOMED 8517006 ex-smoker
    assert profile.pdl1_tps_pct == Decimal("60")
    assert profile.prior_radiotherapy is True  # radiotherapy course 2023-11
    assert (profile.sex, profile.birth_date) == ("female", date(1961, 5, 1))


def test_local_treatments_from_procedures(resources: Resources) -> None:
    ablation = {
        "resourceType": "Procedure",
        "id": "rfa",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": codes.SNOMED, "code": next(iter(codes.THERMAL_ABLATION_SNOMED))}]},
        "performedDateTime": "2024-05-02T10:00:00+02:00",
    }
    treatments = timeline_of([*resources, ablation]).local_treatments
    assert [(t.performed_on, t.kind, t.ref) for t in treatments] == [
        (date(2023, 11, 1), "radiotherapy", "Procedure/rt1"),
        (date(2024, 5, 2), "thermal-ablation", "Procedure/rfa"),
    ]


def test_last_contact_is_the_latest_date_on_any_resource(resources: Resources) -> None:
    assert timeline_of(resources).last_contact == date(2024, 5, 10)  # the Encounter


def test_own_output_observations_are_not_a_contact(resources: Resources) -> None:
    own = {
        "resourceType": "Observation",
        "id": "rg",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": codes.CS_ONCORESPONSE, "code": codes.CODE_RESPONSE_GROUP}]},
        "effectiveDateTime": "2025-01-01",
    }
    assert timeline_of([*resources, own]).last_contact == date(2024, 5, 10)


def test_death_date_and_last_contact(resources: Resources) -> None:
    by_id(resources, "p1")["deceasedDateTime"] = "2024-06-02T03:00:00+02:00"
    tl = timeline_of(resources)
    assert (tl.death_date, tl.last_contact) == (date(2024, 6, 2), date(2024, 6, 2))


def test_source_refs_name_the_inputs_used(resources: Resources) -> None:
    refs = set(timeline_of(resources).source_refs)
    assert {"Patient/p1", "ImagingStudy/is1", "Observation/m1", "MedicationAdministration/ma1"} <= refs
    assert "MedicationAdministration/ma3" in refs  # decided "combination"
    assert "Observation/m6-draft" not in refs


# --- bundles of several patients -------------------------------------------------------------------
def test_group_bundle_by_patient_splits_and_resolves_urn_references() -> None:
    p1 = patient_resources()
    second = copy.deepcopy(p1)
    for resource in second:  # the same data for a second patient, referenced by urn:uuid
        resource["id"] = f"{resource['id']}-b"
        for key in ("subject", "patient"):
            if key in resource:
                resource[key] = {"reference": "urn:uuid:0f7c0c36-0000-4000-8000-000000000002"}
    patient_b = next(r for r in second if r["resourceType"] == "Patient")
    del patient_b["id"]
    entries: list[dict[str, Any]] = [{"resource": r} for r in p1]
    entries += [
        {"fullUrl": "urn:uuid:0f7c0c36-0000-4000-8000-000000000002", "resource": r}
        if r is patient_b
        else {"resource": r}
        for r in second
    ]
    orphan = {"resourceType": "Observation", "id": "orphan", "status": "final", "code": {}}
    entries += [{"resource": orphan}, {"request": {"method": "GET"}}]
    groups, issues = group_bundle_by_patient(
        {"resourceType": "Bundle", "type": "collection", "entry": entries}
    )
    assert set(groups) == {"p1", "0f7c0c36-0000-4000-8000-000000000002"}
    assert len(groups["p1"]) == len(p1)
    assert {(i.code, i.ref) for i in issues} == {
        ("no-patient-reference", "Observation/orphan"),
        ("malformed-resource", f"Bundle.entry[{len(entries) - 1}]"),
    }
    second_input = patient_input(
        "0f7c0c36-0000-4000-8000-000000000002", groups["0f7c0c36-0000-4000-8000-000000000002"]
    )
    assert second_input.timeline is not None
    assert second_input.timeline.treatment_start == date(2024, 3, 4)
    assert second_input.timeline.profile.sex == "female"  # the Patient found by its fullUrl


def test_group_bundle_rejects_a_non_bundle() -> None:
    groups, issues = group_bundle_by_patient({"resourceType": "Patient", "id": "x"})
    assert groups == {}
    assert [i.code for i in issues] == ["malformed-bundle"]
