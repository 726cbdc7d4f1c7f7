"""Outbound mapping (docs/fhir-contract.md section 2), on PatientAssessment values built by hand.

Scenario (Bernard-Tessier dissociated response, contract section 2 "Default DR definition"):
baseline 2024-02-26, L1 30 -> 18 mm (-40 % vs its baseline, responding), L2 20 -> 26 mm
(+30 % and +6 mm vs its nadir, progressing); sum 50 -> 44 mm (-12 %: SD); one DR finding at
timepoint 1, so the ResponseGroup is DR.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.outbound import (
    assessment_bundle,
    device_full_url,
    observation_full_url,
    observations_for,
    operation_outcome,
    provenance_for,
    service_device,
)
from service.adapters.fhir.resources import validate_resource
from service.application.ports import PatientInput, PatientRef
from service.domain.model import Lesion, LesionRole, PatientTimeline
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    Criterion,
    DataIssue,
    DrTrigger,
    Endpoints,
    ImmuneResponse,
    ImmuneTimepointResult,
    LesionResult,
    LesionStatus,
    PatientAssessment,
    Response,
    ResponseGroup,
    RuleTrace,
    TimepointResult,
)

BASELINE = date(2024, 2, 26)
TP1 = date(2024, 4, 29)
RECORDED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def lesion_result(
    lesion_id: str, status: LesionStatus, mm: str, base_pct: str | None, nadir_pct: str | None, on: date
) -> LesionResult:
    return LesionResult(
        lesion_id=lesion_id,
        timepoint_index=1,
        timepoint_date=on,
        status=status,
        diameter_mm=Decimal(mm),
        change_from_baseline_pct=None if base_pct is None else Decimal(base_pct),
        change_from_nadir_pct=None if nadir_pct is None else Decimal(nadir_pct),
        is_target=True,
        trace=RuleTrace.of(f"lesion/{status.value}"),
        source_refs=(f"Observation/m-{lesion_id}", "ImagingStudy/is2"),
    )


def assessment(tp_date: date = TP1, *, response: Response = Response.SD) -> PatientAssessment:
    lesions = (
        lesion_result("L1", LesionStatus.RESPONDING, "18", "-40", "-40", tp_date),
        lesion_result("L2", LesionStatus.PROGRESSING, "26", "30", "30", tp_date),
    )
    timepoint = TimepointResult(
        index=1,
        timepoint_date=tp_date,
        target=Response.SD,
        non_target=None,
        new_lesion=False,
        overall=response,
        reported=response,
        sum_mm=Decimal("44"),
        baseline_sum_mm=Decimal("50"),
        nadir_sum_mm=Decimal("50"),
        change_from_baseline_pct=Decimal("-12"),
        change_from_nadir_pct=Decimal("-12"),
        traces=(RuleTrace.of("recist1.1/target/sd"), RuleTrace.of("recist1.1/overall/table1")),
        source_refs=("ImagingStudy/is2", "Observation/m-L1", "Observation/m-L2"),
    )
    immune = ImmuneTimepointResult(
        index=1,
        timepoint_date=tp_date,
        overall=ImmuneResponse.ISD,
        sum_mm=Decimal("44"),
        baseline_sum_mm=Decimal("50"),
        nadir_sum_mm=Decimal("50"),
        change_from_baseline_pct=Decimal("-12"),
        change_from_nadir_pct=Decimal("-12"),
        new_lesion_target_sum_mm=None,
        new_lesion=False,
        traces=(RuleTrace.of("irecist/target/isd"),),
        source_refs=("ImagingStudy/is2",),
        target=ImmuneResponse.ISD,
        non_target=None,
    )
    best = BestResponse(
        Criterion.RECIST11, response, False, BASELINE, tp_date, tp_date, RuleTrace.of("bor/sd")
    )
    best_confirmed = dataclasses.replace(
        best, confirmation_required=True, trace=RuleTrace.of("bor/confirmed")
    )
    immune_best = BestResponse(
        Criterion.IRECIST, ImmuneResponse.ISD, False, BASELINE, tp_date, tp_date, RuleTrace.of("ibor/isd")
    )
    finding = AtypicalFinding(
        kind=AtypicalKind.DR,
        definition="bernard-tessier",
        definition_version="2021",
        timepoint_index=1,
        timepoint_date=tp_date,
        trigger=DrTrigger.TARGET_LESION,
        overall_at_detection=Response.SD,
        growing_lesions=("L2",),
        shrinking_lesions=("L1",),
        trace=RuleTrace.of("dr/bernard-tessier"),
    )
    return PatientAssessment(
        patient_id="p1",
        treatment_start=date(2024, 3, 4),
        baseline_date=BASELINE,
        timepoints=(timepoint,),
        immune_timepoints=(immune,),
        lesions=lesions,
        best_response=best,
        best_response_confirmed=best_confirmed,
        immune_best_response=immune_best,
        atypical=(finding,),
        response_group=ResponseGroup.DR,
        endpoints=Endpoints(None, None, None, None, None, None, None),
        auto_selected_targets=(),
        issues=(DataIssue("warning", "measurement-without-study", "no ImagingStudy", "Observation/x"),),
        traces=(RuleTrace.of("group/dr-before-pspd"),),
    )


def patient_input() -> PatientInput:
    timeline = PatientTimeline(
        patient_id="p1",
        treatment_start=date(2024, 3, 4),
        lesions=(
            Lesion("L1", "lung", role=LesionRole.TARGET, ref="BodyStructure/bs1"),
            Lesion("L2", "liver", role=LesionRole.TARGET, ref="BodyStructure/bs2"),
        ),
        scans=(),
        source_refs=("Patient/p1", "ImagingStudy/is1", "ImagingStudy/is2", "Observation/m-L1"),
    )
    return PatientInput(PatientRef("p1"), timeline)


def of_code(observations: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [o for o in observations if o["code"]["coding"][0]["code"] == code]


def component(observation: dict[str, Any], code: str) -> dict[str, Any]:
    return next(c for c in observation["component"] if c["code"]["coding"][0]["code"] == code)


def identifiers(observations: list[dict[str, Any]]) -> list[str]:
    return [o["identifier"][0]["value"] for o in observations]


# --- validity -----------------------------------------------------------------------------------------
def test_every_emitted_resource_validates_against_fhir_r4b() -> None:
    bundle = assessment_bundle(
        [(assessment(), patient_input())],
        [DataIssue("error", "no-ici-start", "no ICI", None)],
        version="0.1.0",
        recorded=RECORDED,
    )
    validate_resource(bundle)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types[0] == "Device"
    assert types[-2:] == ["Provenance", "OperationOutcome"]
    for entry in bundle["entry"]:
        validate_resource(entry["resource"])


def test_one_observation_per_contract_result() -> None:
    observations = observations_for(assessment(), patient_input())
    counts = {
        code: len(of_code(observations, code))
        for code in (
            codes.CODE_LESION_RESPONSE,
            codes.CODE_RECIST11_TPR,
            codes.CODE_IRECIST_TPR,
            codes.CODE_RECIST11_BOR,
            codes.CODE_IRECIST_BOR,
            codes.CODE_ATYPICAL_RESPONSE,
            codes.CODE_RESPONSE_GROUP,
        )
    }
    assert counts == {
        codes.CODE_LESION_RESPONSE: 2,  # one per lesion per timepoint
        codes.CODE_RECIST11_TPR: 1,
        codes.CODE_IRECIST_TPR: 1,
        codes.CODE_RECIST11_BOR: 2,  # without and with confirmation
        codes.CODE_IRECIST_BOR: 1,
        codes.CODE_ATYPICAL_RESPONSE: 1,
        codes.CODE_RESPONSE_GROUP: 1,
    }


@pytest.mark.parametrize(
    ("code", "profile"),
    [
        (codes.CODE_LESION_RESPONSE, codes.PROFILE_LESION_RESPONSE),
        (codes.CODE_RECIST11_TPR, codes.PROFILE_RECIST11_TIMEPOINT),
        (codes.CODE_IRECIST_TPR, codes.PROFILE_IRECIST_TIMEPOINT),
        (codes.CODE_RECIST11_BOR, codes.PROFILE_BEST_OVERALL_RESPONSE),
        (codes.CODE_ATYPICAL_RESPONSE, codes.PROFILE_ATYPICAL_RESPONSE),
        (codes.CODE_RESPONSE_GROUP, codes.PROFILE_RESPONSE_GROUP),
    ],
)
def test_common_elements_of_every_observation(code: str, profile: str) -> None:
    for observation in of_code(observations_for(assessment(), patient_input()), code):
        assert observation["meta"]["profile"] == [profile]
        assert observation["status"] == "final"
        assert observation["subject"] == {"reference": "Patient/p1"}
        assert observation["identifier"][0]["system"] == codes.IDENTIFIER_ASSESSMENT
        assert observation["category"][0]["coding"][0]["code"] == "imaging"
        assert observation["code"]["coding"][0]["system"] == codes.CS_ONCORESPONSE
        assert [e["url"] for e in observation["extension"]] == [codes.EXT_RULE_TRACE] * len(
            observation["extension"]
        )
        assert observation["extension"]


# --- contents -------------------------------------------------------------------------------------------
def test_lesion_response_values_and_focus() -> None:
    l1 = of_code(observations_for(assessment(), patient_input()), codes.CODE_LESION_RESPONSE)[0]
    assert l1["valueCodeableConcept"]["coding"][0] == {
        "system": codes.CS_LESION_RESPONSE,
        "code": "responding",
    }
    assert l1["focus"] == [{"reference": "BodyStructure/bs1"}]  # from the timeline when the result has no ref
    assert component(l1, codes.COMP_DIAMETER_MM)["valueQuantity"] == {
        "value": 18,
        "unit": "mm",
        "system": codes.UCUM,
        "code": "mm",
    }
    assert component(l1, codes.COMP_CHANGE_FROM_BASELINE_PCT)["valueQuantity"]["value"] == -40
    assert component(l1, codes.COMP_CHANGE_FROM_BASELINE_PCT)["valueQuantity"]["code"] == "%"
    assert l1["derivedFrom"] == [{"reference": "Observation/m-L1"}, {"reference": "ImagingStudy/is2"}]
    assert l1["effectiveDateTime"] == "2024-04-29"


def test_recist_timepoint_has_every_contract_component() -> None:
    tpr = of_code(observations_for(assessment(), patient_input()), codes.CODE_RECIST11_TPR)[0]
    present = {c["code"]["coding"][0]["code"] for c in tpr["component"]}
    assert present == {
        codes.COMP_TARGET_RESPONSE,
        codes.COMP_NON_TARGET_RESPONSE,
        codes.COMP_NEW_LESION_PRESENT,
        codes.COMP_SUM_OF_DIAMETERS_MM,
        codes.COMP_BASELINE_SUM_MM,
        codes.COMP_NADIR_SUM_MM,
        codes.COMP_CHANGE_FROM_BASELINE_PCT,
        codes.COMP_CHANGE_FROM_NADIR_PCT,
        codes.COMP_TIMEPOINT_INDEX,
    }
    assert tpr["valueCodeableConcept"]["coding"][0] == {"system": codes.CS_RECIST_RESPONSE, "code": "SD"}
    assert component(tpr, codes.COMP_TIMEPOINT_INDEX)["valueInteger"] == 1
    assert component(tpr, codes.COMP_NEW_LESION_PRESENT)["valueBoolean"] is False
    assert component(tpr, codes.COMP_SUM_OF_DIAMETERS_MM)["valueQuantity"]["value"] == 44
    # No non-target disease: the component says so instead of inventing a response.
    assert "dataAbsentReason" in component(tpr, codes.COMP_NON_TARGET_RESPONSE)


def test_irecist_timepoint_adds_new_lesion_target_sum() -> None:
    itpr = of_code(observations_for(assessment(), patient_input()), codes.CODE_IRECIST_TPR)[0]
    assert itpr["valueCodeableConcept"]["coding"][0] == {"system": codes.CS_IRECIST_RESPONSE, "code": "iSD"}
    assert "dataAbsentReason" in component(itpr, codes.COMP_NEW_LESION_TARGET_SUM_MM)
    assert component(itpr, codes.COMP_BASELINE_SUM_MM)["valueQuantity"]["value"] == 50


def test_irecist_timepoint_carries_the_recist_components_in_irecist_terms() -> None:
    # Contract section 2: IrecistTimepointResponse has the components of the RECIST one "as above"
    # (target-response, non-target-response from `irecist-response`) plus new-lesion-target-sum-mm.
    itpr = of_code(observations_for(assessment(), patient_input()), codes.CODE_IRECIST_TPR)[0]
    present = {c["code"]["coding"][0]["code"] for c in itpr["component"]}
    assert present == {
        codes.COMP_TARGET_RESPONSE,
        codes.COMP_NON_TARGET_RESPONSE,
        codes.COMP_NEW_LESION_PRESENT,
        codes.COMP_SUM_OF_DIAMETERS_MM,
        codes.COMP_BASELINE_SUM_MM,
        codes.COMP_NADIR_SUM_MM,
        codes.COMP_CHANGE_FROM_BASELINE_PCT,
        codes.COMP_CHANGE_FROM_NADIR_PCT,
        codes.COMP_TIMEPOINT_INDEX,
        codes.COMP_NEW_LESION_TARGET_SUM_MM,
    }
    assert component(itpr, codes.COMP_TARGET_RESPONSE)["valueCodeableConcept"]["coding"][0] == {
        "system": codes.CS_IRECIST_RESPONSE,
        "code": "iSD",
    }
    # No non-target disease: absent, as on the RECIST 1.1 timepoint response.
    assert "dataAbsentReason" in component(itpr, codes.COMP_NON_TARGET_RESPONSE)


def test_best_overall_response_has_a_period_and_confirmation_flag() -> None:
    observations = observations_for(assessment(), patient_input())
    bors = of_code(observations, codes.CODE_RECIST11_BOR)
    assert [component(b, codes.COMP_CONFIRMATION_REQUIRED)["valueBoolean"] for b in bors] == [False, True]
    assert bors[0]["effectivePeriod"] == {"start": "2024-02-26", "end": "2024-04-29"}
    assert "effectiveDateTime" not in bors[0]
    tpr = of_code(observations, codes.CODE_RECIST11_TPR)[0]
    assert bors[0]["derivedFrom"] == [{"reference": observation_full_url(tpr)}]
    ibor = of_code(observations, codes.CODE_IRECIST_BOR)[0]
    assert ibor["valueCodeableConcept"]["coding"][0]["system"] == codes.CS_IRECIST_RESPONSE


def test_atypical_response_points_at_the_lesions_that_show_it() -> None:
    observations = observations_for(assessment(), patient_input())
    dr = of_code(observations, codes.CODE_ATYPICAL_RESPONSE)[0]
    lesion_urls = {observation_full_url(o) for o in of_code(observations, codes.CODE_LESION_RESPONSE)}
    assert {m["reference"] for m in dr["hasMember"]} == lesion_urls
    assert dr["valueCodeableConcept"]["coding"][0] == {"system": codes.CS_ATYPICAL_RESPONSE, "code": "DR"}
    assert (
        component(dr, codes.COMP_DEFINITION)["valueCodeableConcept"]["coding"][0]["code"] == "bernard-tessier"
    )
    assert component(dr, codes.COMP_DR_TRIGGER)["valueCodeableConcept"]["coding"][0] == {
        "system": codes.CS_DR_TRIGGER,
        "code": "target-lesion",
    }
    assert (
        component(dr, codes.COMP_OVERALL_RESPONSE_AT_DETECTION)["valueCodeableConcept"]["coding"][0]["code"]
        == "SD"
    )
    assert component(dr, codes.COMP_TIMEPOINT_INDEX)["valueInteger"] == 1


def test_response_group_is_atypical_for_dr() -> None:
    group = of_code(observations_for(assessment(), patient_input()), codes.CODE_RESPONSE_GROUP)[0]
    assert group["valueCodeableConcept"]["coding"][0] == {"system": codes.CS_RESPONSE_GROUP, "code": "DR"}
    assert component(group, codes.COMP_ATYPICAL)["valueBoolean"] is True


@pytest.mark.parametrize(
    ("pct", "emitted"),
    [
        ("-33.333333333333333333", -33.33),  # 1 - 20/30: rounded for display to 0.01 %
        ("-30", -30),  # exact thresholds stay exact
        ("12.345", 12.34),  # half-even
        ("12.355", 12.36),
    ],
)
def test_percentages_are_rounded_to_hundredths(pct: str, emitted: float) -> None:
    a = assessment()
    lesion = dataclasses.replace(a.lesions[0], change_from_baseline_pct=Decimal(pct))
    a = dataclasses.replace(a, lesions=(lesion,))
    l1 = of_code(observations_for(a, patient_input()), codes.CODE_LESION_RESPONSE)[0]
    assert component(l1, codes.COMP_CHANGE_FROM_BASELINE_PCT)["valueQuantity"]["value"] == emitted


def test_millimetres_keep_their_digits() -> None:
    a = assessment()
    lesion = dataclasses.replace(a.lesions[0], diameter_mm=Decimal("23.40"))
    a = dataclasses.replace(a, lesions=(lesion,))
    l1 = of_code(observations_for(a, patient_input()), codes.CODE_LESION_RESPONSE)[0]
    assert component(l1, codes.COMP_DIAMETER_MM)["valueQuantity"]["value"] == 23.4


# --- identity ---------------------------------------------------------------------------------------------
def test_same_inputs_give_the_same_identifiers() -> None:
    assert identifiers(observations_for(assessment(), patient_input())) == identifiers(
        observations_for(assessment(), patient_input())
    )


def test_identifiers_are_unique_within_one_assessment() -> None:
    ids = identifiers(observations_for(assessment(), patient_input()))
    assert len(set(ids)) == len(ids)


def test_a_changed_result_keeps_its_identifier_so_a_rerun_updates_it() -> None:
    before = identifiers(observations_for(assessment(response=Response.SD), patient_input()))
    after = identifiers(observations_for(assessment(response=Response.PD), patient_input()))
    assert before == after


def test_a_different_timepoint_date_gives_a_different_identifier() -> None:
    first = observations_for(assessment(TP1), patient_input())
    later = observations_for(assessment(date(2024, 4, 30)), patient_input())
    for code in (
        codes.CODE_RECIST11_TPR,
        codes.CODE_IRECIST_TPR,
        codes.CODE_LESION_RESPONSE,
        codes.CODE_ATYPICAL_RESPONSE,
    ):
        assert not set(identifiers(of_code(first, code))) & set(identifiers(of_code(later, code)))
    # One best response and one group per patient: they are updated, not duplicated, as follow-up grows.
    for code in (codes.CODE_RECIST11_BOR, codes.CODE_RESPONSE_GROUP):
        assert identifiers(of_code(first, code)) == identifiers(of_code(later, code))


def test_another_patient_gets_other_identifiers() -> None:
    other = dataclasses.replace(assessment(), patient_id="p2")
    assert not set(identifiers(observations_for(other, patient_input()))) & set(
        identifiers(observations_for(assessment(), patient_input()))
    )


# --- Provenance and OperationOutcome -----------------------------------------------------------------------
def test_provenance_targets_the_observations_and_names_the_inputs() -> None:
    observations = observations_for(assessment(), patient_input())
    device = device_full_url("0.1.0")
    provenance = provenance_for(
        observations, patient_input(), device_reference=device, version="0.1.0", recorded=RECORDED
    )
    validate_resource(provenance)
    assert [t["reference"] for t in provenance["target"]] == [observation_full_url(o) for o in observations]
    assert provenance["agent"][0]["who"]["reference"] == device
    entities = {e["what"]["reference"] for e in provenance["entity"]}
    assert {
        "Patient/p1",
        "ImagingStudy/is1",
        "ImagingStudy/is2",
        "Observation/m-L1",
        "Observation/m-L2",
    } <= entities
    assert not any(e.startswith("urn:") for e in entities)  # inputs, not our own outputs


def test_provenance_needs_an_aware_time() -> None:
    naive = datetime(2024, 5, 1)  # noqa: DTZ001 - the case under test
    with pytest.raises(ValueError, match="timezone"):
        provenance_for([], patient_input(), device_reference="Device/x", version="1", recorded=naive)


def test_service_device_carries_name_and_version() -> None:
    device = service_device("1.2.3")
    validate_resource(device)
    assert device["deviceName"][0]["name"] == "oncoresponse"
    assert device["version"] == [{"value": "1.2.3"}]


def test_operation_outcome_from_data_issues() -> None:
    outcome = operation_outcome(
        [
            DataIssue("error", "unit-not-convertible", "longest diameter: unit '[in_i]'", "Observation/m1"),
            DataIssue(
                "information", "status-not-usable", "status 'preliminary' is not used", "Observation/m6"
            ),
        ]
    )
    validate_resource(outcome)
    first, second = outcome["issue"]
    assert (first["severity"], first["code"], first["diagnostics"]) == ("error", "value", "Observation/m1")
    assert first["details"]["coding"][0] == {"system": codes.CS_DATA_ISSUE, "code": "unit-not-convertible"}
    assert (second["severity"], second["code"]) == ("information", "informational")


def test_operation_outcome_without_issues_is_still_valid() -> None:
    outcome = operation_outcome([])
    validate_resource(outcome)
    assert [i["severity"] for i in outcome["issue"]] == ["information"]


def test_assessment_bundle_reports_patient_and_assessment_issues_once() -> None:
    issue = DataIssue("warning", "measurement-without-study", "no ImagingStudy", "Observation/x")
    patient = dataclasses.replace(patient_input(), issues=(issue,))
    bundle = assessment_bundle([(assessment(), patient)], version="0.1.0", recorded=RECORDED)
    outcome = bundle["entry"][-1]["resource"]
    assert [i["diagnostics"] for i in outcome["issue"]] == ["Observation/x"]
