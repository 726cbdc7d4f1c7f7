"""Every reference form FHIR R4 allows, in every Bundle type, reads like the plain relative Bundle.

FHIR R4 "Resolving references in Bundles" (bundle.html#references), "Contained resources"
(references.html#contained) and logical references (references.html#logical); the rules the
service follows are written in docs/fhir/references.md. The patient is the hand-written
contract patient (tests/fixtures/fhir), with identifiers added to the Patient and ImagingStudies so
that logical references have something to match. Each form rewrites the same Bundle; the reading
(`bundle_patients` then `patient_input`, the path of `$assess` and `oncoresponse assess`) must
equal the plain relative Bundle's, up to the ids a form gives resources (a `urn:uuid:` entry
without `resource.id` is known by its uuid), or give the form's named data issue.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from service.adapters.fhir.inbound import bundle_patients, patient_input
from service.adapters.fhir.outbound import assessment_bundle
from service.domain.engine import assess
from tests.unit.fhir.conftest import patient_resources

Resource = dict[str, Any]
BASE = "http://hospital.example/fhir/"
OTHER = "http://other.example/fhir/"
READ_ELEMENTS = ("subject", "patient", "focus", "derivedFrom")


def _resources() -> list[Resource]:
    resources = patient_resources()
    for resource in resources:
        if resource["resourceType"] == "Patient":
            resource["identifier"] = [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-0001"}]
        if resource["resourceType"] == "ImagingStudy":
            resource["identifier"] = [
                {"system": "urn:dicom:uid", "value": f"urn:oid:1.2.840.99.{resource['id'][2:]}"}
            ]
    return resources


@dataclass
class Form:
    """A Bundle's entries written in one reference form, and what reading them must give."""

    entries: list[Resource]
    renames: dict[str, str] = field(default_factory=dict)  # id the form gives -> plain id
    issues: dict[str, str] = field(default_factory=dict)  # ref -> issue code expected on top


def _uuid(rid: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"oncoresponse-test/{rid}"))


def _oid(rid: str) -> str:
    return f"2.25.{uuid.UUID(_uuid(rid)).int}"


def _references(resource: Resource) -> list[Resource]:
    """The Reference objects of the elements the mapping reads."""
    found: list[Resource] = []
    for element in READ_ELEMENTS:
        value = resource.get(element)
        found.extend(value if isinstance(value, list) else [value] if value else [])
    return found


def _rewritten(full_url: Callable[[Resource], str | None], reference: Callable[[str], str]) -> Form:
    entries = []
    for resource in _resources():
        for ref in _references(resource):
            ref["reference"] = reference(ref["reference"])
        entry: Resource = {"resource": resource}
        if (url := full_url(resource)) is not None:
            entry["fullUrl"] = url
        entries.append(entry)
    return Form(entries)


def relative() -> Form:
    return _rewritten(lambda r: None, lambda ref: ref)


def absolute() -> Form:
    return _rewritten(lambda r: f"{BASE}{r['resourceType']}/{r['id']}", lambda ref: BASE + ref)


def other_server_absolute() -> Form:
    """A lesion named on another server: not the Bundle's BodyStructure/bs1 although its Type/id is."""
    form = _rewritten(
        lambda r: f"{BASE}{r['resourceType']}/{r['id']}",
        lambda ref: OTHER + ref if ref == "BodyStructure/bs1" else BASE + ref,
    )
    for observation in ("m1", "m3", "m6-draft"):
        form.issues[f"Observation/{observation}"] = "reference-other-server"
    return form


def _urn_keys(resource: Resource) -> str:
    return f"urn:uuid:{_uuid(resource['id'])}"


def urn_uuid_id_equal() -> Form:
    form = _rewritten(_urn_keys, lambda ref: f"urn:uuid:{_uuid(ref.split('/')[1])}")
    for entry in form.entries:
        old = entry["resource"]["id"]
        entry["resource"]["id"] = _uuid(old)
        form.renames[_uuid(old)] = old
    return form


def urn_uuid_id_different() -> Form:
    return _rewritten(_urn_keys, lambda ref: f"urn:uuid:{_uuid(ref.split('/')[1])}")


def urn_uuid_id_absent() -> Form:
    form = _rewritten(_urn_keys, lambda ref: f"urn:uuid:{_uuid(ref.split('/')[1])}")
    for entry in form.entries:
        old = entry["resource"].pop("id")
        form.renames[_uuid(old)] = old
    return form


