"""mCODE STU4 TumorSize as hospitals send it (docs/fhir/mcode.md).

- mCODE TumorSize (LOINC 21889-1) carries the longest dimension (33728-7) and up to two others
  (33729-5, 33730-3). RECIST 1.1 uses the longest diameter (short axis for nodes); the others are
  kept in an information issue, never dropped without a word.
- RECIST 1.1 (Eisenhauer 2009, section 3.2) measures by imaging (CT, MRI) or caliper; a size
  measured on a pathology specimen (mCODE: `specimen`, method "gross examination and sampling of
  tissue specimen", SNOMED 787377000, or a laboratory category without imaging) is no RECIST
  measurement and is excluded with a warning naming it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from service.adapters.fhir.inbound import patient_input
from tests.unit.fhir.conftest import by_id, patient_resources

SNOMED = "http://snomed.info/sct"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _read(edit: dict[str, Any]) -> tuple[Decimal | None, list[tuple[str, str]]]:
    """The longest diameter read from m1 (target L1, baseline 23.4 mm) after `edit`, and m1's issues."""
    resources = patient_resources()
    by_id(resources, "m1").update(edit)
    mapped = patient_input("p1", resources)
    assert mapped.timeline is not None
    found = [
        m.long_axis_mm for s in mapped.timeline.scans for m in s.measurements if m.ref == "Observation/m1"
    ]
    issues = [(i.code, i.message) for i in mapped.issues if i.ref == "Observation/m1"]
    return (found[0] if found else None), issues


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def test_other_dimensions_are_reported_and_the_longest_is_used() -> None:
    components = [
        {
            "code": _concept("http://loinc.org", "33728-7"),
            "valueQuantity": {
                "value": 2.34,
                "unit": "cm",
                "system": "http://unitsofmeasure.org",
                "code": "cm",
            },
        },
        {
            "code": _concept("http://loinc.org", "33729-5"),
            "valueQuantity": {
                "value": 1.5,
                "unit": "cm",
                "system": "http://unitsofmeasure.org",
                "code": "cm",
            },
        },
        {
            "code": _concept("http://loinc.org", "33730-3"),
            "valueQuantity": {"value": 9, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"},
        },
    ]
    assert _read({"component": components}) == (
        Decimal("23.40"),
        [
            (
                "tumor-size-other-dimensions",
                "other dimensions not used by RECIST 1.1: 33729-5 15 mm, 33730-3 9 mm",
            )
        ],
    )


def test_an_imaging_method_is_read_as_before() -> None:
    assert _read({"method": _concept(SNOMED, "77477000")}) == (Decimal("23.40"), [])  # CT scan


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({"specimen": {"reference": "Specimen/s1"}}, "measured on a specimen"),
        ({"method": _concept(SNOMED, "787377000")}, "method is a gross examination of a specimen"),
        (
            {"category": [_concept(CATEGORY, "laboratory")], "derivedFrom": []},
            "category laboratory, no imaging study",
        ),
    ],
)
def test_pathology_measurements_are_excluded_with_a_warning(edit: dict[str, Any], why: str) -> None:
    assert _read(edit) == (
        None,
        [
            (
                "pathology-measurement-not-recist",
                f"tumour size from pathology ({why}); RECIST 1.1 uses imaging measurements only",
            )
        ],
    )


def test_a_laboratory_category_with_an_imaging_study_is_imaging() -> None:
    """Just inside the rule: the ImagingStudy in derivedFrom says the size was read on a scan."""
    assert _read({"category": [_concept(CATEGORY, "laboratory")]}) == (Decimal("23.40"), [])


def test_a_laboratory_and_imaging_category_is_imaging() -> None:
    size, issues = _read(
        {"category": [_concept(CATEGORY, "laboratory"), _concept(CATEGORY, "imaging")], "derivedFrom": []}
    )
    assert size == Decimal("23.40")
    assert issues == []  # no derivedFrom: the ImagingStudy of the same day (2024-02-26) is its scan
