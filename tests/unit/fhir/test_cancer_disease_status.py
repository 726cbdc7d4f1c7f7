"""mCODE CancerDiseaseStatus as emitted: the STU4 profile's constraints and the iRECIST mapping.

The profile, its evidence-type extension and both ValueSets are mCODE STU4's own files
(tests/fixtures/mcode-stu4/, from the npm package hl7.fhir.us.mcode@4.0.0). Every
CancerDiseaseStatus a synthetic cohort emits is checked against their differential constraints.
The expected trend of each iRECIST category is written here from the criterion (Seymour et al.,
Lancet Oncol 2017;18:e143-52: iUPD needs confirmation, only iCPD is confirmed progression), not
taken from the service's table; docs/rules/disease-status.md gives the reasons.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.conformance import check
from service.adapters.fhir.inbound import patient_input
from service.adapters.fhir.outbound import observation_full_url, observations_for
from service.application.ports import PatientInput
from service.domain.engine import assess
from service.domain.results import PatientAssessment
from service.synthetic import Trajectory, generate_patient

AS_OF = date(2026, 11, 1)
MCODE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "mcode-stu4"
CDS_URL = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"

IMPROVED, STABLE, WORSENED, UNDETERMINED = "268910001", "359746009", "271299001", "709137006"
# iRECIST overall timepoint response -> ConditionStatusTrendVS code (Seymour 2017, table 2 and text):
# iCR/iPR are responses, iSD/iNonCR-NonUPD neither response nor progression, iUPD is progression
# still to be confirmed (so not yet "worse"), iCPD confirmed progression, NE not assessable.
EXPECTED_TREND = {
    "iCR": IMPROVED,
    "iPR": IMPROVED,
    "iSD": STABLE,
    "iNonCR-NonUPD": STABLE,
    "iUPD": UNDETERMINED,
    "iCPD": WORSENED,
    "NE": UNDETERMINED,
}

JsonDict = dict[str, Any]


def _load(name: str) -> JsonDict:
    loaded: JsonDict = json.loads((MCODE_DIR / name).read_text(encoding="utf-8"))
    return loaded


def _differential(name: str) -> dict[str, JsonDict]:
    return {e["id"]: e for e in _load(name)["differential"]["element"]}


PROFILE = _differential("StructureDefinition-mcode-cancer-disease-status.json")
EXTENSION = _differential("StructureDefinition-mcode-cancer-disease-status-evidence-type.json")
TREND_VS = _load("ValueSet-mcode-condition-status-trend-vs.json")
EVIDENCE_VS = _load("ValueSet-mcode-cancer-disease-status-evidence-type-vs.json")


def _trend_codes() -> dict[tuple[str, str], str]:
    """(system, code) -> display of the enumerated ConditionStatusTrendVS."""
    return {
        (inc["system"], c["code"]): c["display"]
        for inc in TREND_VS["compose"]["include"]
        for c in inc["concept"]
    }


def _evidence_roots() -> set[tuple[str, str]]:
    """The `is-a` roots of the evidence-type VS (a root is in its own is-a set; descendants would need
    a terminology server, and we only emit a root)."""
    return {
        (inc["system"], f["value"])
        for inc in EVIDENCE_VS["compose"]["include"]
        for f in inc.get("filter", ())
        if f["property"] == "concept" and f["op"] == "is-a"
    }


def _pattern_matches(pattern: JsonDict, value: JsonDict) -> bool:
    """FHIR pattern[x] on a CodeableConcept: every pattern coding appears (as a subset) in the value."""
    return all(
        any(all(coding.get(k) == v for k, v in wanted.items()) for coding in value.get("coding", ()))
        for wanted in pattern["coding"]
    )


def mcode_issues(resource: JsonDict) -> list[str]:
    """Departures of one resource from mCODE STU4 CancerDiseaseStatus's differential."""
    issues: list[str] = []
    if CDS_URL not in resource.get("meta", {}).get("profile", ()):
        issues.append("meta.profile")
    if not _pattern_matches(PROFILE["Observation.code"]["patternCodeableConcept"], resource.get("code", {})):
        issues.append("code pattern")
    if PROFILE["Observation.subject"]["min"] == 1 and not resource.get("subject", {}).get("reference"):
        issues.append("subject")
    allowed_effective = {t["code"] for t in PROFILE["Observation.effective[x]"]["type"]}
    effective = [k for k in resource if k.startswith("effective")]
    if effective != ["effectiveDateTime"] or "dateTime" not in allowed_effective:
        issues.append(f"effective[x] {effective}")
    else:
        date.fromisoformat(resource["effectiveDateTime"])  # a dateTime with a full date
    value_binding = PROFILE["Observation.value[x]"]["binding"]["valueSet"]
    if value_binding != TREND_VS["url"]:
        issues.append("fixture: value binding is not the trend VS")
    codings = resource.get("valueCodeableConcept", {}).get("coding", [])
    trend = _trend_codes()
    if not codings or any((c["system"], c["code"]) not in trend for c in codings):
        issues.append("value not in ConditionStatusTrendVS")
    elif any(c.get("display") != trend[(c["system"], c["code"])] for c in codings):
        issues.append("value display differs from the VS")
    extensions = [
        e for e in resource.get("extension", ()) if e.get("url") == EXTENSION["Extension.url"]["fixedUri"]
    ]
    if not extensions:
        issues.append("evidence-type extension")
    for extension in extensions:
        if EXTENSION["Extension.extension"]["max"] == "0" and extension.get("extension"):
            issues.append("evidence-type nested extension")
        if EXTENSION["Extension.value[x]"]["binding"]["valueSet"] != EVIDENCE_VS["url"]:
            issues.append("fixture: extension binding is not the evidence VS")
        ext_codings = extension.get("valueCodeableConcept", {}).get("coding", [])
        if not ext_codings or any((c["system"], c["code"]) not in _evidence_roots() for c in ext_codings):
            issues.append("evidence type not in the evidence-type VS")
    return issues