def urn_oid() -> Form:
    return _rewritten(lambda r: f"urn:oid:{_oid(r['id'])}", lambda ref: f"urn:oid:{_oid(ref.split('/')[1])}")


def versioned() -> Form:
    form = _rewritten(lambda r: None, lambda ref: f"{ref}/_history/3")
    for entry in form.entries:
        entry["resource"]["meta"] = {**entry["resource"].get("meta", {}), "versionId": "3"}
    return form


def contained() -> Form:
    """Each Observation carries its lesion as a contained BodyStructure (`focus: #lesion`)."""
    form = relative()
    lesions = {
        e["resource"]["id"]: e["resource"]
        for e in form.entries
        if e["resource"]["resourceType"] == "BodyStructure"
    }
    form.entries = [e for e in form.entries if e["resource"]["resourceType"] != "BodyStructure"]
    for entry in form.entries:
        resource = entry["resource"]
        for ref in resource.get("focus", []):
            lesion_id = ref["reference"].split("/")[1]
            inner = {**copy.deepcopy(lesions[lesion_id]), "id": "lesion"}
            resource["contained"] = [inner]
            ref["reference"] = "#lesion"
            # identical copies are one lesion, known by the first container's id (docs/fhir/references.md)
            form.renames.setdefault(f"{resource['id']}-lesion", lesion_id)
    return form


def logical() -> Form:
    """Patient, lesions and studies named by identifier only (the mCODE way to name a Tumor)."""
    form = relative()
    by_key = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in form.entries}
    for entry in form.entries:
        for ref in _references(entry["resource"]):
            target = by_key[ref.pop("reference")]
            ref["identifier"] = copy.deepcopy(target["identifier"][0])
            if target["resourceType"] == "ImagingStudy":
                ref["type"] = "ImagingStudy"
    return form


FORMS: dict[str, Callable[[], Form]] = {
    "relative": relative,
    "absolute": absolute,
    "other-server-absolute": other_server_absolute,
    "urn-uuid-id-equal": urn_uuid_id_equal,
    "urn-uuid-id-different": urn_uuid_id_different,
    "urn-uuid-id-absent": urn_uuid_id_absent,
    "urn-oid": urn_oid,
    "versioned": versioned,
    "contained": contained,
    "logical-by-identifier": logical,
}


def _with_full_urls(entries: list[Resource]) -> list[Resource]:
    """searchset and document Bundles need a fullUrl on every entry: the RESTful one where absent."""
    for entry in entries:
        if "fullUrl" not in entry:
            resource = entry["resource"]
            entry["fullUrl"] = f"{BASE}{resource['resourceType']}/{resource['id']}"
    return entries


def collection(entries: list[Resource]) -> Resource:
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _requests(kind: str, entries: list[Resource]) -> Resource:
    for entry in entries:
        resource = entry["resource"]
        if "id" in resource and not entry.get("fullUrl", "").startswith("urn:"):
            entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        else:
            entry["request"] = {"method": "POST", "url": resource["resourceType"]}
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def transaction(entries: list[Resource]) -> Resource:
    return _requests("transaction", entries)


def batch(entries: list[Resource]) -> Resource:
    return _requests("batch", entries)


def searchset_with_include(entries: list[Resource]) -> Resource:
    """Observations matched, everything else `_include`d (search.mode)."""
    for entry in _with_full_urls(entries):
        is_match = entry["resource"]["resourceType"] == "Observation"
        entry["search"] = {"mode": "match" if is_match else "include"}
    return {"resourceType": "Bundle", "type": "searchset", "total": 16, "entry": entries}


def document(entries: list[Resource]) -> Resource:
    """A Composition first, naming the patient in the form's own way."""
    entries = _with_full_urls(entries)
    patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
    subject = {"reference": patient["fullUrl"]}
    composition = {
        "resourceType": "Composition",
        "id": "doc1",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": subject,
        "date": "2024-06-01",
        "author": [{"display": "Oncology"}],
        "title": "Tumour assessment",
    }
    head = {"fullUrl": f"{BASE}Composition/doc1", "resource": composition}
    return {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:" + _uuid("doc1")},
        "timestamp": "2024-06-01T12:00:00Z",
        "entry": [head, *entries],
    }


BUNDLE_TYPES: dict[str, Callable[[list[Resource]], Resource]] = {
    "collection": collection,
    "transaction": transaction,
    "batch": batch,
    "searchset-include": searchset_with_include,
    "document": document,
}


