"""Generated resources are valid FHIR R4 (fhir.resources R4B) in the shape of docs/fhir-contract.md section 1."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date

from fhir.resources.R4B import get_fhir_model_class

from service.adapters.fhir import codes
from service.synthetic import Cohort, transaction_bundle
from tests.unit.synthetic.fhir_reading import day_of, is_ici, other_antineoplastic, read, tumour_type

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_every_resource_validates_with_fhir_resources_r4b(pan: Cohort, mixed: Cohort) -> None:
    for patient in (*pan.patients, *mixed.patients):
        for resource in patient.resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_transaction_bundle_validates_and_puts_every_resource_by_id(mixed: Cohort) -> None:
    bundle = transaction_bundle(mixed.patients[0])
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert {e["request"]["method"] for e in bundle["entry"]} == {"PUT"}
    assert all(
        e["request"]["url"] == f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    )


def test_ids_are_valid_unique_and_references_resolve_within_the_patient(pan: Cohort, mixed: Cohort) -> None:
    seen: set[str] = set()
    for patient in (*pan.patients, *mixed.patients):
        keys = {f"{r['resourceType']}/{r['id']}" for r in patient.resources}
        assert len(keys) == len(patient.resources)
        assert all(FHIR_ID.match(r["id"]) for r in patient.resources)
        assert not keys & seen
        seen |= keys
        for resource in patient.resources:
            assert set(_references(resource)) <= keys, resource["id"]


def test_care_team_and_practitioners_are_reachable_by_reference(mixed: Cohort) -> None:
    # sekmet-fhir cannot search CareTeam/BodyStructure by patient: everything is referenced by id.
    for patient in mixed.patients:
        referenced = {ref for r in patient.resources for ref in _references(r)}
        for r in patient.resources:
            if r["resourceType"] in ("CareTeam", "BodyStructure", "Practitioner", "ImagingStudy"):
                assert f"{r['resourceType']}/{r['id']}" in referenced


def test_tumour_size_observations_follow_mcode_and_the_contract(mixed: Cohort) -> None:
    units: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    for patient in mixed.patients:
        kinds = {f"{r['resourceType']}/{r['id']}": r for r in patient.resources}
        for r in patient.resources:
            if r["resourceType"] != "Observation" or r["code"]["coding"][0]["code"] != codes.LOINC_TUMOR_SIZE:
                continue
            assert r["code"]["coding"][0]["system"] == codes.LOINC
            body = kinds[r["focus"][0]["reference"]]
            assert body["resourceType"] == "BodyStructure"
            assert kinds[r["derivedFrom"][0]["reference"]]["resourceType"] == "ImagingStudy"
            components = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in r["component"]}
            assert codes.LOINC_LONGEST_DIAMETER in components
            node = any(e["url"] == codes.EXT_LYMPH_NODE and e["valueBoolean"] for e in body["extension"])
            assert (codes.CODE_SHORT_AXIS in components) == node
            units.update(q["code"] for q in components.values())
            flags.update(i["coding"][0]["code"] for i in r.get("interpretation", []))
    assert set(units) == {"mm", "cm"}
    assert set(flags) == {"too-small", "disappeared"}


def test_body_structures_are_mcode_tumours_with_role_location_and_identifier(mixed: Cohort) -> None:
    roles: Counter[str] = Counter()
    for patient in mixed.patients:
        for r in patient.resources:
            if r["resourceType"] != "BodyStructure":
                continue
            assert r["meta"]["profile"] == [codes.MCODE_TUMOR]
            assert r["location"]["coding"][0]["code"] in codes.ORGAN_BY_CODE
            assert r["identifier"][0]["value"]
            role = next(e for e in r["extension"] if e["url"] == codes.EXT_LESION_ROLE)["valueCoding"]
            assert role["system"] == codes.CS_LESION_ROLE
            roles[role["code"]] += 1
            node_flag = next(e for e in r["extension"] if e["url"] == codes.EXT_LYMPH_NODE)["valueBoolean"]
            assert node_flag == (r["location"]["coding"][0]["code"] == codes.SNOMED_LYMPH_NODE)
    assert set(roles) == {"target", "non-target", "new-target", "new-non-target"}


def test_targets_respect_recist_selection_rules(mixed: Cohort) -> None:
    # RECIST 1.1: 2-5 targets here, <= 2 per organ (all nodes one organ); nodes >= 15 mm short axis,
    # other targets >= 10 mm.
    for patient in mixed.patients:
        reading = read(patient.resources)
        organs = Counter(
            next(r["location"]["coding"][0]["code"] for r in patient.resources if r["id"] == key)
            for key in reading.targets
        )
        assert 2 <= len(reading.targets) <= 5
        assert max(organs.values()) <= 2
        for key in reading.targets:
            assert reading.sizes[0][key] >= (15 if key in reading.nodes else 10)


def test_condition_code_round_trips_to_the_tumour_type(pan: Cohort) -> None:
    for patient in pan.patients:
        condition = next(r for r in patient.resources if r["resourceType"] == "Condition")
        assert condition["meta"]["profile"] == [codes.MCODE_PRIMARY_CANCER_CONDITION]
        assert tumour_type(condition) == patient.truth.covariates.tumour_type


def test_ici_start_combination_and_line_encoding(pan: Cohort) -> None:
    for patient in pan.patients:
        admins = [r for r in patient.resources if r["resourceType"] == "MedicationAdministration"]
        ici = sorted(day_of(a["effectiveDateTime"]) for a in admins if is_ici(a))
        assert ici[0].isoformat() == patient.truth.treatment_start
        assert len(ici) >= 2  # inclusion: at least two cycles
        others = [day_of(a["effectiveDateTime"]) for a in admins if other_antineoplastic(a)]
        in_window = [d for d in others if (d - ici[0]).days < codes.COMBINATION_WINDOW_DAYS]
        assert bool(in_window) == patient.truth.covariates.combination
        request = next(r for r in patient.resources if r["id"].endswith("-medicationrequest-1"))
        assert request["requester"]["reference"].startswith("Practitioner/")
        line = next(e for e in request["extension"] if e["url"] == codes.EXT_LINE_OF_THERAPY)
        assert line["valuePositiveInt"] == patient.truth.covariates.line_of_therapy


def test_scan_schedule_baseline_window_and_intervals(mixed: Cohort) -> None:
    # Baseline 0-28 days before ICI start (contract section 1); follow-ups every 6-9 weeks, confirmation
    # scans after an iUPD 5-7 weeks, the early-PR PD variant at day ~28.
    for patient in mixed.patients:
        reading = read(patient.resources)
        assert 0 <= (reading.ici_start - reading.study_dates[0]).days <= 28
        gaps = [(b - a).days for a, b in zip(reading.study_dates[1:], reading.study_dates[2:], strict=False)]
        assert all(35 <= g <= 63 for g in gaps)
        assert 26 <= (reading.study_dates[1] - reading.ici_start).days <= 63


def test_pre_treatment_labs_are_within_28_days_before_start(pan: Cohort) -> None:
    wanted = {
        codes.LOINC_NEUTROPHILS,
        codes.LOINC_LYMPHOCYTES,
        codes.LOINC_LYMPHOCYTES_PCT,
        codes.LOINC_LEUKOCYTES,
    }
    for patient in pan.patients:
        start = date.fromisoformat(patient.truth.treatment_start)
        pre = {
            r["code"]["coding"][0]["code"]
            for r in patient.resources
            if r["resourceType"] == "Observation" and 0 < (start - day_of(r["effectiveDateTime"])).days <= 28
        }
        post = {
            r["code"]["coding"][0]["code"]
            for r in patient.resources
            if r["resourceType"] == "Observation"
            and r["category"][0]["coding"][0]["code"] == "laboratory"
            and (day_of(r["effectiveDateTime"]) - start).days > 0
        }
        assert wanted <= pre
        assert wanted <= post
        assert pre & codes.LOINC_LDH


def test_death_and_last_contact(pan: Cohort) -> None:
    # OS censoring uses the last contact: nothing about a patient is dated after it (or after death).
    for patient in pan.patients:
        person = next(r for r in patient.resources if r["resourceType"] == "Patient")
        truth = patient.truth.endpoints
        assert ("deceasedDateTime" in person) == truth.os_event
        limit = truth.death_date or truth.last_contact_date
        dated = json.dumps(patient.resources)
        assert (
            max(re.findall(r'"(\d{4}-\d{2}-\d{2})(?:T[^"]*)?"', dated.replace(person["birthDate"], "")))
            <= limit
        )
        encounter = next(r for r in patient.resources if r["resourceType"] == "Encounter")
        assert encounter["period"]["start"] == truth.last_contact_date


def test_no_ground_truth_leaks_into_fhir(pan: Cohort) -> None:
    outputs = (
        codes.CS_RESPONSE_GROUP,
        codes.CS_ATYPICAL_RESPONSE,
        codes.CS_RECIST_RESPONSE,
        codes.CS_IRECIST_RESPONSE,
    )
    for patient in pan.patients:
        text = json.dumps(patient.resources)
        assert not any(system in text for system in outputs)
        assert "dissociat" not in text.lower()
        assert "pseudoprog" not in text.lower()