def _cohort(trajectories: list[Trajectory], copies: int) -> list[tuple[PatientAssessment, PatientInput]]:
    out = []
    for i in range(copies * len(trajectories)):
        patient_id = f"cds-{i}"
        resources = generate_patient(
            trajectories[i % len(trajectories)], seed=7100 + i, patient_id=patient_id
        )
        source = patient_input(patient_id, resources.resources)
        assert source.timeline is not None
        out.append((assess(source.timeline, as_of=AS_OF), source))
    return out


@pytest.fixture(scope="module")
def cohort() -> list[tuple[PatientAssessment, PatientInput]]:
    return _cohort(list(Trajectory), 3)


def _statuses(observations: list[JsonDict]) -> list[JsonDict]:
    return [o for o in observations if o["code"]["coding"][0].get("code") == "97509-4"]


def _by_url(observations: list[JsonDict]) -> dict[str, JsonDict]:
    return {observation_full_url(o): o for o in observations}


def test_every_emitted_status_meets_the_mcode_stu4_differential(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    count = 0
    for a, source in cohort:
        for status in _statuses(observations_for(a, source)):
            assert mcode_issues(status) == [], (a.patient_id, status["effectiveDateTime"])
            assert check(status) == []  # our checker accepts the foreign profile by name
            assert status["status"] == "final"
            assert status["subject"] == {"reference": f"Patient/{a.patient_id}"}
            count += 1
    assert count >= len(cohort)


def test_the_checker_finds_a_status_that_breaks_the_profile(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    a, source = cohort[0]
    status = _statuses(observations_for(a, source))[0]
    worse = {**status, "valueCodeableConcept": {"coding": [{"system": codes.SNOMED, "code": "385633008"}]}}
    period = {k: v for k, v in status.items() if k != "effectiveDateTime"}
    period["effectivePeriod"] = {"start": "2022-01-01"}
    assert mcode_issues(worse) == ["value not in ConditionStatusTrendVS"]
    assert mcode_issues(period) == ["effective[x] ['effectivePeriod']"]


def test_one_status_per_irecist_timepoint_with_the_criterion_trend(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    seen: set[str] = set()
    for a, source in cohort:
        observations = observations_for(a, source)
        by_url = _by_url(observations)
        statuses = _statuses(observations)
        assert [s["effectiveDateTime"] for s in statuses] == [
            tp.timepoint_date.isoformat() for tp in a.immune_timepoints
        ]
        for status in statuses:
            timepoint = by_url[status["derivedFrom"][0]["reference"]]
            assert timepoint["code"]["coding"][0]["code"] == codes.CODE_IRECIST_TPR
            assert timepoint["effectiveDateTime"] == status["effectiveDateTime"]
            category = timepoint["valueCodeableConcept"]["coding"][0]["code"]
            assert status["valueCodeableConcept"]["coding"][0]["code"] == EXPECTED_TREND[category]
            seen.add(category)
    assert {"iCR", "iPR", "iSD", "iUPD", "iCPD"} <= seen


def test_focus_is_the_primary_cancer_condition_and_identifiers_are_stable(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    for a, source in cohort:
        assert source.primary_cancer_ref is not None
        assert source.primary_cancer_ref.startswith("Condition/")
        first = _statuses(observations_for(a, source))
        again = _statuses(observations_for(a, source))
        assert [s["identifier"] for s in first] == [s["identifier"] for s in again]
        assert len({s["identifier"][0]["value"] for s in first}) == len(first)
        for status in first:
            assert status["focus"] == [{"reference": source.primary_cancer_ref}]


def test_without_a_cancer_condition_focus_is_left_out(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    a, source = cohort[0]
    statuses = _statuses(observations_for(a, replace(source, primary_cancer_ref=None)))
    assert statuses
    assert all("focus" not in s for s in statuses)
    assert all(mcode_issues(s) == [] for s in statuses)


def test_dissociated_response_status_derives_from_the_finding_too() -> None:
    (a, source), *_ = _cohort([Trajectory.DR_TARGET], 1)
    observations = observations_for(a, source)
    by_url = _by_url(observations)
    findings = [f for f in a.atypical if f.kind.value == "DR"]
    assert findings
    for finding in findings:
        (status,) = [
            s for s in _statuses(observations) if s["effectiveDateTime"] == finding.timepoint_date.isoformat()
        ]
        derived = [by_url[d["reference"]]["code"]["coding"][0]["code"] for d in status["derivedFrom"]]
        assert derived == [codes.CODE_IRECIST_TPR, codes.CODE_ATYPICAL_RESPONSE]
        timepoint = by_url[status["derivedFrom"][0]["reference"]]
        category = timepoint["valueCodeableConcept"]["coding"][0]["code"]
        assert status["valueCodeableConcept"]["coding"][0]["code"] == EXPECTED_TREND[category]


def test_pseudoprogression_iupd_scan_is_undetermined_never_worsened() -> None:
    (a, source), *_ = _cohort([Trajectory.PSPD], 1)
    assert any(f.kind.value == "PsPD" for f in a.atypical)
    statuses = {s["effectiveDateTime"]: s for s in _statuses(observations_for(a, source))}
    iupd = [tp for tp in a.immune_timepoints if tp.overall.value == "iUPD"]
    assert iupd, "a pseudoprogression course passes through iUPD"
    for tp in iupd:
        value = statuses[tp.timepoint_date.isoformat()]["valueCodeableConcept"]["coding"][0]["code"]
        assert value == UNDETERMINED
        assert value != WORSENED


def test_focus_prefers_the_mcode_primary_cancer_and_skips_refuted_ones() -> None:
    """mCODE STU4: the focus of a disease status is the cancer it describes; an unprofiled older
    Condition or a refuted one does not take the place of the PrimaryCancerCondition."""
    resources = generate_patient(Trajectory.PR, seed=7001, patient_id="focus").resources
    (primary,) = [r for r in resources if r["resourceType"] == "Condition"]
    older = {k: v for k, v in primary.items() if k not in ("meta", "id")}
    older |= {"id": "focus-older", "onsetDateTime": "2001-01-01", "recordedDate": "2001-01-01"}
    refuted = {**primary, "id": "focus-refuted", "onsetDateTime": "2000-01-01", "recordedDate": "2000-01-01"}
    refuted["verificationStatus"] = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}
        ]
    }
    source = patient_input("focus", [*resources, older, refuted])
    assert source.primary_cancer_ref == f"Condition/{primary['id']}"
    without_primary = [r for r in resources if r is not primary]
    assert patient_input("focus", [*without_primary, older]).primary_cancer_ref == "Condition/focus-older"
