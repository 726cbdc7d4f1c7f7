"""Typed search pages map exactly as the dict pages they replace (parse cost).

The REST sync decodes the patient searches' pages with msgspec (`typed.read_search_page(...,
typed=True)`) and maps the typed resources with `inbound._typed_observation` and the others. The
result must be what the service produced before from the same bytes: `orjson.loads` of each page,
the dicts mapped by the general path (no fast path at all). Every case of
test_inbound_fast_paths.py is replayed this way, its resources serialised into searchset pages (one
page per resource type, as the server sends them; and all in one page, which takes the per-entry
decode), plus pages where the typed decode fails for an entry or for the whole page.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from service.adapters.fhir import codes, inbound, source, typed
from service.adapters.fhir.client import FhirClient, create_http_client
from service.adapters.fhir.inbound import patient_input, patient_of
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.typed import SearchPage, TypedResource, read_search_page
from service.application.ports import PatientInput, PatientRef
from tests.unit.fhir.test_inbound_fast_paths import (
    _EDIT,
    PATIENTS,
    POOLS,
    TARGETS,
    Resources,
    _assert_same,
    _coding,
    _edited,
    _general,
    request_edits,
    single_edits,
    with_observation_no_input,
)

TYPED_TYPES = {
    "Observation",
    "MedicationAdministration",
    "MedicationRequest",
    "ImagingStudy",
    "BodyStructure",
}


def searchset(resources: list[Any], **more: Any) -> bytes:
    """A searchset Bundle of `resources` as the server sends it (as `benchmarks/loopback.searchset`)."""
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return orjson.dumps(
        {"resourceType": "Bundle", "type": "searchset", "entry": entries, **more}, default=_big
    )


def pages_by_type(resources: Resources) -> list[bytes]:
    groups: dict[str, list[Any]] = {}
    for r in resources:
        groups.setdefault(str(r.get("resourceType")), []).append(r)
    return [searchset(group) for group in groups.values()]


def _as_dicts(page: SearchPage) -> list[Any]:
    return [r.as_dict() if isinstance(r, TypedResource) else r for r in page.resources]


def read_both(body: bytes) -> tuple[SearchPage, SearchPage]:
    """The page read typed and as dicts: the same resources (as dicts), issues and next link."""
    as_typed = read_search_page(body, "Observation search page 1", typed=True)
    as_dicts = read_search_page(body, "Observation search page 1")
    assert not any(isinstance(r, TypedResource) for r in as_dicts.resources)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)  # `==` of a page nested almost as deep as orjson allows
    try:
        assert _as_dicts(as_typed) == as_dicts.resources
    finally:
        sys.setrecursionlimit(limit)
    assert as_typed.issues == as_dicts.issues
    assert (as_typed.next_url, as_typed.ended) == (as_dicts.next_url, as_dicts.ended)
    return as_typed, as_dicts


def check_pages(patient_id: str, pages: list[bytes]) -> PatientInput:
    """The typed pages mapped equal the dict pages mapped by the general path."""
    typed_items: list[Any] = []
    dict_items: list[Any] = []
    for body in pages:
        as_typed, as_dicts = read_both(body)
        typed_items += as_typed.resources
        dict_items += as_dicts.resources
    result = patient_input(patient_id, typed_items)
    _assert_same(result, _general(patient_id, dict_items))
    return result


def check(patient_id: str, resources: Resources) -> PatientInput:
    """`check_pages` with a page per resource type, and with every resource in one page."""
    result = check_pages(patient_id, pages_by_type(resources))
    check_pages(patient_id, [searchset(resources)])
    return result


# --- the cases of test_inbound_fast_paths.py -----------------------------------------------------------
def test_typed_pages_agree_on_well_formed_patients() -> None:
    for patient_id, resources in PATIENTS:
        assert check(patient_id, resources).timeline is not None
        items = [
            r for body in pages_by_type(resources) for r in read_search_page(body, "x", typed=True).resources
        ]
        # every resource of the typed types is read typed (the fast paths are not bypassed)
        assert [type(r).__name__ for r in items if isinstance(r, TypedResource)]
        assert all(r_type(r) in TYPED_TYPES for r in items if isinstance(r, TypedResource))
        untyped = {r["id"] for r in items if not isinstance(r, TypedResource) and r_type(r) in TYPED_TYPES}
        assert untyped <= {"ma3"}  # the fixture's administration with an effectivePeriod (refused)


def r_type(resource: Any) -> object:
    return resource.resource_type if isinstance(resource, TypedResource) else resource.get("resourceType")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_typed_pages_agree_on_every_single_edit(target: str) -> None:
    for patient_id, resources in single_edits(target):
        check(patient_id, resources)


@pytest.mark.parametrize("key", TARGETS["MedicationRequest"])
def test_typed_pages_agree_on_requests_when_no_dose_was_given(key: str) -> None:
    for patient_id, resources in request_edits(key):
        check(patient_id, resources)


@pytest.mark.parametrize("status", POOLS["status"])
@pytest.mark.parametrize("verification", [None, *POOLS["verificationStatus"]])
def test_typed_pages_agree_on_an_observation_that_is_no_input(status: object, verification: object) -> None:
    for patient_id, resources in with_observation_no_input(status, verification):
        check(patient_id, resources)


@given(
    patient=st.integers(min_value=0, max_value=len(PATIENTS) - 1),
    edits=st.lists(_EDIT, min_size=1, max_size=4),
)
@example(
    patient=0,
    edits=[(codes.CODE_NON_TARGET_STATUS, 0, ("valueCodeableConcept", POOLS["valueCodeableConcept"][4]))],
)
@example(
    patient=0,
    edits=[
        ("MedicationAdministration", 0, ("medicationCodeableConcept", POOLS["medicationCodeableConcept"][6])),
        ("MedicationAdministration", 1, ("medicationCodeableConcept", POOLS["medicationCodeableConcept"][7])),
    ],
)
@example(patient=0, edits=[(codes.LOINC_NEUTROPHILS, 0, ("status", "preliminary"))])
@settings(max_examples=300, deadline=None)
def test_typed_pages_agree_on_odd_resources(
    patient: int, edits: list[tuple[str, int, tuple[str, Any]]]
) -> None:
    patient_id, original = PATIENTS[patient]
    check(patient_id, _edited(original, edits))


class _Big:
    """An integer beyond 64 bits in the JSON text (orjson reads it as a float, msgspec exactly)."""

    def __init__(self, sign: str = "") -> None:
        self.sign = sign

    def __neg__(self) -> _Big:
        return _Big("-")

    def __deepcopy__(self, memo: object) -> _Big:
        return self


BIG = _Big()


def _big(value: object) -> orjson.Fragment:
    if isinstance(value, _Big):
        return orjson.Fragment(f"{value.sign}{2**70}".encode())
    raise TypeError


# More shapes the typed decoder must refuse or read alike: values orjson and msgspec might read
# differently, elements of the typed Structs in other JSON types, and keys the Structs use themselves.
ODD_VALUES: list[tuple[str, dict[str, Any]]] = [
    (codes.LOINC_NEUTROPHILS, {"valueQuantity": {"value": BIG, "code": "10*3/uL", "system": codes.UCUM}}),
    (codes.LOINC_NEUTROPHILS, {"valueQuantity": {"value": -BIG, "code": "10*3/uL", "system": codes.UCUM}}),
    (codes.LOINC_NEUTROPHILS, {"valueQuantity": {"value": 2**63, "code": "10*3/uL", "system": codes.UCUM}}),
    (
        codes.LOINC_NEUTROPHILS,
        {"valueQuantity": {"value": -(2**63), "code": "10*3/uL", "system": codes.UCUM}},
    ),
    (codes.LOINC_NEUTROPHILS, {"valueQuantity": {"value": 7, "code": "10*3/uL", "system": None}}),
    (codes.LOINC_NEUTROPHILS, {"valueQuantity": {"value": 7, "code": "10*3/uL", "unit": 5}}),
    (codes.LOINC_ECOG, {"valueInteger": BIG}),
    (codes.LOINC_TUMOR_SIZE, {"subject": "Patient/x"}),
    (codes.LOINC_TUMOR_SIZE, {"subject": {"reference": 5}}),
    (codes.LOINC_TUMOR_SIZE, {"patient": {"reference": "Patient/other"}}),
    (codes.LOINC_TUMOR_SIZE, {"json_origin": {"x": 1}}),
    (codes.LOINC_TUMOR_SIZE, {"json_index": 3}),
    (
        codes.LOINC_TUMOR_SIZE,
        {"code": {"coding": [{"system": codes.LOINC, "code": codes.LOINC_TUMOR_SIZE, "display": 5}]}},
    ),
    (codes.LOINC_TUMOR_SIZE, {"effectiveDateTime": None}),
    (codes.LOINC_TUMOR_SIZE, {"component": [{"code": {"text": "x"}, "valueQuantity": {"value": "x"}}]}),
    (codes.LOINC_TUMOR_SIZE, {"interpretation": [None]}),
    (
        "MedicationAdministration",
        {"extension": [{"url": codes.EXT_LINE_OF_THERAPY, "valuePositiveInt": BIG}]},
    ),
    ("MedicationAdministration", {"extension": [{"url": 5}]}),
    ("MedicationAdministration", {"medicationCodeableConcept": {"text": "nivolumab", "coding": None}}),
    (
        "MedicationAdministration",
        {"medicationCodeableConcept": {"coding": [{"code": "L01FF02"}], "text": None}},
    ),
    ("MedicationRequest", {"dosageInstruction": [{"timing": None}, {"timing": {"repeat": None}}]}),
    ("BodyStructure", {"identifier": [{"value": None}, {"value": "L9"}]}),
    ("BodyStructure", {"active": None}),
    ("BodyStructure", {"active": True}),
    ("BodyStructure", {"patient": {"reference": "Patient/other"}}),
    ("BodyStructure", {"verificationStatus": "x"}),
    ("BodyStructure", {"extension": [{"url": codes.EXT_LYMPH_NODE, "valueBoolean": None}]}),
    ("BodyStructure", {"location": {"coding": None, "text": "liver"}}),
    ("ImagingStudy", {"started": None}),
    # the one verificationStatus the general path acts on (no contact date), on the latest date:
    # refused by every fast path
    *(
        (target, {"verificationStatus": "entered-in-error", key: "2099-01-01"})
        for target, key in (
            (codes.LOINC_NEUTROPHILS, "effectiveDateTime"),
            (codes.LOINC_TUMOR_SIZE, "effectiveDateTime"),
            ("MedicationAdministration", "effectiveDateTime"),
            ("MedicationRequest", "authoredOn"),
            ("ImagingStudy", "started"),
        )
    ),
    ("ImagingStudy", {"status": None}),
]


@pytest.mark.parametrize(("target", "values"), ODD_VALUES)
def test_typed_pages_agree_on_values_decoded_differently(target: str, values: dict[str, Any]) -> None:
    for patient_id, original in (PATIENTS[0], PATIENTS[-1]):
        resources = _edited(original, [])
        chosen = next((r for r in resources if _target(r, target)), None)
        if chosen is None:
            continue
        chosen.update(values)
        check(patient_id, resources)


def _target(resource: dict[str, Any], target: str) -> bool:
    if resource["resourceType"] == target:
        return True
    codings = resource.get("code", {}).get("coding", []) if resource["resourceType"] == "Observation" else []
    return any(c.get("code") == target for c in codings)


# --- pages the typed decoder reads otherwise -------------------------------------------------------------
def _observation(rid: str = "o1", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": _coding(codes.LOINC, codes.LOINC_NEUTROPHILS),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01",
        "valueQuantity": {"value": 4.5, "code": "10*3/uL", "system": codes.UCUM},
        **more,
    }


def test_an_entry_that_does_not_decode_typed_is_its_dict() -> None:
    body = searchset(
        [
            _observation("o1"),
            _observation("o2", status=5),  # a wrong JSON type
            {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},  # not typed
            {"resourceType": "Observation"},  # no id
            _observation("o3", effectivePeriod={"start": "2024-03-01"}),  # a refused element
            _observation("o4", effectiveInstant=None),  # refused even when null
            _observation("o5"),
        ]
    )
    as_typed, _ = read_both(body)
    assert [type(r).__name__ for r in as_typed.resources] == [
        "ObservationT",
        "dict",
        "dict",
        "dict",
        "dict",
        "dict",
        "ObservationT",
    ]
    assert [patient_of(r) for r in as_typed.resources] == ["p1", "p1", "p1", None, "p1", "p1", "p1"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"resourceType": "Bundle", "entry": [',
        b"[]",
        b'{"resourceType": "Patient", "id": "p1"}',
        b'{"type": "searchset", "entry": []}',
        b'{"resourceType": "Bundle", "entry": {"resource": {}}}',
        b'{"resourceType": "Bundle", "entry": null}',
        b'{"resourceType": "Bundle"}',
        b'{"resourceType": "Bundle", "entry": [5, {"resource": 5}, {"resource": null}, {}, {"fullUrl": "x"}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": 5}}, {"resource": {"id": "x"}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o"}, "search": "x"}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o"}, "search": {"mode": 5}}]}',
        b'{"resourceType": "Bundle", "link": "x", "entry": []}',
        b'{"resourceType": "Bundle", "link": [5, {"relation": "next"}, {"relation": "next", "url": "u"}], "entry": []}',
        b'{"resourceType": "Bundle", "link": [{"relation": "next", "url": ""}], "entry": []}',
        b'{"resourceType": "Bundle", "link": [{"relation": 5, "url": "u"}], "entry": []}',
        b'{"resourceType": "Bundle", "resourceType": "Patient", "entry": []}',
        b'{"resourceType": "Patient", "resourceType": "Bundle", "entry": []}',
        # invalid UTF-8 in an element the typed decoder skips: the page is not JSON, as before
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "note": "\xff"}}]}',
        b'{"resourceType": "Bundle", "meta": "\xc3\xa9", "entry": []}',
        searchset([_observation("o1", note="x")]).replace(b'"note":"x"', b'"note":"\xff"'),
        searchset([_observation("o1", note="x")]).replace(b'"note":"x"', b'"note":"\xed\xa0\x80"'),
        searchset([_observation("o1", note="x")]).replace(b'"note":"x"', b'"note":"\xc3\xa9"'),
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "x": "\\ud800"}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "x": NaN}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "x": '
        + b"[" * 1100
        + b"]" * 1100
        + b"}}]}",
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "x": '
        + b"[" * 990
        + b"]" * 990
        + b"}}]}",
    ],
)
def test_pages_the_typed_decoder_cannot_read_are_read_as_before(body: bytes) -> None:
    read_both(body)


def test_duplicate_keys_keep_the_last_value_as_orjson_does() -> None:
    o1 = orjson.dumps(_observation("o1")).decode()
    twice = o1[:-1] + ', "status": "preliminary", "id": "o9"}'
    body = (
        '{"resourceType": "Bundle", "entry": [{"resource": ' + o1 + "}], "
        '"entry": [{"resource": ' + twice + '}, {"resource": ' + o1 + ', "resource": ' + twice + "}]}"
    ).encode()
    as_typed, as_dicts = read_both(body)
    assert [(r["id"], r["status"]) for r in as_dicts.resources] == [("o9", "preliminary")] * 2
    assert [(r.id, r.status) for r in as_typed.resources] == [("o9", "preliminary")] * 2


def test_outcome_entries_are_reported_as_before() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"code": "informational", "diagnostics": "truncated"}],
    }
    page = orjson.loads(searchset([_observation("o1"), outcome, _observation("o2"), _observation("o3")]))
    page["entry"][2]["search"] = {"mode": "outcome"}  # a typed-decodable resource in outcome mode
    page["link"] = [{"relation": "next", "url": "http://x/fhir/Observation?page=2"}]
    as_typed, _ = read_both(orjson.dumps(page))
    assert [r.id for r in as_typed.resources] == ["o1", "o3"]
    assert [(i.code, i.severity, counted) for i, counted in as_typed.issues] == [
        ("server-outcome", "information", False),
        ("server-outcome", "information", False),
    ]
    assert as_typed.next_url == "http://x/fhir/Observation?page=2"
    # a page of Observations only (decoded typed in one go): the same
    only = orjson.loads(searchset([_observation("o1"), _observation("o2"), _observation("o3")]))
    only["entry"][1]["search"] = {"mode": "outcome"}
    as_typed, _ = read_both(orjson.dumps(only))
    assert [r.id for r in as_typed.resources] == ["o1", "o3"]
    assert [i.code for i, _ in as_typed.issues] == ["server-outcome"]
    # the same page with an entry that is not typed takes the per-entry decode: the same again
    page["entry"].append({"resource": {"resourceType": "Condition", "id": "c1"}})
    read_both(orjson.dumps(page))


def test_a_number_beyond_the_double_range_in_a_skipped_element_is_read() -> None:
    """The one difference typed.py documents: orjson refuses the page, msgspec skips the number.

    The Observation is read; where its typed fast path declines, its dict cannot be had, and it
    is reported as malformed instead of ending the search.
    """
    usual = orjson.dumps(_observation("o1")).decode()[:-1] + ', "note": 1e400}'
    declined = orjson.dumps(_observation("o2", status="preliminary")).decode()[:-1] + ', "note": 1e400}'
    body = (
        '{"resourceType": "Bundle", "entry": [{"resource": ' + usual + '}, {"resource": ' + declined + "}]}"
    ).encode()
    assert read_search_page(body, "x").ended
    as_typed = read_search_page(body, "x", typed=True)
    assert not as_typed.issues
    result = patient_input("p1", as_typed.resources)
    assert [(i.code, i.ref) for i in result.issues] == [
        ("malformed-resource", "Observation/o2"),
        ("no-ici-start", "Patient/p1"),
    ]


# --- the REST sync: FhirMeasurementSource over typed pages ------------------------------------------------
async def test_source_maps_typed_pages_as_it_maps_dict_pages(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.fhir.test_source_and_writer import HAPI_LIKE, FakeServer

    for capability in (None, HAPI_LIKE):
        for patient_id, original in PATIENTS:
            resources = _edited(original, [("BodyStructure", 1, ("patient", {"reference": "Patient/other"}))])
            server = FakeServer(copy.deepcopy(resources), capability)
            httpx_mock.add_callback(server, is_reusable=True)
            results = []
            for typed_searches in (source.TYPED_SEARCHES, frozenset()):
                monkeypatch.setattr(source, "TYPED_SEARCHES", typed_searches)
                async with create_http_client() as http:
                    client = FhirClient(http, "http://127.0.0.1:8080/fhir")
                    results.append(
                        await FhirMeasurementSource(client, page_size=7).timeline_for(PatientRef(patient_id))
                    )
            _assert_same(*results)
            assert any(i.code == "foreign-lesion" for i in results[0].issues)
            httpx_mock.reset()


async def test_search_typed_yields_typed_resources(httpx_mock: HTTPXMock) -> None:
    body = searchset([_observation("o1"), {"resourceType": "Condition", "id": "c1"}])
    httpx_mock.add_response(
        url="http://127.0.0.1:8080/fhir/Observation?patient=p1", content=body, is_reusable=True
    )
    async with create_http_client() as http:
        client = FhirClient(http, "http://127.0.0.1:8080/fhir")
        found = [r async for r in client.search_typed("Observation", {"patient": "p1"})]
        plain = [r async for r in client.search("Observation", {"patient": "p1"})]
    assert [type(r) for r in found] == [typed.ObservationT, dict]
    assert [type(r) for r in plain] == [dict, dict]
    assert _as_dicts(SearchPage(found)) == plain


@pytest.mark.parametrize(
    ("struct", "refused"),
    [
        (typed.ObservationT, inbound._UNUSUAL_EFFECTIVE | inbound._PATHOLOGY_KEYS),
        (typed.MedicationAdministrationT, inbound._UNUSUAL_EFFECTIVE),
        (typed.MedicationRequestT, inbound._UNUSUAL_AUTHORED),
        (typed.ImagingStudyT, inbound._UNUSUAL_STUDY),
        (typed.BodyStructureT, inbound._CONTACT_KEYS),
    ],
)
def test_each_struct_refuses_exactly_the_elements_its_dict_fast_path_refuses(
    struct: type[typed.TypedResource], refused: frozenset[str]
) -> None:
    """The Structs copy inbound's lists of contact elements that send a resource to the general
    path; a key added there and not here would let the typed path read what the dict path refuses."""
    declared = {f.name for f in msgspec.structs.fields(struct) if f.default is msgspec.UNSET}
    assert declared == set(refused)
