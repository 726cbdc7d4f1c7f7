"""The Bulk Data spool gives back each patient's resources exactly as their lines parse one by one.

`NdjsonSpool.add_page` files a patient's lines of a page as one row (joined by commas) and
`resources_of` parses a patient's rows with one `orjson.loads` of a JSON array (parse
cost); what comes back must be what parsing each line alone gives, in the order the lines came.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.adapters.fhir.bulk import NdjsonSpool
from service.adapters.fhir.inbound import patient_input, patient_of
from service.adapters.fhir.typed import TypedResource
from tests.unit.fhir.test_inbound_fast_paths import PATIENTS, TARGETS, _assert_same, _general, single_edits

Resource = dict[str, Any]


def _observation(rid: str, reference: str, key: str = "subject") -> Resource:
    return {"resourceType": "Observation", "id": rid, "status": "final", key: {"reference": reference}}


def _lines_of(resources: list[Resource]) -> list[bytes]:
    return [orjson.dumps(r) for r in resources]


def test_each_patient_gets_their_lines_back_in_order_across_pages_and_files() -> None:
    patients = [{"resourceType": "Patient", "id": pid} for pid in ("a", "b")]
    observations = [
        _observation("o1", "Patient/a"),
        _observation("o2", "http://example.org/fhir/Patient/b/_history/3"),
        _observation("o3", "Patient/a"),
        _observation("o4", "urn:uuid:b"),
        _observation("o5", "Patient/a?x=1"),
        _observation("o6", "Group/g"),  # no patient: not filed
        {"resourceType": "BodyStructure", "id": "l1", "patient": {"reference": "Patient/b"}},
        {"resourceType": "MedicationAdministration", "id": "m1", "subject": {"reference": "Patient/a"}},
    ]
    medication = {"resourceType": "Medication", "id": "med", "code": {"text": "x"}}
    observations[-1]["medicationReference"] = {"reference": "Medication/med"}
    lines = _lines_of(observations)
    lines[2] = b"  " + lines[2] + b" \r"  # whitespace around a line is JSON whitespace
    with NdjsonSpool() as spool:
        spool.add_page(_lines_of(patients), "Patient export")
        spool.add_page(lines[:3], "Observation export", 1)  # pages of 3 lines
        spool.add_page([*lines[3:6], b"{broken"], "Observation export", 4)
        spool.add_page([*lines[6:], orjson.dumps(medication)], "Other export", 1)
        expected: dict[str, list[Resource]] = {"a": [patients[0]], "b": [patients[1]]}
        for line in lines:
            resource = orjson.loads(line)
            owner = patient_of(resource)
            if owner is not None:
                expected[owner].append(resource)
        assert list(spool.patient_ids()) == ["a", "b"]
        assert spool.resources_of("a") == expected["a"]
        assert spool.resources_of("b") == expected["b"]
        assert [r["id"] for r in expected["a"]] == ["a", "o1", "o3", "o5", "m1"]
        assert [r["id"] for r in expected["b"]] == ["b", "o2", "o4", "l1"]
        assert spool.patient_resources("a") == [*expected["a"], medication]
        assert spool.resources_of("nobody") == []
        assert [(i.code, i.ref) for i in spool.stats.issues] == [
            ("malformed-resource", "Observation export line 7")
        ]
        assert (spool.stats.lines, spool.stats.resources, spool.stats.pages) == (12, 10, 4)


def test_a_line_nested_to_the_parsers_limit_is_read_back_alone() -> None:
    # orjson parses 1024 levels: the line alone has 1024, inside the spool's array it would have 1025.
    head = orjson.dumps(_observation("deep", "Patient/a"))[:-1]
    line = head + b',"valueSampledData":' + b"[" * 1023 + b"]" * 1023 + b"}"
    plain = _observation("plain", "Patient/a")
    with NdjsonSpool() as spool:
        spool.add_page([orjson.dumps(plain), line, orjson.dumps(plain)], "Observation export")
        assert spool.stats.issues == []
        first, deep, last = spool.resources_of("a")
    assert first == last == plain
    value = deep.pop("valueSampledData")
    assert deep == _observation("deep", "Patient/a")
    depth = 0
    while value:  # (== on the nested lists would exceed Python's own recursion limit)
        (value,) = value
        depth += 1
    assert (depth, value) == (1022, [])


def test_the_same_reference_text_in_another_element_finds_the_same_patient() -> None:
    resources = [
        _observation("o1", "Patient/a"),
        _observation("o2", "Patient/a", key="patient"),
        {**_observation("o3", "Patient/b", key="patient"), "subject": "not a reference"},
        {**_observation("o4", "Patient/b"), "patient": {"reference": "Patient/a"}},  # subject first
    ]
    with NdjsonSpool() as spool:
        spool.add_page(_lines_of(resources), "Observation export")
        assert [r["id"] for r in spool.resources_of("a")] == ["o1", "o2"]
        assert [r["id"] for r in spool.resources_of("b")] == ["o3", "o4"]


# --- typed read-back (`patient_items`, what `BulkMeasurementSource` maps) -----------------------------
def _spooled_alike(patient_id: str, resources: list[Resource]) -> int:
    """A patient's export lines filed in a spool map the same read back typed (`patient_items`) as
    read back as dicts by the general path (`==` and `repr`, issues included); how many typed."""
    with NdjsonSpool() as spool:
        spool.add_page([orjson.dumps(r) for r in resources], "export")
        items = spool.patient_items(patient_id)
        _assert_same(
            patient_input(patient_id, items), _general(patient_id, spool.patient_resources(patient_id))
        )
        return sum(isinstance(i, TypedResource) for i in items)


def test_typed_read_back_maps_as_the_dicts_on_well_formed_patients() -> None:
    for patient_id, resources in PATIENTS:
        assert _spooled_alike(patient_id, resources) > 0  # the typed path is really taken


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_typed_read_back_maps_as_the_dicts_on_every_single_edit(target: str) -> None:
    for patient_id, resources in single_edits(target):
        _spooled_alike(patient_id, resources)


def test_typed_read_back_brings_the_medication_a_typed_administration_references() -> None:
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "m1",
        "status": "completed",
        "effectiveDateTime": "2024-01-02",
        "subject": {"reference": "Patient/a"},
        "medicationReference": {"reference": "Medication/med"},
    }
    medication = {"resourceType": "Medication", "id": "med", "code": {"text": "x"}}
    with NdjsonSpool() as spool:
        spool.add_page(
            _lines_of([{"resourceType": "Patient", "id": "a"}, administration, medication]), "export"
        )
        *resources, last = spool.patient_items("a")
        assert any(isinstance(r, TypedResource) and r.id == "m1" for r in resources)
        assert last == medication
