"""The FHIR package in `fhir_profiles/` encodes docs/fhir-contract.md and matches the code.

- every generated resource is valid FHIR (fhir.resources R4B; the R5-shaped SubscriptionTopic
  with the R5 model);
- the committed JSON and FSH are exactly what `fhir_profiles/generate.py` writes (no drift);
- every example passes the profile checks and R4B validation;
- the code systems hold exactly the codes of `codes.py` and of the domain enums, and the
  canonical URLs are those of `codes.py` (contract: "Codes and URLs below are fixed").
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.conformance import PACKAGE_DIR, SUPPORTED_INVARIANTS, check, validate_r4
from service.adapters.fhir.outbound import assessment_identifier
from service.adapters.fhir.source import PATIENT_SEARCHES
from service.domain import atypical, dissociated
from service.domain.model import LesionRole, MeasurementFlag, NonTargetState
from service.domain.results import (
    AtypicalKind,
    DrTrigger,
    ImmuneResponse,
    LesionStatus,
    Response,
    ResponseGroup,
)

PROFILES_DIR = Path(__file__).resolve().parents[2] / "fhir_profiles"
EXAMPLES = sorted((PROFILES_DIR / "examples").glob("*.json"))
PACKAGE_FILES = sorted(PACKAGE_DIR.glob("*-*.json"))
TOPIC = PACKAGE_DIR / "other" / "SubscriptionTopic-atypical-response-detected.json"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fhir_profiles_generate", PROFILES_DIR / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def code_system(cs_id: str) -> set[str]:
    return {c["code"] for c in load(PACKAGE_DIR / f"CodeSystem-{cs_id}.json")["concept"]}


def by_type(resource_type: str) -> list[dict[str, Any]]:
    return [r for r in map(load, PACKAGE_FILES) if r["resourceType"] == resource_type]


# --- validity -------------------------------------------------------------------------------------
def test_package_holds_every_kind_of_artefact() -> None:
    kinds = {p.name.split("-", 1)[0] for p in PACKAGE_FILES}
    assert kinds == {
        "StructureDefinition",
        "CodeSystem",
        "ValueSet",
        "CapabilityStatement",
        "OperationDefinition",
    }
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: p.name)
def test_package_resource_validates_with_fhir_resources_r4b(path: Path) -> None:
    validate_r4(load(path))


def test_subscription_topic_validates_with_the_r5_model() -> None:
    from fhir.resources.subscriptiontopic import SubscriptionTopic

    topic = SubscriptionTopic.model_validate(load(TOPIC))
    assert topic.url == f"{codes.OR_BASE}/SubscriptionTopic/atypical-response-detected"


def test_backport_subscription_example_names_the_topic_canonical() -> None:
    # Subscriptions R5 Backport IG: an R4 Subscription's `criteria` is the SubscriptionTopic canonical.
    subscription = load(PROFILES_DIR / "examples" / "Subscription-atypical-response-rest-hook.json")
    assert subscription["criteria"] == load(TOPIC)["url"]


def test_npm_package_manifest() -> None:
    manifest = load(PACKAGE_DIR / "package.json")
    assert manifest["name"] == "oncoresponse.fhir"
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["canonical"] == codes.OR_BASE
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    index = load(PACKAGE_DIR / ".index.json")
    assert sorted(f["filename"] for f in index["files"]) == sorted(p.name for p in PACKAGE_FILES)


# --- no drift between the definitions, the JSON and the FSH ----------------------------------------
def test_regenerating_gives_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    gen = generator()
    gen.write(tmp_path)
    fresh = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        str(p.relative_to(PROFILES_DIR))
        for folder in gen.MANAGED_DIRS
        for p in (PROFILES_DIR / folder).rglob("*")
        if p.is_file()
    } | {"sushi-config.yaml"}
    assert committed == fresh
    changed = [
        rel for rel in sorted(fresh) if (tmp_path / rel).read_bytes() != (PROFILES_DIR / rel).read_bytes()
    ]
    assert changed == [], "run `uv run python fhir_profiles/generate.py` and commit the result"


def test_fsh_declares_every_json_artefact() -> None:
    fsh = "\n".join(p.read_text(encoding="utf-8") for p in (PROFILES_DIR / "input" / "fsh").glob("*.fsh"))
    for resource in map(load, PACKAGE_FILES):
        assert f"Id: {resource['id']}" in fsh or f"Instance: {resource['id']}" in fsh, resource["id"]
    for example in map(load, EXAMPLES):
        assert f"Instance: {example['id']}" in fsh


# --- examples ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid_r4(path: Path) -> None:
    validate_r4(load(path))


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if not p.name.startswith("Subscription-")], ids=lambda p: p.name
)
def test_example_passes_the_profile_checks(path: Path) -> None:
    example = load(path)
    assert example["meta"]["profile"][0].startswith(f"{codes.OR_BASE}/StructureDefinition/")
    assert check(example) == []


def test_every_profile_has_an_example() -> None:
    claimed = {load(p)["meta"]["profile"][0] for p in EXAMPLES}
    profiles = {sd["url"] for sd in by_type("StructureDefinition") if sd["type"] != "Extension"}
    assert profiles <= claimed


@pytest.mark.parametrize(
    ("example", "kind", "criterion", "definition", "on"),
    [
        ("Observation-lesion-response-l1-tp1", "lesion-response/L1", "", "", date(2024, 4, 29)),
        (
            "Observation-recist11-timepoint-response-tp1",
            "recist11-timepoint-response",
            "recist1.1",
            "",
            date(2024, 4, 29),
        ),
        (
            "Observation-recist11-best-overall-response",
            "recist11-best-overall-response",
            "recist1.1",
            "no-confirmation",
            None,
        ),
        (
            "Observation-atypical-response-dr-tp1",
            "atypical-response/DR",
            "",
            "bernard-tessier",
            date(2024, 4, 29),
        ),
        ("Observation-response-group", "response-group", "", "", None),
    ],
)
def test_example_identifier_follows_the_outbound_identity_rule(
    example: str, kind: str, criterion: str, definition: str, on: date | None
) -> None:
    # Contract section 2: the identifier value derives only from patient, kind, criterion,
    # definition and timepoint date, so examples and service output agree on identity.
    resource = load(PROFILES_DIR / "examples" / f"{example}.json")
    expected = assessment_identifier("example-nsclc", kind, criterion, definition, on)
    assert resource["identifier"] == [{"system": codes.IDENTIFIER_ASSESSMENT, "value": expected}]


def test_examples_tell_a_consistent_recist_story() -> None:
    # Worked case of the examples: L1 30 -> 18 mm, L2 20 -> 26 mm; sum 50 -> 44 mm is -12 %,
    # neither -30 % (PR) nor +20 % (PD): SD (RECIST 1.1 section 4.3.1).
    tpr = load(PROFILES_DIR / "examples" / "Observation-recist11-timepoint-response-tp1.json")
    comps = {c["code"]["coding"][0]["code"]: c for c in tpr["component"]}
    total = Decimal(str(comps["sum-of-diameters-mm"]["valueQuantity"]["value"]))
    baseline = Decimal(str(comps["baseline-sum-mm"]["valueQuantity"]["value"]))
    assert total == 18 + 26
    assert (
        100 * (total - baseline)
        == Decimal(comps["change-from-baseline-pct"]["valueQuantity"]["value"]) * baseline
    )
    assert tpr["valueCodeableConcept"]["coding"][0]["code"] == Response.SD


# --- codes and URLs agree with codes.py and the domain -----------------------------------------------
def _constants(prefix: str) -> set[str]:
    return {
        value for name, value in vars(codes).items() if name.startswith(prefix) and isinstance(value, str)
    }


def test_oncoresponse_code_system_holds_exactly_the_observation_and_component_codes() -> None:
    assert code_system("oncoresponse") == _constants("CODE_") | _constants("COMP_")


def _hpd_definitions() -> set[str]:
    # Every HPD definition the engine knows is met by steep growth after a growing reference period.
    steep = atypical.GrowthKinetics(Decimal(10), Decimal(500), Decimal(1), Decimal(50))
    return set(atypical.hpd_definitions_met(steep))


@pytest.mark.parametrize(
    ("cs_id", "expected"),
    [
        ("lesion-role", {m.value for m in LesionRole}),
        ("measurement-flag", {m.value for m in MeasurementFlag}),
        ("non-target-status", {m.value for m in NonTargetState}),
        ("lesion-response", {m.value for m in LesionStatus}),
        ("recist-response", {m.value for m in Response}),
        ("irecist-response", {m.value for m in ImmuneResponse}),
        ("atypical-response", {m.value for m in AtypicalKind}),
        ("response-group", {m.value for m in ResponseGroup}),
        ("dr-trigger", {m.value for m in DrTrigger}),
    ],
)
def test_code_system_equals_the_domain_enum(cs_id: str, expected: set[str]) -> None:
    assert code_system(cs_id) == expected


def test_response_definitions_are_those_the_engine_can_name() -> None:
    # DR variants (dissociated.REGISTRY), PsPD "irecist" (atypical.py module doc), the HPD
    # definitions, and the project's delayed-response definition.
    engine = set(dissociated.REGISTRY) | {"irecist", atypical.DER_DEFINITION} | _hpd_definitions()
    assert _hpd_definitions() == {"champiat", "saada-bouzid", "ferrara", "kas"}
    assert code_system("response-definition") == engine


def test_code_system_urls_are_the_codes_py_constants() -> None:
    urls = {cs["url"] for cs in by_type("CodeSystem")}
    expected = {v for k, v in vars(codes).items() if k.startswith("CS_") and k != "CS_DATA_ISSUE"}
    assert urls == expected


def test_structure_definition_urls_are_the_codes_py_constants() -> None:
    sds = {sd["id"]: sd for sd in by_type("StructureDefinition")}
    extensions = {sd["url"] for sd in sds.values() if sd["type"] == "Extension"}
    assert extensions == _constants("EXT_")
    outbound = {sd["url"] for sd in sds.values() if sd["type"] == "Observation"} - {
        codes.profile_url("NonTargetStatus")
    }
    assert outbound == _constants("PROFILE_")
    for sd in sds.values():
        assert sd["url"] == codes.profile_url(sd["id"])


def test_outbound_profiles_fix_the_assessment_identifier_system() -> None:
    for url in _constants("PROFILE_"):
        sd = next(s for s in by_type("StructureDefinition") if s["url"] == url)
        system = next(e for e in sd["differential"]["element"] if e["id"] == "Observation.identifier.system")
        assert system["fixedUri"] == codes.IDENTIFIER_ASSESSMENT


def test_every_invariant_of_the_package_is_implemented_by_the_checker() -> None:
    keys = {
        c["key"]
        for sd in by_type("StructureDefinition")
        for e in sd["differential"]["element"]
        for c in e.get("constraint", ())
    }
    assert keys
    assert keys <= SUPPORTED_INVARIANTS


def test_value_sets_cover_each_code_system() -> None:
    included = {inc["system"] for vs in by_type("ValueSet") for inc in vs["compose"]["include"]}
    assert {cs["url"] for cs in by_type("CodeSystem")} <= included


# --- capability statement ------------------------------------------------------------------------------
def test_capability_statement_covers_what_the_source_searches() -> None:
    # Contract section 1: per patient, the source searches these types with `patient=<id>`.
    cap = load(PACKAGE_DIR / "CapabilityStatement-oncoresponse.json")
    client = next(r for r in cap["rest"] if r["mode"] == "client")
    searched = {
        r["type"]
        for r in client["resource"]
        if {"code": "search-type"} in r["interaction"]
        and any(p["name"] == "patient" for p in r["searchParam"])
    }
    assert set(PATIENT_SEARCHES) <= searched


def test_capability_statement_offers_assess_from_its_operation_definition() -> None:
    cap = load(PACKAGE_DIR / "CapabilityStatement-oncoresponse.json")
    operation = load(PACKAGE_DIR / "OperationDefinition-assess.json")
    server = next(r for r in cap["rest"] if r["mode"] == "server")
    assert server["operation"] == [{"name": "assess", "definition": operation["url"]}]
    assert operation["system"] is True
    assert operation["affectsState"] is False  # contract section 4: nothing is written anywhere
    assert "cds-services" in cap["description"]