def _reading(bundle: Resource, renames: dict[str, str]) -> dict[str, str]:
    """Each patient's `PatientInput` (timeline and issues) as text, the form's ids renamed back."""
    found = bundle_patients(bundle)
    readings = {}
    for patient_id, resources in found.groups.items():
        text = repr((patient_input(patient_id, resources), found.issues))
        for new, old in renames.items():
            text = text.replace(new, old)
        readings[renames.get(patient_id, patient_id)] = text
    return readings


@pytest.mark.parametrize("bundle_type", list(BUNDLE_TYPES))
@pytest.mark.parametrize("form_name", [f for f in FORMS if f != "other-server-absolute"])
def test_each_reference_form_reads_like_the_plain_relative_bundle(form_name: str, bundle_type: str) -> None:
    plain = _reading(collection(relative().entries), {})
    form = FORMS[form_name]()
    assert _reading(BUNDLE_TYPES[bundle_type](form.entries), form.renames) == plain
    assert set(plain) == {"p1"}


@pytest.mark.parametrize("bundle_type", list(BUNDLE_TYPES))
def test_another_servers_lesion_is_reported_and_not_taken_for_the_bundles(bundle_type: str) -> None:
    form = other_server_absolute()
    found = bundle_patients(BUNDLE_TYPES[bundle_type](form.entries))
    reported = {(i.ref, i.code) for i in found.issues}
    assert reported == set(form.issues.items())
    assert all(f"{OTHER}BodyStructure/bs1" in i.message for i in found.issues)
    mapped = patient_input("p1", found.groups["p1"])
    assert mapped.timeline is not None
    lost = {(i.ref, i.code) for i in mapped.issues if i.code == "lesion-not-found"}
    assert lost == {("Observation/m1", "lesion-not-found"), ("Observation/m3", "lesion-not-found")}
    measured = {m.lesion_id for scan in mapped.timeline.scans for m in scan.measurements}
    assert "L1" not in measured
    assert "L2" in measured


def test_unresolvable_references_are_named_never_dropped_silently() -> None:
    entries = relative().entries
    observation = next(e["resource"] for e in entries if e["resource"]["id"] == "m2")
    observation["focus"] = [{"reference": "urn:uuid:" + _uuid("nowhere")}]
    observation["derivedFrom"] = [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:9.9"}}]
    found = bundle_patients(collection(entries))
    assert sorted((i.ref, i.code, i.message) for i in found.issues) == [
        (
            "Observation/m2",
            "reference-not-resolved",
            "identifier urn:dicom:uid|urn:oid:9.9 names no entry of the Bundle",
        ),
        (
            "Observation/m2",
            "reference-not-resolved",
            f"urn:uuid:{_uuid('nowhere')} is no entry of the Bundle",
        ),
    ]


def test_an_identifier_naming_two_resources_is_ambiguous_not_a_guess() -> None:
    entries = logical().entries
    twin = copy.deepcopy(next(e["resource"] for e in entries if e["resource"]["id"] == "bs2"))
    twin["id"] = "bs2-copy"
    twin["identifier"] = copy.deepcopy(
        next(e["resource"] for e in entries if e["resource"]["id"] == "bs1")["identifier"]
    )
    entries.append({"resource": twin})
    found = bundle_patients(collection(entries))
    assert {(i.ref, i.code) for i in found.issues} == {
        (f"Observation/{o}", "reference-ambiguous") for o in ("m1", "m3", "m6-draft")
    }


def test_assess_results_point_at_the_inputs_own_full_urls() -> None:
    """Output references resolve: a urn:uuid input is named by its urn:uuid in the results."""
    found = bundle_patients(collection(urn_uuid_id_different().entries))
    patient = replace(patient_input("p1", found.groups["p1"]), reference_forms=found.output_references)
    assert patient.timeline is not None
    assessment = assess(patient.timeline, as_of=date(2024, 7, 1))
    bundle = assessment_bundle(
        [(assessment, patient)], version="test", recorded=datetime(2024, 7, 1, tzinfo=UTC)
    )
    full_urls = {e["fullUrl"] for e in urn_uuid_id_different().entries}
    named: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                named.add(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(bundle)
    own = {e["fullUrl"] for e in bundle["entry"]}
    assert named, "the results name their inputs"
    assert named <= full_urls | own, named - full_urls - own
