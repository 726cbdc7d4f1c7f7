"""Drug terminology as hospitals code it (docs/fhir/drug-terminology.md), through the real reader.

Each case replaces the therapy of the hand-written patient `p1` (baseline CT 2024-02-26, follow-up
2024-04-29) by medications coded the way an EHR export codes them, sends the patient as a FHIR
Bundle through `group_bundle_by_patient` and `patient_input`, and checks the ICI, its class and
combination in the PatientInput. The expected drug of each code is a published fact of its
terminology (RxNorm / RxNav, WHO ATC, SNOMED CT, NCI Thesaurus), cited per case; the class is
the drug's target as in its prescribing information (PD-1: pembrolizumab, nivolumab; PD-L1:
atezolizumab, durvalumab; CTLA-4: ipilimumab).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.conformance import PACKAGE_DIR, PackageNotFound
from service.adapters.fhir.drug_terminology import (
    DRUG_VALUE_SETS,
    CodeRef,
    MatchBasis,
    drug_terminology,
    load_drug_terminology,
)
from service.adapters.fhir.inbound import InboundMapping, group_bundle_by_patient, patient_input
from service.application.ports import PatientInput
from service.domain.model import IciClass
from tests.unit.fhir.conftest import patient_resources

Resources = list[dict[str, Any]]
START = date(2024, 3, 4)  # first ICI dose of every case below
CONCEPT_COMMENTS = "http://hl7.org/fhir/StructureDefinition/valueset-concept-comments"


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def administration(rid: str, on: date, *codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": list(codings)} if codings else {}
    if text is not None:
        concept["text"] = text
    return {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
        "effectiveDateTime": on.isoformat(),
    }


def read(*therapy: dict[str, Any], mapping: InboundMapping | None = None) -> PatientInput:
    """Patient p1 with this therapy instead of its own, sent as a collection Bundle."""
    rest = [r for r in patient_resources() if not r["resourceType"].startswith("Medication")]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in [*rest, *therapy]],
    }
    groups, issues = group_bundle_by_patient(bundle)
    assert issues == []
    if mapping is None:
        return patient_input("p1", groups["p1"])
    return patient_input("p1", groups["p1"], mapping)


def therapy_of(result: PatientInput) -> tuple[str | None, IciClass | None, date | None, bool | None]:
    assert result.timeline is not None, result.issues
    tl = result.timeline
    return tl.profile.ici_drug, tl.profile.ici_class, tl.treatment_start, tl.profile.combination


def issue_codes(result: PatientInput) -> set[tuple[str, str | None]]:
    return {(i.code, i.ref) for i in result.issues}


# --- RxNorm, code only (US EHRs: no display, no text) ---------------------------------------------
@pytest.mark.parametrize(
    ("code", "drug", "ici_class"),
    [
        ("1547545", "pembrolizumab", IciClass.PD1),  # RxNorm IN pembrolizumab
        ("1597876", "nivolumab", IciClass.PD1),  # RxNorm IN nivolumab
        ("1657192", "nivolumab", IciClass.PD1),  # RxNorm SBD 4 ML nivolumab 10 MG/ML Injection [Opdivo]
        ("1657751", "pembrolizumab", IciClass.PD1),  # RxNorm SBD 4 ML pembrolizumab 25 MG/ML [Keytruda]
        ("1547550", "pembrolizumab", IciClass.PD1),  # RxNorm BN Keytruda
        ("1792776", "atezolizumab", IciClass.PDL1),  # RxNorm IN atezolizumab
        ("1919503", "durvalumab", IciClass.PDL1),  # RxNorm IN durvalumab
    ],
)
def test_rxnorm_code_only(code: str, drug: str, ici_class: IciClass) -> None:
    result = read(administration("ici", START, coding(codes.RXNORM, code)))
    assert therapy_of(result) == (drug, ici_class, START, False)
    assert not {c for c, _ in issue_codes(result)} & {"drug-code-not-listed", "unlisted-antineoplastic-code"}


def test_rxnorm_code_of_a_referenced_medication_resource() -> None:
    # EHR exports often code the drug on a Medication resource that the administration references.
    medication = {
        "resourceType": "Medication",
        "id": "med-opdivo",
        "code": {"coding": [coding(codes.RXNORM, "1657192")]},  # RxNorm SBD ... [Opdivo]
    }
    given = administration("ici", START)
    del given["medicationCodeableConcept"]
    given["medicationReference"] = {"reference": "Medication/med-opdivo"}
    assert therapy_of(read(medication, given)) == ("nivolumab", IciClass.PD1, START, False)


# --- brand name only --------------------------------------------------------------------------------
def test_brand_name_display_with_an_unknown_code_is_the_drug_and_the_code_is_reported() -> None:
    # A local formulary code the lists cannot know, displayed with the brand name.
    unknown = coding(codes.RXNORM, "99999999", "Keytruda")
    result = read(administration("ici", START, unknown))
    assert therapy_of(result) == ("pembrolizumab", IciClass.PD1, START, False)
    issue = next(i for i in result.issues if i.code == "drug-code-not-listed")
    assert (issue.severity, issue.ref) == ("information", "MedicationAdministration/ici")
    assert f"{codes.RXNORM}|99999999" in issue.message


@pytest.mark.parametrize(
    ("text", "drug", "ici_class"),
    [
        ("TECENTRIQ 1200 mg IV", "atezolizumab", IciClass.PDL1),  # brand of atezolizumab
        ("Imfinzi 1500 mg", "durvalumab", IciClass.PDL1),  # brand of durvalumab
        ("Opdivo 240 mg", "nivolumab", IciClass.PD1),  # brand of nivolumab
        ("Libtayo", "cemiplimab", IciClass.PD1),  # brand of cemiplimab
    ],
)
def test_brand_name_in_text_without_any_code(text: str, drug: str, ici_class: IciClass) -> None:
    result = read(administration("ici", START, text=text))
    assert therapy_of(result) == (drug, ici_class, START, False)
    assert "drug-code-not-listed" not in {c for c, _ in issue_codes(result)}  # no code to report


def test_a_name_is_matched_as_whole_words_only() -> None:
    # "Keytrudal" is not Keytruda: no ICI, so the patient has no ICI start.
    result = read(administration("ici", START, text="Keytrudal"))
    assert result.timeline is None
    assert "no-ici-start" in {c for c, _ in issue_codes(result)}


# --- SNOMED CT and NCI Thesaurus ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("system", "code", "drug", "ici_class"),
    [
        (codes.SNOMED, "716125002", "pembrolizumab", IciClass.PD1),  # Pembrolizumab (substance)
        (codes.SNOMED, "704191007", "nivolumab", IciClass.PD1),  # Nivolumab (substance)
        (codes.SNOMED, "719371003", "atezolizumab", IciClass.PDL1),  # Atezolizumab (substance)
        (codes.SNOMED, "735230005", "durvalumab", IciClass.PDL1),  # Durvalumab (substance)
        (codes.NCIT, "C106432", "pembrolizumab", IciClass.PD1),  # NCIt Pembrolizumab
        (codes.NCIT, "C68814", "nivolumab", IciClass.PD1),  # NCIt Nivolumab
        (codes.NCIT, "C106250", "atezolizumab", IciClass.PDL1),  # NCIt Atezolizumab
        (codes.NCIT, "C103194", "durvalumab", IciClass.PDL1),  # NCIt Durvalumab
    ],
)
def test_snomed_and_ncit_codings(system: str, code: str, drug: str, ici_class: IciClass) -> None:
    result = read(administration("ici", START, coding(system, code)))
    assert therapy_of(result) == (drug, ici_class, START, False)


# --- combinations whatever the coding ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("chemo", "chemo_day", "combination"),
    [
        (coding(codes.RXNORM, "40048"), 0, True),  # RxNorm IN carboplatin, the same day
        (coding(codes.RXNORM, "1719003"), 0, True),  # RxNorm SCD gemcitabine 1000 MG Injection
        (coding(codes.RXNORM, "4179"), codes.COMBINATION_WINDOW_DAYS, True),  # etoposide, last day in
        (coding(codes.RXNORM, "4179"), codes.COMBINATION_WINDOW_DAYS + 1, False),  # one day out
        (coding(codes.ATC, "L01BA04"), 0, True),  # WHO ATC pemetrexed
        (coding(codes.RXNORM, "26225"), 0, False),  # RxNorm IN ondansetron: an antiemetic, not a partner
        (coding(codes.SNOMED, "386905002"), 0, True),  # SNOMED CT Carboplatin (substance)
        (coding(codes.SNOMED, "372487007"), 0, False),  # SNOMED CT Ondansetron (substance): not a partner
    ],
)
def test_rxnorm_or_otherwise_coded_chemotherapy_makes_a_combination(
    chemo: dict[str, str], chemo_day: int, combination: bool
) -> None:
    result = read(
        administration("ici", START, coding(codes.RXNORM, "1547545")),
        administration("chemo", START + timedelta(days=chemo_day), chemo),
    )
    assert therapy_of(result) == ("pembrolizumab", IciClass.PD1, START, combination)


def test_chemotherapy_by_name_only_makes_a_combination() -> None:
    result = read(
        administration("ici", START, coding(codes.NCIT, "C106432")),
        administration("chemo", START, text="nab-paclitaxel 100 mg/m2"),  # paclitaxel, albumin-bound
    )
    assert therapy_of(result) == ("pembrolizumab", IciClass.PD1, START, True)


def test_nivolumab_with_ipilimumab_is_a_combination_led_by_the_pd1_inhibitor() -> None:
    # CheckMate 227: nivolumab (PD-1) plus ipilimumab (CTLA-4), RxNorm coded, same day.
    result = read(
        administration("ipi", START, coding(codes.RXNORM, "1094833")),
        administration("nivo", START, coding(codes.RXNORM, "1597876")),
    )
    assert therapy_of(result) == ("nivolumab", IciClass.PD1, START, True)


def test_ctla4_inhibitor_alone_does_not_start_ici_treatment() -> None:
    result = read(administration("ipi", START, coding(codes.ATC, "L01FX04")))  # ipilimumab
    assert result.timeline is None
    assert "no-ici-start" in {c for c, _ in issue_codes(result)}


def test_ici_named_together_with_chemotherapy_is_the_ici() -> None:
    result = read(administration("ici", START, text="carboplatin AUC5 + pembrolizumab 200 mg"))
    assert therapy_of(result)[:2] == ("pembrolizumab", IciClass.PD1)


# --- unrecognised oncological codes ----------------------------------------------------------------
def test_unlisted_atc_antineoplastic_is_a_partner_and_a_data_issue_naming_the_code() -> None:
    # WHO ATC L01XX52 venetoclax: an antineoplastic (L01) that the lists do not hold.
    result = read(
        administration("ici", START, coding(codes.ATC, "L01FF02")),
        administration("other", START, coding(codes.ATC, "L01XX52", "venetoclax")),
    )
    assert therapy_of(result) == ("pembrolizumab", IciClass.PD1, START, True)
    issue = next(i for i in result.issues if i.code == "unlisted-antineoplastic-code")
    assert (issue.severity, issue.ref) == ("warning", "MedicationAdministration/other")
    assert f"{codes.ATC}|L01XX52" in issue.message


def test_unlisted_atc_l01ff_code_is_an_ici_of_unknown_class(tmp_path: Path) -> None:
    # A package whose PD-L1 list lacks sugemalimab (L01FF11): the code is still a PD-1/PD-L1
    # inhibitor by its ATC class (L01FF), of a class the reader cannot tell.
    package = tmp_path / "package"
    shutil.copytree(PACKAGE_DIR, package)
    path = package / "ValueSet-ici-pd-l1.json"
    vs = json.loads(path.read_text(encoding="utf-8"))
    for include in vs["compose"]["include"]:
        include["concept"] = [c for c in include["concept"] if c["code"] != "L01FF11"]
    path.write_text(json.dumps(vs), encoding="utf-8")
    terminology = load_drug_terminology(package)
    match = terminology.classify([coding(codes.ATC, "L01FF11")])
    assert match is not None
    assert (match.drug.name, match.drug.ici_class, match.drug.is_ici, match.basis) == (
        "L01FF11",
        None,
        True,
        MatchBasis.ATC_CLASS,
    )
    assert match.unlisted == (CodeRef(codes.ATC, "L01FF11"),)
    result = read(
        administration("ici", START, coding(codes.ATC, "L01FF11")), mapping=InboundMapping(drugs=terminology)
    )
    assert therapy_of(result) == ("L01FF11", None, START, False)
    assert ("unlisted-antineoplastic-code", "MedicationAdministration/ici") in issue_codes(result)


def test_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackageNotFound, match=r"generate\.py"):
        load_drug_terminology(tmp_path)


# --- the ValueSets themselves ------------------------------------------------------------------------
def _value_sets() -> dict[str, dict[str, Any]]:
    return {
        vs_id: json.loads((PACKAGE_DIR / f"ValueSet-{vs_id}.json").read_text(encoding="utf-8"))
        for vs_id in DRUG_VALUE_SETS
    }


def test_every_code_is_unique_across_the_lists_and_has_a_display_a_drug_and_a_source() -> None:
    drug_cs = json.loads((PACKAGE_DIR / "CodeSystem-antineoplastic-drug.json").read_text(encoding="utf-8"))
    drugs = {c["code"] for c in drug_cs["concept"]}
    seen: Counter[tuple[str, str]] = Counter()
    for vs_id, vs in _value_sets().items():
        for include in vs["compose"]["include"]:
            for concept in include["concept"]:
                seen[(include["system"], concept["code"])] += 1
                assert concept.get("display"), (vs_id, concept["code"])
                if include["system"] == codes.CS_ANTINEOPLASTIC_DRUG:
                    continue
                ext = {e["url"]: e for e in concept["extension"]}
                assert ext[codes.EXT_DRUG_INGREDIENT]["valueCoding"]["code"] in drugs
                assert ext[CONCEPT_COMMENTS]["valueString"], (vs_id, concept["code"])
    assert [key for key, n in seen.items() if n > 1] == []
    assert {code for system, code in seen if system == codes.CS_ANTINEOPLASTIC_DRUG} == drugs


def test_atc_codes_sit_in_their_who_atc_class() -> None:
    # WHO ATC: L01FF PD-1/PD-L1 inhibitors; L01FX04 ipilimumab, L01FX20 tremelimumab (other
    # monoclonal antibodies); every antineoplastic agent is in L01.
    expected_prefix = {
        "ici-pd-1": ("L01FF", "L01FY02"),  # L01FY02: nivolumab and relatlimab
        "ici-pd-l1": ("L01FF",),
        "ici-ctla-4": ("L01FX04", "L01FX20"),
        "antineoplastic-other": ("L01",),
    }
    for vs_id, vs in _value_sets().items():
        atc = [
            c["code"]
            for inc in vs["compose"]["include"]
            if inc["system"] == codes.ATC
            for c in inc["concept"]
        ]
        assert atc, vs_id
        assert all(code.startswith(expected_prefix[vs_id]) for code in atc), (vs_id, atc)
    other = _value_sets()["antineoplastic-other"]
    assert not any(
        c["code"].startswith("L01FF") for inc in other["compose"]["include"] for c in inc["concept"]
    )


def test_terminology_is_read_once_per_process() -> None:
    assert drug_terminology() is drug_terminology()
    assert InboundMapping().drugs is drug_terminology()
