"""Data integrity on the way in (docs/fhir/data-integrity.md).

- FHIR R4 (resource.html#id): within one server, `Type/id` names one resource. Two different
  resources under one name cannot both be true; reading either could change the response, so the
  patient is not assessed and the issue says so. The same content twice is one resource.
- RECIST 1.1 (Eisenhauer 2009, section 3.1 and 3.3): target lesions are chosen among measurable
  lesions at baseline (>= 10 mm longest diameter, lymph nodes >= 15 mm short axis). A target
  measured 0 mm before treatment is impossible and is named; 0 mm after treatment start is a
  legitimate disappearance (section 4.3.1, CR) and is not.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from service.adapters.fhir.inbound import bundle_patients, patient_input
from tests.unit.fhir.conftest import by_id, patient_resources

Resources = list[dict[str, Any]]


def _diameter(resource: dict[str, Any], mm: float) -> None:
    resource["component"][0]["valueQuantity"] = {
        "value": mm,
        "unit": "mm",
        "system": "http://unitsofmeasure.org",
        "code": "mm",
    }


def test_the_same_resource_twice_reads_as_once() -> None:
    once = patient_input("p1", patient_resources())
    resources = patient_resources()
    resources.append(copy.deepcopy(by_id(resources, "m1")))
    resources.append(
        {**copy.deepcopy(by_id(resources, "m2")), "meta": {"versionId": "7"}}
    )  # meta is no content
    assert patient_input("p1", resources) == once


def test_two_different_resources_with_one_type_and_id_stop_the_patient() -> None:
    resources = patient_resources()
    other = copy.deepcopy(by_id(resources, "m1"))
    _diameter(other, 12)  # the baseline lesion 23.4 mm in one copy, 12 mm in the other
    resources.append(other)
    mapped = patient_input("p1", resources)
    assert mapped.timeline is None
    conflicts = [
        (i.severity, i.code, i.ref) for i in mapped.issues if i.code == "duplicate-resource-conflict"
    ]
    assert conflicts == [("error", "duplicate-resource-conflict", "Observation/m1")]


def test_a_bundle_with_two_different_entries_under_one_id_is_not_assessed() -> None:
    resources = patient_resources()
    other = copy.deepcopy(by_id(resources, "ma1"))
    other["effectiveDateTime"] = "2024-01-02"  # another ICI start date
    entries = [{"resource": r} for r in [*resources, other]]
    found = bundle_patients({"resourceType": "Bundle", "type": "collection", "entry": entries})
    mapped = patient_input("p1", found.groups["p1"])
    assert mapped.timeline is None
    assert [i.ref for i in mapped.issues if i.code == "duplicate-resource-conflict"] == [
        "MedicationAdministration/ma1"
    ]


def _baseline_issues(resources: Resources) -> list[tuple[str, str, str | None]]:
    mapped = patient_input("p1", resources)
    assert mapped.timeline is not None  # the reading is kept: the issue names it
    return [(i.severity, i.message, i.ref) for i in mapped.issues if i.code == "impossible-baseline-value"]


def test_a_target_of_0_mm_before_treatment_is_named() -> None:
    resources = patient_resources()
    _diameter(by_id(resources, "m1"), 0)  # target L1 on the baseline scan of 2024-02-26
    assert _baseline_issues(resources) == [
        (
            "error",
            "target lesion L1: longest diameter 0 mm on 2024-02-26, before the treatment start "
            "2024-03-04; a target lesion is measurable at baseline",
            "Observation/m1",
        )
    ]


def test_a_nodal_target_is_judged_on_its_short_axis() -> None:
    resources = patient_resources()
    by_id(resources, "m2")["component"][1]["valueQuantity"]["value"] = 0  # node L2 short axis
    assert [ref for _, _, ref in _baseline_issues(resources)] == ["Observation/m2"]


def test_just_above_0_mm_is_no_impossible_value() -> None:
    """1 mm is below the measurable size, which the rules report (target-not-measurable), not this."""
    resources = patient_resources()
    _diameter(by_id(resources, "m1"), 1)
    assert _baseline_issues(resources) == []


def test_0_mm_after_treatment_start_is_a_disappearance_not_an_error() -> None:
    resources = patient_resources()
    _diameter(by_id(resources, "m5"), 0)  # target L4 on the follow-up scan of 2024-04-29
    assert _baseline_issues(resources) == []
    mapped = patient_input("p1", resources)
    assert mapped.timeline is not None
    assert mapped.timeline.treatment_start == date(2024, 3, 4)
