"""Generate the oncoresponse FHIR package (JSON) and its FSH sources from ONE definition.

The definitions below (code systems, value sets, extensions, profiles, examples, the capability
statement, the $assess OperationDefinition and the SubscriptionTopic) are the single source of
truth for `fhir_profiles/`. From them this script writes, deterministically:

- `package/`: StructureDefinition-, CodeSystem-, ValueSet-, CapabilityStatement- and
  OperationDefinition-*.json, `package.json` and `.index.json` (NPM-style FHIR package layout:
  `tar -czf oncoresponse.fhir-0.1.0.tgz -C fhir_profiles package` gives a loadable package);
  `package/other/SubscriptionTopic-*.json` (R5-shaped, see `subscription_topic`);
- `examples/*.json`: one or more valid instances per profile, plus an R4 backport Subscription;
- `input/fsh/*.fsh` and `sushi-config.yaml`: the same content as FHIR Shorthand.

Why generated FSH instead of SUSHI: SUSHI needs `hl7.fhir.r4.core` from packages.fhir.org, which
this build cannot reach (npm has `fsh-sushi` but no `hl7.fhir.r4.core@4.0.1`). So the JSON here is
written from the same Python data as the FSH, and the contract test regenerates both and fails
on any byte of drift. The FSH is meant to compile with SUSHI 3 (`sushi fhir_profiles`) where the
registry is reachable; that has not been run here.

Codes and URLs are written out literally (this script imports nothing from `service`, so the
package stands alone); `tests/contract/test_profiles.py` checks them against
`service/adapters/fhir/codes.py` and the domain enums.

Usage (from the repository root)::

    uv run python fhir_profiles/generate.py            # rewrite fhir_profiles/ in place
    uv run python fhir_profiles/generate.py --check    # exit 1 if the committed files drift
    uv run python fhir_profiles/generate.py --out DIR  # write the tree under DIR instead
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]

# --- package identity ----------------------------------------------------------------------------
BASE = "http://oncoresponse.org/fhir"
PACKAGE_NAME = "oncoresponse.fhir"
VERSION = "0.1.0"
FHIR_VERSION = "4.0.1"
RELEASE_DATE = "2026-11-24"  # fixed, so that regeneration is byte-identical
PUBLISHER = "oncoresponse project"
STATUS = "draft"

FHIR_SD = "http://hl7.org/fhir/StructureDefinition"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
OBSERVATION_STATUS = "http://hl7.org/fhir/observation-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"

IDENTIFIER_ASSESSMENT = f"{BASE}/identifier/assessment"
MANAGED_DIRS = ("package", "examples", "input/fsh")


def cs_url(cs_id: str) -> str:
    return f"{BASE}/CodeSystem/{cs_id}"


def vs_url(vs_id: str) -> str:
    return f"{BASE}/ValueSet/{vs_id}"


def sd_url(sd_id: str) -> str:
    return f"{BASE}/StructureDefinition/{sd_id}"


# --- terminology -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    definition: str
    synonyms: tuple[str, ...] = ()  # CodeSystem.concept.designation (SNOMED CT "Synonym" use)


@dataclass(frozen=True)
class CodeSystemDef:
    id: str
    name: str
    title: str
    description: str
    concepts: tuple[Concept, ...]

    @property
    def url(self) -> str:
        return cs_url(self.id)


@dataclass(frozen=True)
class Include:
    system: str
    codes: tuple[str, ...] = ()  # empty: every code of the system


@dataclass(frozen=True)
class ValueSetDef:
    id: str
    name: str
    title: str
    description: str
    includes: tuple[Include, ...]

    @property
    def url(self) -> str:
        return vs_url(self.id)


def _c(code: str, display: str, definition: str) -> Concept:
    return Concept(code, display, definition)


# --- drug terminology ------------------------------------------------------------------------------
# Which medications are immune checkpoint inhibitors (ICIs) or other antineoplastics, in the
# terminologies hospitals code them with. The service reads these ValueSets at run time
# (`service/adapters/fhir/drug_terminology.py`); docs/fhir/drug-terminology.md explains the lists,
# their sources and the codes left out because they could not be verified.
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
SNOMED_SYNONYM = "900000000000013009"  # SNOMED CT designation type "Synonym"
CONCEPT_COMMENTS = f"{FHIR_SD}/valueset-concept-comments"  # core R4 extension on include.concept

# Where each code was checked (ValueSet concept comment). Kept short; the docs give the detail.
SRC_ATC = "WHO ATC; code and substance as in BfArM ATC-DE 2024 (MII onco ValueSet 2024)"
SRC_RXN_IN = (
    "RxNorm ingredient (TTY IN); public ICI code lists (TriNetX ICI extraction, mCODE trial matching)"
)
SRC_RXN_IN_CPIC = "RxNorm ingredient (TTY IN); CPIC cpic-schema drug table"
SRC_RXN_IN_SINGLE = "RxNorm ingredient (TTY IN); one public oncology data dictionary (CanDIG)"
SRC_RXN_DRUG = "RxNorm clinical/branded drug with its RxNorm name; public oncology prescribing code list"
SRC_RXN_BN = "RxNorm brand name (TTY BN); RxNav name lookup recorded in a public test"
SRC_SCT = (
    "SNOMED CT substance; Swiss eHealth ValueSet ActivePharmaceuticalIngredient (2.16.756.5.30.1.1.11.82)"
)
SRC_NCIT = "NCI Thesaurus concept; public oncology data dictionaries (drug -> NCIt)"


@dataclass(frozen=True)
class DrugCoding:
    system: str
    code: str
    display: str
    source: str


@dataclass(frozen=True)
class DrugDef:
    name: str  # INN, lower case: the code in CodeSystem antineoplastic-drug
    group: str  # id of the drug ValueSet: ici-pd-1, ici-pd-l1, ici-ctla-4 or antineoplastic-other
    brands: tuple[str, ...]
    codings: tuple[DrugCoding, ...]


def _atc(code: str, display: str) -> DrugCoding:
    return DrugCoding(ATC, code, display, SRC_ATC)


def _rxn(code: str, display: str, source: str = SRC_RXN_DRUG) -> DrugCoding:
    return DrugCoding(RXNORM, code, display, source)


def _sct(code: str, display: str) -> DrugCoding:
    return DrugCoding(SNOMED, code, display, SRC_SCT)


DRUGS: tuple[DrugDef, ...] = (
    # PD-1 inhibitors (ATC L01FF)
    DrugDef(
        "pembrolizumab",
        "ici-pd-1",
        ("Keytruda",),
        (
            _atc("L01FF02", "pembrolizumab"),
            _rxn("1547545", "pembrolizumab", SRC_RXN_IN),
            _rxn("1547550", "Keytruda", SRC_RXN_BN),
            _rxn("1657750", "4 ML pembrolizumab 25 MG/ML Injection"),
            _rxn("1657751", "4 ML pembrolizumab 25 MG/ML Injection [Keytruda]"),
            _rxn("1657749", "pembrolizumab 50 MG Injection [Keytruda]"),
            _sct("716125002", "Pembrolizumab (substance)"),
            DrugCoding(NCIT, "C106432", "Pembrolizumab", SRC_NCIT),
        ),
    ),
    DrugDef(
        "nivolumab",
        "ici-pd-1",
        ("Opdivo", "Opdualag"),
        (
            _atc("L01FF01", "nivolumab"),
            _atc("L01FY02", "nivolumab and relatlimab"),
            _rxn("1597876", "nivolumab", SRC_RXN_IN),
            _rxn("1657190", "4 ML nivolumab 10 MG/ML Injection"),
            _rxn("1657192", "4 ML nivolumab 10 MG/ML Injection [Opdivo]"),
            _rxn("1657195", "10 ML nivolumab 10 MG/ML Injection"),
            _rxn("1657196", "10 ML nivolumab 10 MG/ML Injection [Opdivo]"),
            _rxn("1991412", "24 ML nivolumab 10 MG/ML Injection"),
            _rxn("1991413", "24 ML nivolumab 10 MG/ML Injection [Opdivo]"),
            _sct("704191007", "Nivolumab (substance)"),
            DrugCoding(NCIT, "C68814", "Nivolumab", SRC_NCIT),
        ),
    ),
    DrugDef(
        "cemiplimab",
        "ici-pd-1",
        ("Libtayo",),
        (_atc("L01FF06", "cemiplimab"), _rxn("2058826", "cemiplimab", SRC_RXN_IN)),
    ),
    DrugDef(
        "dostarlimab",
        "ici-pd-1",
        ("Jemperli",),
        (_atc("L01FF07", "dostarlimab"), _rxn("2539967", "dostarlimab", SRC_RXN_IN)),
    ),
    DrugDef("tislelizumab", "ici-pd-1", ("Tevimbra",), (_atc("L01FF09", "tislelizumab"),)),
    DrugDef("retifanlimab", "ici-pd-1", ("Zynyz",), (_atc("L01FF10", "retifanlimab"),)),
    DrugDef("toripalimab", "ici-pd-1", ("Loqtorzi",), ()),
    DrugDef("camrelizumab", "ici-pd-1", (), ()),
    DrugDef("sintilimab", "ici-pd-1", (), ()),
    # PD-L1 inhibitors (ATC L01FF)
    DrugDef(
        "atezolizumab",
        "ici-pd-l1",
        ("Tecentriq",),
        (
            _atc("L01FF05", "atezolizumab"),
            _rxn("1792776", "atezolizumab", SRC_RXN_IN),
            _sct("719371003", "Atezolizumab (substance)"),
            DrugCoding(NCIT, "C106250", "Atezolizumab", SRC_NCIT),
        ),
    ),
    DrugDef(
        "durvalumab",
        "ici-pd-l1",
        ("Imfinzi",),
        (
            _atc("L01FF03", "durvalumab"),
            _sct("735230005", "Durvalumab (substance)"),
            _rxn("1919503", "durvalumab", SRC_RXN_IN),
            DrugCoding(NCIT, "C103194", "Durvalumab", SRC_NCIT),
        ),
    ),
    DrugDef(
        "avelumab",
        "ici-pd-l1",
        ("Bavencio",),
        (
            _atc("L01FF04", "avelumab"),
            _rxn("1875534", "avelumab", SRC_RXN_IN),
            _sct("733055009", "Avelumab (substance)"),
        ),
    ),
    DrugDef("sugemalimab", "ici-pd-l1", ("Cejemly",), (_atc("L01FF11", "sugemalimab"),)),
    # CTLA-4 inhibitors (ATC L01FX): combination partners of a PD-1/PD-L1 inhibitor
    DrugDef(
        "ipilimumab",
        "ici-ctla-4",
        ("Yervoy",),
        (
            _atc("L01FX04", "ipilimumab"),
            _sct("697995005", "Ipilimumab (substance)"),
            _rxn("1094833", "ipilimumab", SRC_RXN_IN),
            DrugCoding(NCIT, "C2654", "Ipilimumab", SRC_NCIT),
        ),
    ),
    DrugDef("tremelimumab", "ici-ctla-4", ("Imjudo",), (_atc("L01FX20", "tremelimumab"),)),
    # Other antineoplastics given with ICIs (chemotherapy, anti-angiogenics, TKIs)
    DrugDef(
        "cisplatin",
        "antineoplastic-other",
        (),
        (
            _atc("L01XA01", "cisplatin"),
            _sct("387318005", "Cisplatin (substance)"),
            _rxn("2555", "cisplatin", SRC_RXN_IN_CPIC),
            _rxn("309311", "cisplatin 1 MG/ML Injectable Solution"),
        ),
    ),
    DrugDef(
        "carboplatin",
        "antineoplastic-other",
        ("Paraplatin",),
        (
            _atc("L01XA02", "carboplatin"),
            _rxn("40048", "carboplatin", SRC_RXN_IN_CPIC),
            _sct("386905002", "Carboplatin (substance)"),
            DrugCoding(NCIT, "C1282", "Carboplatin", SRC_NCIT),
        ),
    ),
    DrugDef(
        "oxaliplatin",
        "antineoplastic-other",
        ("Eloxatin",),
        (
            _atc("L01XA03", "oxaliplatin"),
            _rxn("32592", "oxaliplatin", SRC_RXN_IN_CPIC),
            _sct("395814003", "Oxaliplatin (substance)"),
        ),
    ),
    DrugDef(
        "pemetrexed",
        "antineoplastic-other",
        ("Alimta",),
        (_atc("L01BA04", "pemetrexed"), _sct("409159000", "Pemetrexed (substance)")),
    ),
    DrugDef(
        "paclitaxel",
        "antineoplastic-other",
        ("Taxol", "Abraxane"),
        (
            _atc("L01CD01", "paclitaxel"),
            _rxn("56946", "paclitaxel", SRC_RXN_IN_SINGLE),
            _sct("387374002", "Paclitaxel (substance)"),
            DrugCoding(NCIT, "C1411", "Paclitaxel", SRC_NCIT),
        ),
    ),
    DrugDef("docetaxel", "antineoplastic-other", ("Taxotere",), (_atc("L01CD02", "docetaxel"),)),
    DrugDef(
        "gemcitabine",
        "antineoplastic-other",
        ("Gemzar",),
        (
            _atc("L01BC05", "gemcitabine"),
            _rxn("12574", "gemcitabine", SRC_RXN_IN_CPIC),
            _rxn("1719000", "gemcitabine 200 MG Injection"),
            _rxn("1719003", "gemcitabine 1000 MG Injection"),
        ),
    ),
    DrugDef(
        "etoposide",
        "antineoplastic-other",
        (),
        (
            _atc("L01CB01", "etoposide"),
            _sct("387316009", "Etoposide (substance)"),
            _rxn("4179", "etoposide", SRC_RXN_IN_CPIC),
            _rxn("1734340", "etoposide 100 MG Injection"),
            _rxn("310248", "etoposide 20 MG/ML Injectable Solution"),
            _rxn("197687", "etoposide 50 MG Oral Capsule"),
        ),
    ),
    DrugDef(
        "fluorouracil",
        "antineoplastic-other",
        (),
        (
            _atc("L01BC02", "fluorouracil"),
            _rxn("4492", "fluorouracil", SRC_RXN_IN_CPIC),
            _sct("387172005", "Fluorouracil (substance)"),
        ),
    ),
    DrugDef(
        "capecitabine",
        "antineoplastic-other",
        ("Xeloda",),
        (
            _atc("L01BC06", "capecitabine"),
            _rxn("194000", "capecitabine", SRC_RXN_IN_CPIC),
            _sct("386906001", "Capecitabine (substance)"),
        ),
    ),
    DrugDef(
        "irinotecan",
        "antineoplastic-other",
        (),
        (
            _atc("L01CE02", "irinotecan"),
            _rxn("51499", "irinotecan", SRC_RXN_IN_CPIC),
            _sct("372538008", "Irinotecan (substance)"),
        ),
    ),
    DrugDef("topotecan", "antineoplastic-other", (), (_atc("L01CE01", "topotecan"),)),
    DrugDef(
        "vinorelbine",
        "antineoplastic-other",
        (),
        (_atc("L01CA04", "vinorelbine"), _sct("372541004", "Vinorelbine (substance)")),
    ),
    DrugDef(
        "cyclophosphamide",
        "antineoplastic-other",
        (),
        (_atc("L01AA01", "cyclophosphamide"), _rxn("3002", "cyclophosphamide", SRC_RXN_IN_CPIC)),
    ),
    DrugDef(
        "bevacizumab",
        "antineoplastic-other",
        ("Avastin",),
        (_atc("L01FG01", "bevacizumab"), _sct("409406007", "Bevacizumab (substance)")),
    ),
    DrugDef("ramucirumab", "antineoplastic-other", ("Cyramza",), (_atc("L01FG02", "ramucirumab"),)),
    DrugDef(
        "cetuximab",
        "antineoplastic-other",
        ("Erbitux",),
        (_atc("L01FE01", "cetuximab"), _rxn("318341", "cetuximab", SRC_RXN_IN_CPIC)),
    ),
    DrugDef("trastuzumab", "antineoplastic-other", ("Herceptin",), (_atc("L01FD01", "trastuzumab"),)),
    DrugDef(
        "enfortumab vedotin", "antineoplastic-other", ("Padcev",), (_atc("L01FX13", "enfortumab vedotin"),)
    ),
    DrugDef("lenvatinib", "antineoplastic-other", ("Lenvima",), (_atc("L01EX08", "lenvatinib"),)),
    DrugDef("axitinib", "antineoplastic-other", ("Inlyta",), (_atc("L01EK01", "axitinib"),)),
    DrugDef("cabozantinib", "antineoplastic-other", ("Cabometyx",), (_atc("L01EX07", "cabozantinib"),)),
    DrugDef(
        "sunitinib",
        "antineoplastic-other",
        ("Sutent",),
        (_atc("L01EX01", "sunitinib"), _rxn("357977", "sunitinib", SRC_RXN_IN_CPIC)),
    ),
    DrugDef(
        "pazopanib",
        "antineoplastic-other",
        ("Votrient",),
        (_atc("L01EX03", "pazopanib"), _rxn("714438", "pazopanib", SRC_RXN_IN_CPIC)),
    ),
)

# The drug ValueSets: id -> (name, title, description).
DRUG_GROUPS: Mapping[str, tuple[str, str, str]] = {
    "ici-pd-1": (
        "IciPd1VS",
        "PD-1 inhibitors",
        "Anti-PD-1 immune checkpoint inhibitors, in ATC, RxNorm, SNOMED CT and NCI Thesaurus codes and "
        "by antineoplastic-drug concept (generic and brand names). An ICI start.",
    ),
    "ici-pd-l1": (
        "IciPdl1VS",
        "PD-L1 inhibitors",
        "Anti-PD-L1 immune checkpoint inhibitors, coded as for ici-pd-1. An ICI start.",
    ),
    "ici-ctla-4": (
        "IciCtla4VS",
        "CTLA-4 inhibitors",
        "Anti-CTLA-4 antibodies. Given with a PD-1/PD-L1 inhibitor they make a combination; they do not "
        "start ICI treatment in the sense of this service on their own.",
    ),
    "antineoplastic-other": (
        "AntineoplasticOtherVS",
        "Other antineoplastics",
        "Chemotherapy, anti-angiogenic antibodies and kinase inhibitors commonly combined with ICIs. "
        "Given within the first cycle of an ICI they make a combination.",
    ),
}

DRUG_CODE_SYSTEM = CodeSystemDef(
    "antineoplastic-drug",
    "AntineoplasticDrugCS",
    "Antineoplastic drugs",
    "The drugs of the drug ValueSets, one concept per active ingredient (code and display: the INN "
    "in lower case; designations: brand names). A medication naming one of them in "
    "CodeableConcept.text or Coding.display is that drug when none of its codes is listed.",
    tuple(Concept(d.name, d.name, DRUG_GROUPS[d.group][1].rstrip("s") + ".", d.brands) for d in DRUGS),
)


CODE_SYSTEMS: tuple[CodeSystemDef, ...] = (
    CodeSystemDef(
        "oncoresponse",
        "OncoresponseCS",
        "oncoresponse observation and component codes",
        "Observation.code and Observation.component.code values of the oncoresponse service "
        "(docs/fhir-contract.md sections 1 and 2). No LOINC or SNOMED CT code exists for criteria-derived "
        "tumour response categories (docs/rules/), hence a local code system.",
        (
            _c(
                "lesion-response",
                "Lesion response",
                "Response of one lesion at one follow-up timepoint, "
                "judged against the lesion's own baseline (decrease) and nadir (increase).",
            ),
            _c(
                "recist11-timepoint-response",
                "RECIST 1.1 timepoint response",
                "Overall response at one "
                "follow-up timepoint by RECIST 1.1 (Eisenhauer et al. 2009, Tables 1 and 2).",
            ),
            _c(
                "irecist-timepoint-response",
                "iRECIST timepoint response",
                "Overall response at one follow-up timepoint by iRECIST (Seymour et al. 2017, Table 2).",
            ),
            _c(
                "recist11-best-overall-response",
                "RECIST 1.1 best overall response",
                "Best overall "
                "response over the course by RECIST 1.1 section 4.4, with or without confirmation.",
            ),
            _c(
                "irecist-best-overall-response",
                "iRECIST best overall response",
                "Best overall response over the course by iRECIST (iBOR, Seymour et al. 2017).",
            ),
            _c(
                "atypical-response",
                "Atypical response pattern",
                "A dissociated response, "
                "pseudoprogression, hyperprogression or delayed response under a named definition.",
            ),
            _c(
                "response-group",
                "Response group",
                "Patient-level response group of the seed study "
                "(Guan et al. 2024): DR, else PsPD, else the RECIST 1.1 best overall response.",
            ),
            _c(
                "non-target-status",
                "Non-target lesion status",
                "Qualitative status of one non-target "
                "(non-measured) lesion on one imaging study (RECIST 1.1 section 4.3.2).",
            ),
            _c(
                "short-axis",
                "Short-axis diameter",
                "Short-axis diameter of a lymph node; RECIST 1.1 "
                "measures nodes in short axis (section 3.1.1).",
            ),
            _c(
                "pdl1-tps",
                "PD-L1 tumour proportion score",
                "Percentage of viable tumour cells with "
                "partial or complete membrane PD-L1 staining, independent of the assay.",
            ),
            _c(
                "change-from-baseline-pct",
                "Change from baseline (%)",
                "Relative change of a diameter or sum of diameters from its baseline value, in percent.",
            ),
            _c(
                "change-from-nadir-pct",
                "Change from nadir (%)",
                "Relative change of a diameter or sum of "
                "diameters from its smallest value so far (baseline included), in percent.",
            ),
            _c(
                "diameter-mm",
                "Diameter (mm)",
                "Diameter of the lesion counted in the sum: longest "
                "diameter, or short axis for a lymph node.",
            ),
            _c(
                "target-response",
                "Target lesion response",
                "Response of the target lesions at the timepoint (RECIST 1.1 section 4.3.1).",
            ),
            _c(
                "non-target-response",
                "Non-target lesion response",
                "Response of the non-target lesions at the timepoint (RECIST 1.1 section 4.3.2).",
            ),
            _c(
                "new-lesion-present",
                "New lesion present",
                "Whether at least one new lesion is present at the timepoint.",
            ),
            _c(
                "sum-of-diameters-mm",
                "Sum of diameters (mm)",
                "Sum of the diameters of the target lesions at the timepoint.",
            ),
            _c(
                "baseline-sum-mm",
                "Baseline sum of diameters (mm)",
                "Sum of the diameters of the target lesions at baseline.",
            ),
            _c(
                "nadir-sum-mm",
                "Nadir sum of diameters (mm)",
                "Smallest sum of diameters recorded so far, "
                "baseline included: the reference for progression (RECIST 1.1 section 4.3.1).",
            ),
            _c(
                "timepoint-index",
                "Timepoint index",
                "Position of the follow-up timepoint: 1 is the first evaluation after baseline.",
            ),
            _c(
                "new-lesion-target-sum-mm",
                "New lesion target sum (mm)",
                "Sum of the diameters of the new lesions selected as new-lesion target (iRECIST NLT).",
            ),
            _c(
                "confirmation-required",
                "Confirmation required",
                "Whether CR/PR had to be confirmed by a later assessment (RECIST 1.1 section 4.6).",
            ),
            _c(
                "definition",
                "Definition used",
                "The published or project definition that produced an atypical response finding.",
            ),
            _c(
                "dr-trigger",
                "Dissociated response trigger",
                "What made the dissociated response: a "
                "growing target lesion, a progressing non-target lesion or a new lesion.",
            ),
            _c(
                "overall-response-at-detection",
                "Overall response at detection",
                "RECIST 1.1 overall response at the timepoint where the atypical response was detected.",
            ),
            _c(
                "atypical",
                "Atypical response",
                "Whether the patient's response group is atypical (DR or PsPD).",
            ),
            _c(
                "post-progression",
                "After progression",
                "A RECIST 1.1 timepoint after the first PD: the value is PD carried forward, not a "
                "response (RECIST 1.1 section 4.4.1).",
            ),
            _c(
                "tgr-reference",
                "TGR, reference period",
                "Tumour growth rate from the pre-baseline scan to baseline, % volume per month (Ferte 2014).",
            ),
            _c(
                "tgr-experimental",
                "TGR, experimental period",
                "Tumour growth rate from baseline to the first evaluation, % volume per month.",
            ),
            _c("delta-tgr", "Delta TGR", "TGR experimental minus TGR reference, % per month."),
            _c(
                "tgr-ratio",
                "TGR ratio",
                "TGR experimental / TGR reference (Champiat 2017); absent when the reference period did not grow.",
            ),
            _c(
                "tgk-reference",
                "TGK, reference period",
                "Tumour growth kinetics from the pre-baseline scan to baseline, mm per month (Saada-Bouzid 2017).",
            ),
            _c(
                "tgk-experimental",
                "TGK, experimental period",
                "Tumour growth kinetics from baseline to the first evaluation, mm per month.",
            ),
            _c(
                "tgk-ratio",
                "TGKR",
                "TGK experimental / TGK reference (Saada-Bouzid 2017); absent when the reference period did not grow.",
            ),
            _c(
                "definition-reason",
                "Why the definition is met",
                "The comparison that met the definition, with its numbers.",
            ),
            _c(
                "pre-baseline-scan", "Pre-baseline scan", "Date of the scan that starts the reference period."
            ),
            _c("baseline-scan", "Baseline scan", "Date of the baseline scan."),
            _c(
                "first-evaluation-scan",
                "First evaluation scan",
                "Date of the first evaluation after baseline.",
            ),
        ),
    ),
    CodeSystemDef(
        "lesion-role",
        "LesionRoleCS",
        "Lesion role",
        "Role of a lesion in RECIST 1.1 / iRECIST assessment (BodyStructure extension lesion-role).",
        (
            _c(
                "target",
                "Target lesion",
                "Measurable lesion selected at baseline for the sum of "
                "diameters (at most 5, at most 2 per organ; RECIST 1.1 section 3.3).",
            ),
            _c("non-target", "Non-target lesion", "Lesion followed qualitatively (RECIST 1.1 section 3.3)."),
            _c(
                "new-target",
                "New lesion, target",
                "New measurable lesion selected as new-lesion target "
                "(iRECIST NLT: at most 5, at most 2 per organ).",
            ),
            _c("new-non-target", "New lesion, non-target", "Other new lesion (iRECIST NLNT)."),
        ),
    ),
    CodeSystemDef(
        "measurement-flag",
        "MeasurementFlagCS",
        "Measurement flag",
        "Qualifier of a lesion measurement (Observation.interpretation of a tumour size Observation).",
        (
            _c(
                "too-small",
                "Too small to measure",
                "Lesion present but too small to measure; counted as 5 mm (RECIST 1.1 guideline).",
            ),
            _c("disappeared", "Disappeared", "Lesion no longer visible; counted as 0 mm."),
        ),
    ),
    CodeSystemDef(
        "non-target-status",
        "NonTargetStatusCS",
        "Non-target lesion status",
        "Value of a NonTargetStatus Observation.",
        (
            _c("absent", "Absent", "Non-target lesion no longer present."),
            _c("present", "Present", "Non-target lesion present without unequivocal progression."),
            _c(
                "increased",
                "Increased",
                "Any further increase since the last assessment; used to "
                "confirm progression under iRECIST (iCPD).",
            ),
            _c(
                "unequivocal-progression",
                "Unequivocal progression",
                "Unequivocal progression of the non-target lesion (RECIST 1.1 section 4.3.2).",
            ),
        ),
    ),
    CodeSystemDef(
        "lesion-response",
        "LesionResponseCS",
        "Lesion response",
        "Response of one lesion at one timepoint (LesionResponse value).",
        (
            _c("responding", "Responding", "Decrease of at least 30 % from the lesion's baseline diameter."),
            _c(
                "progressing",
                "Progressing",
                "Increase of at least 20 % and at least 5 mm from the lesion's nadir.",
            ),
            _c("stable", "Stable", "Neither responding nor progressing."),
            _c(
                "disappeared",
                "Disappeared",
                "Lesion disappeared (a lymph node below 10 mm short axis counts as normal).",
            ),
            _c("new", "New", "Lesion first seen after baseline."),
            _c("not-evaluable", "Not evaluable", "Lesion not assessed or not assessable at the timepoint."),
        ),
    ),
    CodeSystemDef(
        "recist-response",
        "RecistResponseCS",
        "RECIST 1.1 response",
        "RECIST 1.1 response categories (Eisenhauer et al. 2009, section 4.3; CDISC RS values).",
        (
            _c(
                "CR",
                "Complete response",
                "Disappearance of all target and non-target lesions; every "
                "lymph node below 10 mm short axis.",
            ),
            _c("PR", "Partial response", "At least 30 % decrease of the sum of diameters from baseline."),
            _c("SD", "Stable disease", "Neither sufficient shrinkage for PR nor sufficient increase for PD."),
            _c(
                "NonCR-NonPD",
                "Non-CR/non-PD",
                "Persistence of non-target lesion(s) without progression (non-target disease only).",
            ),
            _c(
                "PD",
                "Progressive disease",
                "At least 20 % and 5 mm increase of the sum from the nadir, "
                "unequivocal non-target progression, or a new lesion.",
            ),
            _c("NE", "Not evaluable", "Not all lesions assessed, so no other category can be assigned."),
        ),
    ),
    CodeSystemDef(
        "irecist-response",
        "IrecistResponseCS",
        "iRECIST response",
        "iRECIST response categories (Seymour et al. 2017; CDISC RS values).",
        (
            _c("iCR", "Immune complete response", "Complete response by iRECIST."),
            _c("iPR", "Immune partial response", "Partial response by iRECIST."),
            _c("iSD", "Immune stable disease", "Stable disease by iRECIST."),
            _c(
                "iNonCR-NonUPD",
                "Immune non-CR/non-UPD",
                "Non-target disease only, neither complete response nor unconfirmed progression.",
            ),
            _c(
                "iUPD",
                "Immune unconfirmed progressive disease",
                "RECIST 1.1 progression not yet confirmed; to be confirmed 4 to 8 weeks later.",
            ),
            _c(
                "iCPD",
                "Immune confirmed progressive disease",
                "Progression confirmed at the next assessment after iUPD.",
            ),
            _c("NE", "Not evaluable", "Not evaluable."),
        ),
    ),
    CodeSystemDef(
        "atypical-response",
        "AtypicalResponseCS",
        "Atypical response pattern",
        "Atypical response patterns under immune checkpoint inhibitors (docs/rules/ 1c, 1d).",
        (
            _c(
                "DR",
                "Dissociated response",
                "Some lesions respond while others progress or new lesions "
                "appear (definition named in component `definition`).",
            ),
            _c(
                "PsPD",
                "Pseudoprogression",
                "Unconfirmed progression followed by stabilisation or "
                "response (iRECIST: iUPD then iSD, iPR or iCR).",
            ),
            _c(
                "HPD",
                "Hyperprogression",
                "Accelerated tumour growth after treatment start compared with "
                "the pre-treatment period (definition named in component `definition`).",
            ),
            _c(
                "DeR",
                "Delayed response",
                "First response after a period of stable disease, late in the course (project definition).",
            ),
        ),
    ),
    CodeSystemDef(
        "response-group",
        "ResponseGroupCS",
        "Response group",
        "Patient-level response group of the seed study (Guan et al. 2024; docs/fhir-contract.md section 2).",
        (
            _c("DR", "Dissociated response", "A dissociated response was found at some timepoint."),
            _c(
                "PsPD",
                "Pseudoprogression",
                "Pseudoprogression was found, and no dissociated response (default precedence).",
            ),
            _c("CR-PR", "Complete or partial response", "Best overall response CR or PR (true response)."),
            _c("SD", "Stable disease", "Best overall response SD or non-CR/non-PD."),
            _c("PD", "Progressive disease", "Best overall response PD."),
            _c("NE", "Not evaluable", "No best overall response could be determined."),
        ),
    ),
    CodeSystemDef(
        "dr-trigger",
        "DrTriggerCS",
        "Dissociated response trigger",
        "What made a dissociated response (component `dr-trigger` of AtypicalResponse).",
        (
            _c("target-lesion", "Target lesion", "A measured lesion grew while others responded."),
            _c(
                "non-target-lesion",
                "Non-target lesion",
                "A non-target lesion progressed unequivocally while others responded.",
            ),
            _c("new-lesion", "New lesion", "A new lesion appeared while others responded."),
        ),
    ),
    CodeSystemDef(
        "response-definition",
        "ResponseDefinitionCS",
        "Atypical response definition",
        "Named definitions of dissociated response, pseudoprogression, hyperprogression and delayed "
        "response (docs/rules/); the version is carried in the text.",
        (
            _c(
                "bernard-tessier",
                "Bernard-Tessier",
                "Lesion level: >30 % decrease of some lesions and "
                ">20 % (and >=5 mm) increase of others, or new lesions or non-target deterioration "
                "(Bernard-Tessier 2021, as extended by Guan 2024). Project default.",
            ),
            _c(
                "sato-organ",
                "Sato (organ level)",
                "Organ level at first evaluation: CR/PR in some organs "
                "and PD in others, or all organs responding with new lesions or non-target "
                "deterioration (Sato 2021, Invest New Drugs).",
            ),
            _c(
                "tozuka",
                "Tozuka",
                "Patients with RECIST PD at first CT: some shrinking lesions and growing "
                "or new lesions (Tozuka 2020, BMC Cancer 20:207).",
            ),
            _c(
                "humbert",
                "Humbert",
                "Coexistence of responding and non-responding lesions (Humbert & "
                "Chardin 2020, Front Oncol 10:566297).",
            ),
            _c(
                "vaflard-target",
                "Vaflard (target lesions)",
                "At least one responding and one progressive target lesion (Vaflard 2021, Drugs R D).",
            ),
            _c(
                "irecist",
                "iRECIST pseudoprogression",
                "iUPD not confirmed and followed by iSD, iPR or iCR "
                "(Seymour 2017). Project default for PsPD.",
            ),
            _c(
                "champiat",
                "Champiat",
                "Hyperprogression: RECIST PD at first evaluation and TGR ratio "
                "(experimental / reference) >= 2 (Champiat 2017, Clin Cancer Res 23:1920).",
            ),
            _c(
                "saada-bouzid",
                "Saada-Bouzid",
                "Hyperprogression: tumour growth kinetics ratio >= 2 (Saada-Bouzid 2017, Ann Oncol 28:1605).",
            ),
            _c(
                "ferrara",
                "Ferrara",
                "Hyperprogression: delta TGR > 50 % per month (Ferrara 2018, JAMA Oncol 4:1543).",
            ),
            _c("kas", "Kas", "Hyperprogression: delta TGR > 100 % per month (Kas 2020, JAMA Netw Open)."),
            _c(
                "project-delayed-response",
                "Delayed response (project)",
                "First iPR/iCR at least 12 weeks "
                "after treatment start, after iSD, without confirmed progression before it (project "
                "definition; no consensus definition exists).",
            ),
        ),
    ),
    DRUG_CODE_SYSTEM,
)
CS_BY_ID: Mapping[str, CodeSystemDef] = {cs.id: cs for cs in CODE_SYSTEMS}

VALUE_SETS: tuple[ValueSetDef, ...] = (
    *(
        ValueSetDef(
            cs.id,
            cs.name.removesuffix("CS") + "VS",
            cs.title,
            f"All codes of {cs.url}.",
            (Include(cs.url),),
        )
        for cs in CODE_SYSTEMS
    ),
    ValueSetDef(
        "best-overall-response-code",
        "BestOverallResponseCodeVS",
        "Best overall response codes",
        "Observation.code of a BestOverallResponse: RECIST 1.1 or iRECIST best overall response.",
        (
            Include(
                cs_url("oncoresponse"), ("recist11-best-overall-response", "irecist-best-overall-response")
            ),
        ),
    ),
    ValueSetDef(
        "best-overall-response",
        "BestOverallResponseVS",
        "Best overall response",
        "RECIST 1.1 or iRECIST response; invariant or-bor-1 ties the code system to Observation.code.",
        (Include(cs_url("recist-response")), Include(cs_url("irecist-response"))),
    ),
    ValueSetDef(
        "assessment-status",
        "AssessmentStatusVS",
        "Status of a written assessment",
        "Observation.status of what the service writes: final, or amended when a re-run changes it "
        "(docs/fhir-contract.md section 2).",
        (Include(OBSERVATION_STATUS, ("final", "amended")),),
    ),
    ValueSetDef(
        "usable-status",
        "UsableStatusVS",
        "Status of a usable input Observation",
        "Observation.status values the service reads (docs/architecture.md: final, amended, corrected).",
        (Include(OBSERVATION_STATUS, ("final", "amended", "corrected")),),
    ),
)


# --- element definitions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    key: str
    human: str
    expression: str
    severity: str = "error"


@dataclass(frozen=True)
class Element:
    """One differential ElementDefinition; rendered to JSON and to FSH from the same fields."""

    id: str
    short: str | None = None
    definition: str | None = None
    min: int | None = None
    max: str | None = None
    types: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()  # for a Reference type
    type_profile: str | None = None  # for an Extension slice
    fixed: tuple[str, Any] | None = None  # ("fixedUri", value)
    pattern: tuple[str, Any] | None = None  # ("patternCodeableConcept", value)
    binding: str | None = None  # required ValueSet
    constraints: tuple[Constraint, ...] = ()
    must_support: bool = False
    slicing: tuple[str, str] | None = None  # (discriminator type, path); rules open
    min_integer: int | None = None

    @property
    def path(self) -> str:
        return ".".join(part.split(":")[0] for part in self.id.split("."))

    @property
    def slice_name(self) -> str | None:
        last = self.id.split(".")[-1]
        return last.split(":")[1] if ":" in last else None

    def to_json(self, sd_url_: str) -> JsonDict:
        out: JsonDict = {"id": self.id, "path": self.path}
        if self.slice_name:
            out["sliceName"] = self.slice_name
        if self.slicing:
            out["slicing"] = {
                "discriminator": [{"type": self.slicing[0], "path": self.slicing[1]}],
                "ordered": False,
                "rules": "open",
            }
        if self.short:
            out["short"] = self.short
        if self.definition:
            out["definition"] = self.definition
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.types:
            out["type"] = [self._type_json(t) for t in self.types]
        if self.fixed:
            out[self.fixed[0]] = self.fixed[1]
        if self.pattern:
            out[self.pattern[0]] = self.pattern[1]
        if self.min_integer is not None:
            out["minValueInteger"] = self.min_integer
        if self.constraints:
            out["constraint"] = [
                {
                    "key": c.key,
                    "severity": c.severity,
                    "human": c.human,
                    "expression": c.expression,
                    "source": sd_url_,
                }
                for c in self.constraints
            ]
        if self.must_support:
            out["mustSupport"] = True
        if self.binding:
            out["binding"] = {"strength": "required", "valueSet": self.binding}
        return out

    def _type_json(self, code: str) -> JsonDict:
        t: JsonDict = {"code": code}
        if code == "Reference" and self.target_profiles:
            t["targetProfile"] = list(self.target_profiles)
        if code == "Extension" and self.type_profile:
            t["profile"] = [self.type_profile]
        return t


def _camel(code: str) -> str:
    head, *rest = code.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _pattern_cc(system: str, code: str) -> tuple[str, JsonDict]:
    return ("patternCodeableConcept", {"coding": [{"system": system, "code": code}]})


@dataclass(frozen=True)
class ComponentSlice:
    code: str
    min: int
    max: str
    value_type: str  # Quantity | CodeableConcept | boolean | integer
    short: str
    binding: str | None = None  # ValueSet id
    unit: str | None = None  # UCUM code of a Quantity
    value_required: bool = False  # False: dataAbsentReason may stand in for the value
    min_integer: int | None = None

    def elements(self, root: str) -> list[Element]:
        name = _camel(self.code)
        sid = f"{root}.component:{name}"
        out = [
            Element(sid, short=self.short, min=self.min, max=self.max),
            Element(f"{sid}.code", pattern=_pattern_cc(cs_url("oncoresponse"), self.code)),
            Element(
                f"{sid}.value[x]",
                min=1 if self.value_required else None,
                types=(self.value_type,),
                pattern=("patternQuantity", {"system": UCUM, "code": self.unit}) if self.unit else None,
                binding=vs_url(self.binding) if self.binding else None,
                min_integer=self.min_integer,
            ),
        ]
        return out


def _mm(code: str, short: str, min_: int = 1) -> ComponentSlice:
    return ComponentSlice(code, min_, "1", "Quantity", short, unit="mm")


def _pct(code: str, short: str) -> ComponentSlice:
    return ComponentSlice(code, 1, "1", "Quantity", short, unit="%")


def _index(min_: int) -> ComponentSlice:
    return ComponentSlice(
        "timepoint-index",
        min_,
        "1",
        "integer",
        "1 = first evaluation after baseline",
        value_required=True,
        min_integer=1,
    )


COMPONENT_VALUE = Constraint(
    "or-comp-1",
    "A component carries a value or a dataAbsentReason (not both, as obs-6)",
    "(value.exists() or dataAbsentReason.exists()) and (value.empty() or dataAbsentReason.empty())",
)
BOR_SYSTEM = Constraint(
    "or-bor-1",
    "The value comes from the response code system of the criterion named in Observation.code",
    f"(code.coding.where(system='{cs_url('oncoresponse')}' and code='recist11-best-overall-response')"
    f".exists() implies value.coding.system='{cs_url('recist-response')}') and "
    f"(code.coding.where(system='{cs_url('oncoresponse')}' and code='irecist-best-overall-response')"
    f".exists() implies value.coding.system='{cs_url('irecist-response')}')",
)
DR_TRIGGER = Constraint(
    "or-atyp-1",
    "A dissociated response names its trigger (component dr-trigger)",
    f"value.coding.where(system='{cs_url('atypical-response')}' and code='DR').exists() implies "
    f"component.where(code.coding.code='dr-trigger' and value.exists()).exists()",
)
GROUP_ATYPICAL = Constraint(
    "or-rg-1",
    "Component atypical is true exactly when the response group is DR or PsPD",
    f"component.where(code.coding.code='atypical').value = "
    f"value.coding.where(system='{cs_url('response-group')}' and (code='DR' or code='PsPD')).exists()",
)


@dataclass(frozen=True)
class ProfileDef:
    id: str
    base: str
    title: str
    description: str
    elements: tuple[Element, ...]

    @property
    def url(self) -> str:
        return sd_url(self.id)


def _outbound(
    name: str,
    title: str,
    description: str,
    *,
    code: str | None,
    value_vs: str,
    components: Sequence[ComponentSlice],
    effective: str = "dateTime",
    focus: bool = False,
    has_member: bool = False,
    code_vs: str | None = None,
    root_constraints: tuple[Constraint, ...] = (),
) -> ProfileDef:
    r = "Observation"
    els: list[Element] = [
        Element(r, short=title, definition=description, constraints=root_constraints),
        Element(f"{r}.meta", min=1),
        Element(f"{r}.meta.profile", short="Claims this profile", min=1),
        Element(f"{r}.extension", slicing=("value", "url")),
        Element(
            f"{r}.extension:ruleTrace",
            short="Rule ids that produced the value",
            min=0,
            max="*",
            types=("Extension",),
            type_profile=sd_url("rule-trace"),
        ),
        Element(f"{r}.identifier", short="Deterministic assessment identifier", min=1, max="*"),
        Element(f"{r}.identifier.system", min=1, fixed=("fixedUri", IDENTIFIER_ASSESSMENT)),
        Element(
            f"{r}.identifier.value",
            short="Derived from patient, kind, criterion, definition and date",
            min=1,
        ),
        Element(f"{r}.status", short="final | amended", binding=vs_url("assessment-status")),
    ]
    if code is not None:
        els.append(Element(f"{r}.code", pattern=_pattern_cc(cs_url("oncoresponse"), code)))
    else:
        els.append(Element(f"{r}.code", binding=vs_url(code_vs or "")))
        els.append(Element(f"{r}.code.coding", min=1))
    els.append(Element(f"{r}.subject", min=1, types=("Reference",), target_profiles=(f"{FHIR_SD}/Patient",)))
    if focus:
        els.append(
            Element(
                f"{r}.focus",
                short="The lesion (BodyStructure)",
                min=1,
                max="1",
                types=("Reference",),
                target_profiles=(sd_url("RecistLesion"),),
            )
        )
    els.append(Element(f"{r}.effective[x]", min=1, types=(effective,)))
    els.append(Element(f"{r}.value[x]", min=1, types=("CodeableConcept",), binding=vs_url(value_vs)))
    if has_member:
        els.append(
            Element(
                f"{r}.hasMember",
                short="The LesionResponses that show the pattern",
                types=("Reference",),
                target_profiles=(sd_url("LesionResponse"),),
                must_support=True,
            )
        )
    els.append(Element(f"{r}.derivedFrom", short="The inputs the result was derived from", must_support=True))
    els.append(Element(f"{r}.component", slicing=("pattern", "code"), constraints=(COMPONENT_VALUE,)))
    for comp in components:
        els.extend(comp.elements(r))
    return ProfileDef(name, f"{FHIR_SD}/Observation", title, description, tuple(els))


_SUMS: tuple[ComponentSlice, ...] = (
    ComponentSlice("new-lesion-present", 1, "1", "boolean", "At least one new lesion", value_required=True),
    _mm("sum-of-diameters-mm", "Sum of target diameters"),
    _mm("baseline-sum-mm", "Baseline sum of diameters"),
    _mm("nadir-sum-mm", "Smallest sum so far, baseline included"),
    _pct("change-from-baseline-pct", "Change of the sum from baseline"),
    _pct("change-from-nadir-pct", "Change of the sum from the nadir"),
    _index(1),
)


def _rate(code: str, short: str, unit: str) -> ComponentSlice:
    return ComponentSlice(code, 0, "1", "Quantity", short, unit=unit, value_required=True)


# Hyperprogression (AtypicalResponse HPD only): kinetics, ratios, reason and reference scans.
_HPD_COMPONENTS: tuple[ComponentSlice, ...] = (
    _rate("tgr-reference", "HPD: TGR of the reference period", "%/mo"),
    _rate("tgr-experimental", "HPD: TGR of the experimental period", "%/mo"),
    _rate("delta-tgr", "HPD: TGR experimental - reference", "%/mo"),
    _rate("tgr-ratio", "HPD: TGR ratio (only when the reference period grew)", "1"),
    _rate("tgk-reference", "HPD: TGK of the reference period", "mm/mo"),
    _rate("tgk-experimental", "HPD: TGK of the experimental period", "mm/mo"),
    _rate("tgk-ratio", "HPD: TGKR (only when the reference period grew)", "1"),
    ComponentSlice(
        "definition-reason", 0, "1", "string", "HPD: why the definition is met", value_required=True
    ),
    ComponentSlice(
        "pre-baseline-scan", 0, "1", "dateTime", "HPD: pre-baseline scan date", value_required=True
    ),
    ComponentSlice("baseline-scan", 0, "1", "dateTime", "HPD: baseline scan date", value_required=True),
    ComponentSlice(
        "first-evaluation-scan", 0, "1", "dateTime", "HPD: first evaluation scan date", value_required=True
    ),
)

PROFILES: tuple[ProfileDef, ...] = (
    _outbound(
        "LesionResponse",
        "Lesion response",
        "Response of one lesion at one follow-up timepoint (docs/fhir-contract.md section 2): responding "
        "(<= -30 % vs its baseline), progressing (>= +20 % and >= +5 mm vs its nadir), stable, "
        "disappeared, new or not evaluable. `focus` is the lesion. Decision: `timepoint-index` is an "
        "optional extra component (the contract lists diameter and the two changes).",
        code="lesion-response",
        value_vs="lesion-response",
        components=(
            _mm("diameter-mm", "Diameter counted (long axis; short axis for nodes)"),
            _pct("change-from-baseline-pct", "Change from the lesion's baseline"),
            _pct("change-from-nadir-pct", "Change from the lesion's nadir"),
            _index(0),
        ),
        focus=True,
    ),
    _outbound(
        "Recist11TimepointResponse",
        "RECIST 1.1 timepoint response",
        "RECIST 1.1 overall response at one follow-up timepoint (Eisenhauer 2009 Tables 1 and 2) "
        "with its target, non-target and new-lesion parts and the sums it was judged on. A value the "
        "engine could not compute is given as the component's dataAbsentReason. RECIST 1.1 has no "
        "response after progression (section 4.4.1): every timepoint after the first PD has the value "
        "PD and the component post-progression = true; its target and non-target components still "
        "show what that scan measured.",
        code="recist11-timepoint-response",
        value_vs="recist-response",
        components=(
            ComponentSlice(
                "target-response",
                1,
                "1",
                "CodeableConcept",
                "Target lesion response",
                binding="recist-response",
            ),
            ComponentSlice(
                "non-target-response",
                1,
                "1",
                "CodeableConcept",
                "Non-target lesion response",
                binding="recist-response",
            ),
            *_SUMS,
            ComponentSlice(
                "post-progression",
                0,
                "1",
                "boolean",
                "Present (true) after the first PD: the value is PD carried forward, not a response",
                value_required=True,
            ),
        ),
    ),
    _outbound(
        "IrecistTimepointResponse",
        "iRECIST timepoint response",
        "iRECIST overall response at one follow-up timepoint (Seymour 2017) with the sums it was "
        "judged on and the sum of new-lesion target diameters (NLT). target-response and "
        "non-target-response are the iRECIST categories (Table 2); a category that does not apply "
        "or could not be judged is given as the component's dataAbsentReason.",
        code="irecist-timepoint-response",
        value_vs="irecist-response",
        components=(
            ComponentSlice(
                "target-response",
                1,
                "1",
                "CodeableConcept",
                "Target lesion response (iRECIST)",
                binding="irecist-response",
            ),
            ComponentSlice(
                "non-target-response",
                1,
                "1",
                "CodeableConcept",
                "Non-target lesion response (iRECIST)",
                binding="irecist-response",
            ),
            *_SUMS,
            _mm("new-lesion-target-sum-mm", "Sum of new-lesion target diameters (iRECIST NLT)"),
        ),
    ),
    _outbound(
        "BestOverallResponse",
        "Best overall response",
        "RECIST 1.1 or iRECIST best overall response over `effectivePeriod` (baseline to last "
        "assessment), with or without confirmation of CR/PR (RECIST 1.1 section 4.6).",
        code=None,
        code_vs="best-overall-response-code",
        value_vs="best-overall-response",
        components=(
            ComponentSlice(
                "confirmation-required", 1, "1", "boolean", "CR/PR needed confirmation", value_required=True
            ),
        ),
        effective="Period",
        root_constraints=(BOR_SYSTEM,),
    ),
    _outbound(
        "AtypicalResponse",
        "Atypical response",
        "A dissociated response, pseudoprogression, hyperprogression or delayed response found at one "
        "timepoint under a named definition; `hasMember`/`derivedFrom` point at the LesionResponses "
        "that show it. Target of the alerts (docs/fhir-contract.md section 3). A hyperprogression "
        "carries its kinetics (TGR, delta TGR, TGK and the two ratios, with units), why the "
        "definition is met and the dates of its three reference scans.",
        code="atypical-response",
        value_vs="atypical-response",
        components=(
            ComponentSlice(
                "definition",
                1,
                "1",
                "CodeableConcept",
                "Definition used (version in text)",
                binding="response-definition",
                value_required=True,
            ),
            _index(1),
            ComponentSlice(
                "dr-trigger",
                0,
                "1",
                "CodeableConcept",
                "What made the dissociated response",
                binding="dr-trigger",
                value_required=True,
            ),
            ComponentSlice(
                "overall-response-at-detection",
                0,
                "1",
                "CodeableConcept",
                "RECIST 1.1 overall response at detection",
                binding="recist-response",
                value_required=True,
            ),
            *_HPD_COMPONENTS,
        ),
        has_member=True,
        root_constraints=(DR_TRIGGER,),
    ),
    _outbound(
        "ResponseGroup",
        "Response group",
        "The patient's response group (one per patient): DR if a dissociated response was found, else "
        "PsPD if pseudoprogression was found, else from the RECIST 1.1 best overall response (CR/PR -> "
        "CR-PR, SD/NonCR-NonPD -> SD, PD -> PD).",
        code="response-group",
        value_vs="response-group",
        components=(ComponentSlice("atypical", 1, "1", "boolean", "DR or PsPD", value_required=True),),
        root_constraints=(GROUP_ATYPICAL,),
    ),
    ProfileDef(
        "RecistLesion",
        f"{FHIR_SD}/BodyStructure",
        "RECIST lesion",
        "One tumour lesion followed over time (inbound; docs/fhir-contract.md section 1), compatible with "
        "mCODE Tumor: `identifier` follows the lesion across studies, `location` is the organ, the "
        "role and lymph-node flag are extensions (a lymph node is also implied by location SNOMED CT "
        "59441001). A missing role is assigned by RECIST 1.1 at baseline.",
        (
            Element("BodyStructure", short="RECIST lesion"),
            Element("BodyStructure.extension", slicing=("value", "url")),
            Element(
                "BodyStructure.extension:lesionRole",
                min=0,
                max="1",
                types=("Extension",),
                type_profile=sd_url("lesion-role"),
            ),
            Element(
                "BodyStructure.extension:lymphNode",
                min=0,
                max="1",
                types=("Extension",),
                type_profile=sd_url("lymph-node"),
            ),
            Element("BodyStructure.identifier", short="Follows one lesion over time", min=1, max="*"),
            Element("BodyStructure.identifier.value", min=1),
            Element("BodyStructure.location", short="Organ (SNOMED CT body structure)", must_support=True),
            Element("BodyStructure.patient", types=("Reference",), target_profiles=(f"{FHIR_SD}/Patient",)),
        ),
    ),
    ProfileDef(
        "NonTargetStatus",
        f"{FHIR_SD}/Observation",
        "Non-target lesion status",
        "Qualitative status of one non-target lesion on one imaging study (inbound; docs/fhir-contract.md "
        "section 1): absent, present, increased (any further increase, for iRECIST confirmation) or "
        "unequivocal progression. `focus` is the lesion.",
        (
            Element("Observation", short="Non-target lesion status"),
            Element(
                "Observation.status", short="final | amended | corrected", binding=vs_url("usable-status")
            ),
            Element("Observation.code", pattern=_pattern_cc(cs_url("oncoresponse"), "non-target-status")),
            Element(
                "Observation.subject", min=1, types=("Reference",), target_profiles=(f"{FHIR_SD}/Patient",)
            ),
            Element(
                "Observation.focus",
                short="The lesion",
                min=1,
                max="1",
                types=("Reference",),
                target_profiles=(sd_url("RecistLesion"),),
            ),
            Element("Observation.effective[x]", min=1, types=("dateTime", "Period", "instant")),
            Element(
                "Observation.value[x]", min=1, types=("CodeableConcept",), binding=vs_url("non-target-status")
            ),
            Element("Observation.derivedFrom", short="The ImagingStudy", must_support=True),
        ),
    ),
)


@dataclass(frozen=True)
class ExtensionDef:
    id: str
    name: str
    title: str
    description: str
    contexts: tuple[str, ...]
    value_type: str
    binding: str | None = None

    @property
    def url(self) -> str:
        return sd_url(self.id)

    def elements(self) -> tuple[Element, ...]:
        return (
            Element("Extension", short=self.title, definition=self.description),
            Element("Extension.extension", max="0"),
            Element("Extension.url", fixed=("fixedUri", self.url)),
            Element(
                "Extension.value[x]",
                min=1,
                types=(self.value_type,),
                binding=vs_url(self.binding) if self.binding else None,
            ),
        )


EXTENSIONS: tuple[ExtensionDef, ...] = (
    ExtensionDef(
        "lesion-role",
        "LesionRoleExtension",
        "Lesion role",
        "RECIST 1.1 / iRECIST role of the lesion: target, non-target, new-target or new-non-target.",
        ("BodyStructure",),
        "Coding",
        "lesion-role",
    ),
    ExtensionDef(
        "lymph-node",
        "LymphNodeExtension",
        "Lymph node",
        "Whether the lesion is a lymph node (measured in short axis; RECIST 1.1 section 3.1.1).",
        ("BodyStructure",),
        "boolean",
    ),
    ExtensionDef(
        "line-of-therapy",
        "LineOfTherapyExtension",
        "Line of therapy",
        "Line of systemic therapy of the immune checkpoint inhibitor (1 = first line).",
        ("MedicationAdministration", "MedicationRequest"),
        "positiveInt",
    ),
    ExtensionDef(
        "rule-trace",
        "RuleTraceExtension",
        "Rule trace",
        "Stable id of an engine rule that produced the value (e.g. recist1.1/target/pd).",
        ("Observation",),
        "string",
    ),
    ExtensionDef(
        "drug-ingredient",
        "DrugIngredientExtension",
        "Drug ingredient",
        "The antineoplastic drug (active ingredient) that a code of a drug ValueSet stands for.",
        ("ValueSet.compose.include.concept",),
        "Coding",
        "antineoplastic-drug",
    ),
)


# --- JSON builders -----------------------------------------------------------------------------------
def _common(resource_type: str, rid: str, url: str, name: str, title: str, description: str) -> JsonDict:
    return {
        "resourceType": resource_type,
        "id": rid,
        "url": url,
        "version": VERSION,
        "name": name,
        "title": title,
        "status": STATUS,
        "experimental": False,
        "date": RELEASE_DATE,
        "publisher": PUBLISHER,
        "description": description,
    }


def code_system_json(cs: CodeSystemDef) -> JsonDict:
    out = _common("CodeSystem", cs.id, cs.url, cs.name, cs.title, cs.description)
    out |= {
        "caseSensitive": True,
        "content": "complete",
        "count": len(cs.concepts),
        "concept": [_cs_concept(c) for c in cs.concepts],
    }
    return out


def _cs_concept(c: Concept) -> JsonDict:
    out: JsonDict = {"code": c.code, "display": c.display, "definition": c.definition}
    if c.synonyms:
        use = {"system": SNOMED, "code": SNOMED_SYNONYM, "display": "Synonym"}
        out["designation"] = [{"use": use, "value": name} for name in c.synonyms]
    return out


def drug_value_set_json(group: str) -> JsonDict:
    """One drug ValueSet: the antineoplastic-drug concepts of the group, then every external code
    (ATC, RxNorm, SNOMED CT, NCIt) with its display, its drug and where it was checked."""
    name, title, description = DRUG_GROUPS[group]
    out = _common("ValueSet", group, vs_url(group), name, title, description)
    drugs = [d for d in DRUGS if d.group == group]
    includes: list[JsonDict] = [
        {
            "system": DRUG_CODE_SYSTEM.url,
            "concept": [{"code": d.name, "display": d.name} for d in drugs],
        }
    ]
    for system in (ATC, RXNORM, SNOMED, NCIT):
        concepts = [
            {
                "extension": [
                    {
                        "url": sd_url("drug-ingredient"),
                        "valueCoding": {"system": DRUG_CODE_SYSTEM.url, "code": d.name},
                    },
                    {"url": CONCEPT_COMMENTS, "valueString": coding.source},
                ],
                "code": coding.code,
                "display": coding.display,
            }
            for d in drugs
            for coding in d.codings
            if coding.system == system
        ]
        if concepts:
            includes.append({"system": system, "concept": concepts})
    out["compose"] = {"include": includes}
    return out


def value_set_json(vs: ValueSetDef) -> JsonDict:
    out = _common("ValueSet", vs.id, vs.url, vs.name, vs.title, vs.description)
    includes: list[JsonDict] = []
    for inc in vs.includes:
        item: JsonDict = {"system": inc.system}
        if inc.codes:
            item["concept"] = [{"code": code} for code in inc.codes]
        includes.append(item)
    out["compose"] = {"include": includes}
    return out


def _structure_definition(
    sid: str,
    name: str,
    title: str,
    description: str,
    kind: str,
    type_: str,
    base: str,
    elements: Iterable[Element],
    context: Sequence[str] = (),
) -> JsonDict:
    url = sd_url(sid)
    out = _common("StructureDefinition", sid, url, name, title, description)
    out |= {"fhirVersion": FHIR_VERSION, "kind": kind, "abstract": False}
    if context:
        out["context"] = [{"type": "element", "expression": c} for c in context]
    out |= {
        "type": type_,
        "baseDefinition": base,
        "derivation": "constraint",
        "differential": {"element": [e.to_json(url) for e in elements]},
    }
    return out


def profile_json(p: ProfileDef) -> JsonDict:
    type_ = p.base.rsplit("/", 1)[1]
    return _structure_definition(p.id, p.id, p.title, p.description, "resource", type_, p.base, p.elements)


def extension_json(e: ExtensionDef) -> JsonDict:
    return _structure_definition(
        e.id,
        e.name,
        e.title,
        e.description,
        "complex-type",
        "Extension",
        f"{FHIR_SD}/Extension",
        e.elements(),
        e.contexts,
    )


def operation_definition() -> JsonDict:
    out = _common(
        "OperationDefinition",
        "assess",
        f"{BASE}/OperationDefinition/assess",
        "Assess",
        "Assess tumour response ($assess)",
        "Derives RECIST 1.1 / iRECIST timepoint and best overall responses, lesion responses, atypical "
        "responses (DR, PsPD, HPD, DeR) and the response group for every patient in the posted Bundle "
        "(docs/fhir-contract.md section 4). The request body is the input Bundle itself (parameter "
        "`resource`); the answer is a `collection` Bundle of the resulting Observations, a Provenance "
        "per patient and one OperationOutcome listing data issues. Nothing is written anywhere.",
    )
    out |= {
        "kind": "operation",
        "affectsState": False,
        "code": "assess",
        "system": True,
        "type": False,
        "instance": False,
        "parameter": [
            {
                "name": "resource",
                "use": "in",
                "min": 1,
                "max": "1",
                "documentation": "Bundle (any type) with one or more patients' resources as read by "
                "the service (docs/fhir-contract.md section 1).",
                "type": "Bundle",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "documentation": "Bundle of type collection: the Observations of docs/fhir-contract.md "
                "section 2 (profiles of this package), a Provenance per patient and an OperationOutcome.",
                "type": "Bundle",
            },
        ],
    }
    return out


_READ_SEARCHES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Patient", ("_id", "_lastUpdated"), "Patients to assess; gender, birthDate, deceasedDateTime."),
    ("Condition", ("patient",), "mCODE PrimaryCancerCondition: tumour type and histology."),
    ("MedicationAdministration", ("patient",), "ICI start (ATC L01FF), drug, combination, line of therapy."),
    ("MedicationRequest", ("patient",), "ICI orders when no administration is recorded; requester."),
    ("Medication", ("_id",), "Medications referenced by the medication records."),
    ("ImagingStudy", ("patient",), "Assessment timepoints (studies within the timepoint window)."),
    ("BodyStructure", ("_id",), "Lesions (profile RecistLesion), fetched by the ids Observations focus on."),
    (
        "Observation",
        ("patient", "identifier"),
        "Lesion measurements (mCODE TumorSize), NonTargetStatus, "
        "labs, ECOG, BMI, smoking; `identifier` finds results written earlier.",
    ),
    ("Procedure", ("patient",), "Radiotherapy and thermal ablation (local treatment)."),
)
_SEARCH_TYPE = {"_id": "token", "_lastUpdated": "date", "patient": "reference", "identifier": "token"}
_SEARCH_DEFINITION = {
    "_id": "http://hl7.org/fhir/SearchParameter/Resource-id",
    "_lastUpdated": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    "patient": "http://hl7.org/fhir/SearchParameter/clinical-patient",
    "identifier": "http://hl7.org/fhir/SearchParameter/clinical-identifier",
}


def capability_statement() -> JsonDict:
    out = _common(
        "CapabilityStatement",
        "oncoresponse",
        f"{BASE}/CapabilityStatement/oncoresponse",
        "OncoresponseCapabilityStatement",
        "oncoresponse service",
        "The oncoresponse service. As a FHIR server it offers one system-level operation, $assess "
        "(OperationDefinition assess), on `POST /$assess`. As a FHIR client it reads each patient's "
        "resources from the EHR's FHIR R4 server with the searches listed here (SMART Backend Services "
        "authorisation) and writes its results back in one transaction per patient (conditional create "
        "on the assessment identifier), with a Provenance, and raises alerts as Communication and Flag. "
        "It also answers CDS Hooks, which is not FHIR: discovery at `GET /cds-services` and the service "
        "`POST /cds-services/atypical-response` (hook patient-view).",
    )
    read: list[JsonDict] = [
        {
            "type": rtype,
            "documentation": doc,
            "interaction": [{"code": "search-type"}, *([{"code": "read"}] if rtype == "Patient" else [])],
            "searchParam": [
                {"name": p, "definition": _SEARCH_DEFINITION[p], "type": _SEARCH_TYPE[p]} for p in params
            ],
        }
        for rtype, params, doc in _READ_SEARCHES
    ]
    for entry in read:
        if entry["type"] == "Observation":
            entry["supportedProfile"] = [p.url for p in PROFILES if p.base.endswith("/Observation")]
            entry["interaction"] += [{"code": "create"}, {"code": "update"}]
            entry["conditionalCreate"] = True
            entry["conditionalUpdate"] = True
        if entry["type"] == "BodyStructure":
            entry["supportedProfile"] = [sd_url("RecistLesion")]
    written = [
        ("Device", "The service itself (Provenance agent), conditionally created by identifier."),
        ("Provenance", "One per patient and run: targets the written Observations."),
        (
            "Communication",
            "Alert to the responsible oncologist on the first DR or PsPD (contract section 3).",
        ),
        ("Flag", "Chart flag on the patient for the same alert."),
    ]
    for rtype, doc in written:
        created: JsonDict = {"type": rtype, "documentation": doc, "interaction": [{"code": "create"}]}
        if rtype == "Device":
            created["conditionalCreate"] = True
        read.append(created)
    out |= {
        "kind": "capability",
        "software": {"name": "oncoresponse", "version": VERSION},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "POST /$assess with a Bundle (application/fhir+json).",
                "operation": [{"name": "assess", "definition": f"{BASE}/OperationDefinition/assess"}],
            },
            {
                "mode": "client",
                "documentation": "What the service reads from and writes to the EHR's FHIR server.",
                "resource": read,
                "interaction": [{"code": "transaction"}],
            },
        ],
    }
    return out


def subscription_topic() -> JsonDict:
    """R5-shaped SubscriptionTopic; R4 servers use it through the Subscriptions R5 Backport IG.

    An R4 package cannot hold a SubscriptionTopic resource (R4 has none), so it ships in
    `package/other/`, where R4 tools do not load it; R4 Subscriptions name its canonical in
    `Subscription.criteria` (see the example `Subscription-atypical-response-rest-hook`).
    """
    observation_code = cs_url("oncoresponse")
    atypical = cs_url("atypical-response")
    return {
        "resourceType": "SubscriptionTopic",
        "id": "atypical-response-detected",
        "url": f"{BASE}/SubscriptionTopic/atypical-response-detected",
        "version": VERSION,
        "name": "AtypicalResponseDetected",
        "title": "Atypical response detected",
        "status": STATUS,
        "experimental": False,
        "date": RELEASE_DATE,
        "publisher": PUBLISHER,
        "description": "An AtypicalResponse Observation with value DR (dissociated response) or PsPD "
        "(pseudoprogression) was created or changed. R5-shaped; R4 servers offer it through the "
        "Subscriptions R5 Backport IG (backport-subscription: criteria = this canonical).",
        "resourceTrigger": [
            {
                "description": "AtypicalResponse DR or PsPD created or updated",
                "resource": f"{FHIR_SD}/Observation",
                "supportedInteraction": ["create", "update"],
                "fhirPathCriteria": (
                    f"%current.code.coding.where(system='{observation_code}' and code='atypical-response')"
                    f".exists() and %current.value.coding.where(system='{atypical}' and "
                    "(code='DR' or code='PsPD')).exists()"
                ),
            }
        ],
        "canFilterBy": [
            {
                "description": "The patient",
                "resource": f"{FHIR_SD}/Observation",
                "filterParameter": "patient",
            },
            {
                "description": "The finding (DR or PsPD)",
                "resource": f"{FHIR_SD}/Observation",
                "filterParameter": "value-concept",
            },
        ],
        "notificationShape": [
            {
                "resource": f"{FHIR_SD}/Observation",
                "include": ["Observation:subject", "Observation:has-member"],
            }
        ],
    }


# --- examples ---------------------------------------------------------------------------------------
PATIENT = "example-nsclc"
BASELINE = "2024-02-26"
TP1 = "2024-04-29"


def assessment_identifier(kind: str, criterion: str, definition: str, on: str) -> str:
    """Same rule as `service.adapters.fhir.outbound.assessment_identifier` (documented there)."""
    text = "\x1f".join((PATIENT, kind, criterion, definition, on))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _cc(system: str, code: str, display: str | None = None) -> JsonDict:
    coding: JsonDict = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _display(cs_id: str, code: str) -> str:
    return next(c.display for c in CS_BY_ID[cs_id].concepts if c.code == code)


def _or(cs_id: str, code: str) -> JsonDict:
    return _cc(cs_url(cs_id), code, _display(cs_id, code))


def _comp(code: str, value: JsonDict) -> JsonDict:
    return {"code": _or("oncoresponse", code), **value}


def _qty(value: float | int, unit: str) -> JsonDict:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def _absent(reason: str) -> JsonDict:
    return {"dataAbsentReason": _cc(DATA_ABSENT_REASON, reason)}


def _observation(
    eid: str,
    profile: str,
    identity: tuple[str, str, str, str],
    code: JsonDict,
    effective: JsonDict,
    value: JsonDict,
    components: list[JsonDict],
    derived: Sequence[str],
    traces: Sequence[str],
    extra: JsonDict | None = None,
) -> JsonDict:
    out: JsonDict = {
        "resourceType": "Observation",
        "id": eid,
        "meta": {"profile": [sd_url(profile)]},
        "extension": [{"url": sd_url("rule-trace"), "valueString": t} for t in traces],
        "identifier": [{"system": IDENTIFIER_ASSESSMENT, "value": assessment_identifier(*identity)}],
        "status": "final",
        "category": [_cc(OBSERVATION_CATEGORY, "imaging", "Imaging")],
        "code": code,
        "subject": {"reference": f"Patient/{PATIENT}"},
        **effective,
        "valueCodeableConcept": value,
        **(extra or {}),
        "derivedFrom": [{"reference": r} for r in derived],
        "component": components,
    }
    return out


def _lesion_response(lesion: str, status: str, mm: int, base_pct: float, nadir_pct: float) -> JsonDict:
    return _observation(
        f"lesion-response-{lesion.lower()}-tp1",
        "LesionResponse",
        (f"lesion-response/{lesion}", "", "", TP1),
        _or("oncoresponse", "lesion-response"),
        {"effectiveDateTime": TP1},
        _or("lesion-response", status),
        [
            _comp("diameter-mm", _qty(mm, "mm")),
            _comp("change-from-baseline-pct", _qty(base_pct, "%")),
            _comp("change-from-nadir-pct", _qty(nadir_pct, "%")),
            _comp("timepoint-index", {"valueInteger": 1}),
        ],
        [f"Observation/tumor-size-{lesion.lower()}-{TP1}", f"ImagingStudy/ct-{TP1}"],
        [f"lesion/{status}"],
        {"focus": [{"reference": f"BodyStructure/recist-lesion-{lesion.lower()}"}]},
    )


def _sum_components() -> list[JsonDict]:
    return [
        _comp("new-lesion-present", {"valueBoolean": False}),
        _comp("sum-of-diameters-mm", _qty(44, "mm")),
        _comp("baseline-sum-mm", _qty(50, "mm")),
        _comp("nadir-sum-mm", _qty(50, "mm")),
        _comp("change-from-baseline-pct", _qty(-12, "%")),
        _comp("change-from-nadir-pct", _qty(-12, "%")),
        _comp("timepoint-index", {"valueInteger": 1}),
    ]


def examples() -> list[JsonDict]:
    """A worked case: Bernard-Tessier dissociated response at the first evaluation.

    Baseline 2024-02-26 (pembrolizumab from 2024-03-01): target L1 (lung) 30 mm, target L2 (liver)
    20 mm, non-target N1 (mediastinal node) present. First evaluation 2024-04-29: L1 18 mm
    (-40 % vs its baseline: responding), L2 26 mm (+30 % and +6 mm vs its nadir: progressing),
    N1 present. Sum 50 -> 44 mm (-12 %): target SD, non-target NonCR-NonPD, no new lesion, so
    RECIST 1.1 SD (Table 1) and iRECIST iSD; one lesion shrinks > 30 % while another grows > 20 %
    and >= 5 mm: DR (Bernard-Tessier, trigger target-lesion), so the response group is DR.
    """
    lesion_l1 = _lesion_response("L1", "responding", 18, -40, -40)
    lesion_l2 = _lesion_response("L2", "progressing", 26, 30, 30)
    measured = [
        f"ImagingStudy/ct-{TP1}",
        f"Observation/tumor-size-l1-{TP1}",
        f"Observation/tumor-size-l2-{TP1}",
        f"Observation/non-target-status-n1-{TP1}",
    ]
    recist = _observation(
        "recist11-timepoint-response-tp1",
        "Recist11TimepointResponse",
        ("recist11-timepoint-response", "recist1.1", "", TP1),
        _or("oncoresponse", "recist11-timepoint-response"),
        {"effectiveDateTime": TP1},
        _or("recist-response", "SD"),
        [
            _comp("target-response", {"valueCodeableConcept": _or("recist-response", "SD")}),
            _comp("non-target-response", {"valueCodeableConcept": _or("recist-response", "NonCR-NonPD")}),
            *_sum_components(),
        ],
        measured,
        ["recist1.1/target/sd", "recist1.1/overall/table1"],
    )
    irecist = _observation(
        "irecist-timepoint-response-tp1",
        "IrecistTimepointResponse",
        ("irecist-timepoint-response", "irecist", "", TP1),
        _or("oncoresponse", "irecist-timepoint-response"),
        {"effectiveDateTime": TP1},
        _or("irecist-response", "iSD"),
        [
            _comp("target-response", {"valueCodeableConcept": _or("irecist-response", "iSD")}),
            _comp("non-target-response", {"valueCodeableConcept": _or("irecist-response", "iNonCR-NonUPD")}),
            *_sum_components(),
            _comp("new-lesion-target-sum-mm", _absent("not-applicable")),
        ],
        measured,
        ["irecist/target/isd"],
    )
    period = {"effectivePeriod": {"start": BASELINE, "end": TP1}}
    bor = _observation(
        "recist11-best-overall-response",
        "BestOverallResponse",
        ("recist11-best-overall-response", "recist1.1", "no-confirmation", ""),
        _or("oncoresponse", "recist11-best-overall-response"),
        period,
        _or("recist-response", "SD"),
        [_comp("confirmation-required", {"valueBoolean": False})],
        ["Observation/recist11-timepoint-response-tp1"],
        ["bor/sd"],
    )
    ibor = _observation(
        "irecist-best-overall-response",
        "BestOverallResponse",
        ("irecist-best-overall-response", "irecist", "no-confirmation", ""),
        _or("oncoresponse", "irecist-best-overall-response"),
        period,
        _or("irecist-response", "iSD"),
        [_comp("confirmation-required", {"valueBoolean": False})],
        ["Observation/irecist-timepoint-response-tp1"],
        ["ibor/isd"],
    )
    members = [
        {"reference": "Observation/lesion-response-l1-tp1"},
        {"reference": "Observation/lesion-response-l2-tp1"},
    ]
    definition = _or("response-definition", "bernard-tessier")
    definition["text"] = "bernard-tessier 1.0"
    dr = _observation(
        "atypical-response-dr-tp1",
        "AtypicalResponse",
        ("atypical-response/DR", "", "bernard-tessier", TP1),
        _or("oncoresponse", "atypical-response"),
        {"effectiveDateTime": TP1},
        _or("atypical-response", "DR"),
        [
            _comp("definition", {"valueCodeableConcept": definition}),
            _comp("timepoint-index", {"valueInteger": 1}),
            _comp("dr-trigger", {"valueCodeableConcept": _or("dr-trigger", "target-lesion")}),
            _comp("overall-response-at-detection", {"valueCodeableConcept": _or("recist-response", "SD")}),
        ],
        [m["reference"] for m in members] + ["Observation/recist11-timepoint-response-tp1"],
        ["dr/bernard-tessier/target"],
        {"hasMember": members},
    )
    group = _observation(
        "response-group",
        "ResponseGroup",
        ("response-group", "", "", ""),
        _or("oncoresponse", "response-group"),
        {"effectiveDateTime": TP1},
        _or("response-group", "DR"),
        [_comp("atypical", {"valueBoolean": True})],
        ["Observation/recist11-best-overall-response", "Observation/atypical-response-dr-tp1"],
        ["group/DR"],
    )

    def lesion(lid: str, organ: str, organ_display: str, role: str, node: bool) -> JsonDict:
        return {
            "resourceType": "BodyStructure",
            "id": f"recist-lesion-{lid.lower()}",
            "meta": {"profile": [sd_url("RecistLesion")]},
            "extension": [
                {
                    "url": sd_url("lesion-role"),
                    "valueCoding": {
                        "system": cs_url("lesion-role"),
                        "code": role,
                        "display": _display("lesion-role", role),
                    },
                },
                {"url": sd_url("lymph-node"), "valueBoolean": node},
            ],
            "identifier": [
                {"use": "usual", "system": "http://hospital.example.org/fhir/lesion-id", "value": lid}
            ],
            "location": _cc(SNOMED, organ, organ_display),
            "patient": {"reference": f"Patient/{PATIENT}"},
        }

    non_target = {
        "resourceType": "Observation",
        "id": "non-target-status-n1-tp1",
        "meta": {"profile": [sd_url("NonTargetStatus")]},
        "status": "final",
        "category": [_cc(OBSERVATION_CATEGORY, "imaging", "Imaging")],
        "code": _or("oncoresponse", "non-target-status"),
        "subject": {"reference": f"Patient/{PATIENT}"},
        "focus": [{"reference": "BodyStructure/recist-lesion-n1"}],
        "effectiveDateTime": TP1,
        "valueCodeableConcept": _or("non-target-status", "present"),
        "derivedFrom": [{"reference": f"ImagingStudy/ct-{TP1}"}],
    }
    subscription = {
        "resourceType": "Subscription",
        "id": "atypical-response-rest-hook",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription"]},
        "status": "requested",
        "reason": "Tell the oncology team when a dissociated response or pseudoprogression is found",
        "criteria": f"{BASE}/SubscriptionTopic/atypical-response-detected",
        "_criteria": {
            "extension": [
                {
                    "url": f"{BACKPORT}/backport-filter-criteria",
                    "valueString": f"Observation?value-concept={cs_url('atypical-response')}|DR",
                }
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://ehr.example.org/fhir/subscription-hook",
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}]
            },
        },
    }
    return [
        lesion("L1", "39607008", "Lung structure", "target", False),
        lesion("L2", "10200004", "Liver structure", "target", False),
        lesion("N1", "59441001", "Structure of lymph node", "non-target", True),
        non_target,
        lesion_l1,
        lesion_l2,
        recist,
        irecist,
        bor,
        ibor,
        dr,
        group,
        subscription,
    ]


# --- FSH ----------------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fsh_path(element_id: str) -> str:
    parts = element_id.split(".")[1:]
    out = []
    for part in parts:
        name, _, slice_ = part.partition(":")
        out.append(f"{name}[{slice_}]" if slice_ else name)
    return ".".join(out) or "."


def _fsh_code(code: str) -> str:
    return code if re.fullmatch(r"[^\s\"]+", code) else _q(code)


def _fsh_header(kind: str, name: str, rid: str, title: str, description: str) -> list[str]:
    return [f"{kind}: {name}", f"Id: {rid}", f"Title: {_q(title)}", f"Description: {_q(description)}"]


def _fsh_meta() -> list[str]:
    return [
        f"* ^version = {_q(VERSION)}",
        f"* ^status = #{STATUS}",
        "* ^experimental = false",
        f"* ^date = {RELEASE_DATE}",
        f"* ^publisher = {_q(PUBLISHER)}",
    ]


def _fsh_type(e: Element, t: str) -> str:
    if t == "Reference" and e.target_profiles:
        return "Reference(" + " or ".join(_fsh_profile_name(p) for p in e.target_profiles) + ")"
    return t


def _fsh_profile_name(url: str) -> str:
    if url.startswith(FHIR_SD + "/"):
        return url.rsplit("/", 1)[1]
    for p in PROFILES:
        if p.url == url:
            return p.id
    raise KeyError(url)


def _fsh_extension_name(url: str) -> str:
    return next(e.name for e in EXTENSIONS if e.url == url)


def _fsh_assign(path: str, kind: str, value: Any) -> list[str]:
    if kind == "fixedUri":
        return [f"* {path} = {_q(value)} (exactly)"]
    if kind == "patternCodeableConcept":
        coding = value["coding"][0]
        return [f"* {path} = {coding['system']}#{coding['code']}"]
    if kind == "patternQuantity":
        typed = path.removesuffix("value[x]") + "valueQuantity"
        return [f"* {typed} = {value['system']}#{value['code']}"]
    raise ValueError(kind)


def _fsh_rules(elements: Sequence[Element]) -> list[str]:
    lines: list[str] = []
    slices: dict[str, list[Element]] = {}
    for e in elements:
        if e.slice_name and e.id.split(".")[-1].startswith(e.path.split(".")[-1] + ":"):
            slices.setdefault(e.id.rsplit(":", 1)[0], []).append(e)
    for e in elements:
        path = _fsh_path(e.id)
        if e.slicing:
            lines += [
                f"* {path} ^slicing.discriminator.type = #{e.slicing[0]}",
                f"* {path} ^slicing.discriminator.path = {_q(e.slicing[1])}",
                f"* {path} ^slicing.rules = #open",
                f"* {path} ^slicing.ordered = false",
            ]
            members = slices.get(e.id, [])
            if members:
                parts = []
                for s in members:
                    card = f"{s.min}..{s.max}"
                    if s.type_profile:
                        parts.append(f"{_fsh_extension_name(s.type_profile)} named {s.slice_name} {card}")
                    else:
                        parts.append(f"{s.slice_name} {card}")
                lines.append(f"* {path} contains\n    " + " and\n    ".join(parts))
        is_slice_root = e.slice_name is not None
        if path == ".":
            if e.short:
                lines.append(f"* . ^short = {_q(e.short)}")
            for c in e.constraints:
                lines.append(f"* obeys {c.key}")
            continue
        if (e.min is not None or e.max is not None) and not is_slice_root:
            lines.append(
                f"* {path} {(0 if e.max is not None else '') if e.min is None else e.min}..{'' if e.max is None else e.max}"
            )
        if e.types and not is_slice_root:
            lines.append(f"* {path} only " + " or ".join(_fsh_type(e, t) for t in e.types))
        if e.fixed:
            lines += _fsh_assign(path, *e.fixed)
        if e.pattern:
            lines += _fsh_assign(path, *e.pattern)
        if e.binding:
            lines.append(f"* {path} from {e.binding} (required)")
        if e.min_integer is not None:
            typed = path.removesuffix("value[x]") + "valueInteger"
            lines.append(f"* {typed} ^minValueInteger = {e.min_integer}")
        for c in e.constraints:
            lines.append(f"* {path} obeys {c.key}")
        if e.must_support:
            lines.append(f"* {path} MS")
        if e.short:
            lines.append(f"* {path} ^short = {_q(e.short)}")
    return lines


def _fsh_invariants() -> list[str]:
    seen: dict[str, Constraint] = {}
    for p in PROFILES:
        for e in p.elements:
            for c in e.constraints:
                seen[c.key] = c
    lines: list[str] = []
    for c in seen.values():
        lines += [
            f"Invariant: {c.key}",
            f"Description: {_q(c.human)}",
            f"Severity: #{c.severity}",
            f"Expression: {_q(c.expression)}",
            "",
        ]
    return lines


_CODE_KEYS = frozenset(
    {
        "status",
        "code",
        "use",
        "mode",
        "kind",
        "type",
        "fhirVersion",
        "format",
        "gender",
        "payload",
        "valueCode",
        "resource",
        "content",
    }
)
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?)?)?$")


def _fsh_value(path: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if key in _CODE_KEYS or (key == "name" and path.startswith("parameter[")):
        return f"#{text}" if re.fullmatch(r"[^\s\"]+", text) else f"#{_q(text)}"
    if _DATE.match(text) and key not in {"value", "valueString", "text"}:
        return text
    return _q(text)


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            name = key[1:] if key.startswith("_") else key
            yield from _flatten(f"{prefix}.{name}" if prefix else name, item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(f"{prefix}[{i}]", item)
    else:
        yield prefix, prefix.rsplit(".", 1)[-1].split("[")[0], value


def _fsh_instance(resource: JsonDict, instance_of: str, usage: str, title: str) -> list[str]:
    lines = [
        f"Instance: {resource['id']}",
        f"InstanceOf: {instance_of}",
        f"Usage: #{usage}",
        f"Title: {_q(title)}",
    ]
    body = {k: v for k, v in resource.items() if k not in ("resourceType", "id")}
    for path, key, value in _flatten("", body):
        lines.append(f"* {path} = {_fsh_value(path, key, value)}")
    return lines


def fsh_files() -> dict[str, str]:
    header = [
        "// Generated by fhir_profiles/generate.py from the same definitions as package/*.json.",
        "// Do not edit: change generate.py and run `uv run python fhir_profiles/generate.py`.",
        "",
    ]
    cs_lines = list(header)
    for cs in CODE_SYSTEMS:
        cs_lines += _fsh_header("CodeSystem", cs.name, cs.id, cs.title, cs.description)
        cs_lines += [*_fsh_meta(), "* ^caseSensitive = true", "* ^content = #complete"]
        for c in cs.concepts:
            cs_lines.append(f"* #{_fsh_code(c.code)} {_q(c.display)} {_q(c.definition)}")
            for i, synonym in enumerate(c.synonyms):
                cs_lines.append(f'  * ^designation[{i}].use = {SNOMED}#{SNOMED_SYNONYM} "Synonym"')
                cs_lines.append(f"  * ^designation[{i}].value = {_q(synonym)}")
        cs_lines.append("")
    vs_lines = list(header)
    for vs in VALUE_SETS:
        vs_lines += _fsh_header("ValueSet", vs.name, vs.id, vs.title, vs.description) + _fsh_meta()
        for inc in vs.includes:
            if inc.codes:
                vs_lines += [f"* {inc.system}#{code}" for code in inc.codes]
            else:
                vs_lines.append(f"* include codes from system {inc.system}")
        vs_lines.append("")
    for group in DRUG_GROUPS:
        vs = drug_value_set_json(group)
        vs_lines += [*_fsh_instance(vs, "ValueSet", "definition", vs["title"]), ""]
    ext_lines = list(header)
    for ext in EXTENSIONS:
        ext_lines += _fsh_header("Extension", ext.name, ext.id, ext.title, ext.description)
        ext_lines.append("Context: " + ", ".join(ext.contexts))
        ext_lines += _fsh_meta() + _fsh_rules(ext.elements()) + [""]
    profile_lines = list(header) + _fsh_invariants()
    for p in PROFILES:
        profile_lines += [f"Profile: {p.id}", f"Parent: {p.base.rsplit('/', 1)[1]}"]
        profile_lines += _fsh_header("", "", p.id, p.title, p.description)[1:]
        profile_lines += _fsh_meta() + _fsh_rules(p.elements) + [""]
    example_lines = list(header)
    for ex in examples():
        claimed = ex["meta"]["profile"][0]
        instance_of = _fsh_profile_name(claimed) if claimed.startswith(BASE) else ex["resourceType"]
        example_lines += [*_fsh_instance(ex, instance_of, "example", f"{ex['resourceType']} {ex['id']}"), ""]
    cap_lines = list(header)
    for res in (capability_statement(), operation_definition()):
        cap_lines += [*_fsh_instance(res, res["resourceType"], "definition", res["title"]), ""]
    return {
        "input/fsh/codesystems.fsh": "\n".join(cs_lines),
        "input/fsh/valuesets.fsh": "\n".join(vs_lines),
        "input/fsh/extensions.fsh": "\n".join(ext_lines),
        "input/fsh/profiles.fsh": "\n".join(profile_lines),
        "input/fsh/examples.fsh": "\n".join(example_lines),
        "input/fsh/capability.fsh": "\n".join(cap_lines),
    }


def sushi_config() -> str:
    return "\n".join(
        [
            "# Generated by fhir_profiles/generate.py. SUSHI 3 (FSHOnly) configuration.",
            f"id: {PACKAGE_NAME}",
            f"canonical: {BASE}",
            "name: OncoresponseFHIR",
            "title: oncoresponse FHIR profiles",
            f"status: {STATUS}",
            f"version: {VERSION}",
            f"fhirVersion: {FHIR_VERSION}",
            "FSHOnly: true",
            "publisher:",
            f"  name: {PUBLISHER}",
            "dependencies: {}",
            "",
        ]
    )


# --- package --------------------------------------------------------------------------------------------
def _dump(resource: JsonDict) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def conformance_resources() -> list[JsonDict]:
    return [
        *(extension_json(e) for e in EXTENSIONS),
        *(profile_json(p) for p in PROFILES),
        *(code_system_json(cs) for cs in CODE_SYSTEMS),
        *(value_set_json(vs) for vs in VALUE_SETS),
        *(drug_value_set_json(group) for group in DRUG_GROUPS),
        capability_statement(),
        operation_definition(),
    ]


def package_json() -> JsonDict:
    return {
        "name": PACKAGE_NAME,
        "version": VERSION,
        "canonical": BASE,
        "url": BASE,
        "title": "oncoresponse FHIR profiles",
        "description": "Profiles, extensions, code systems and value sets of the oncoresponse service "
        "(RECIST 1.1, iRECIST, dissociated response, pseudoprogression under immune checkpoint inhibitors).",
        "fhirVersions": [FHIR_VERSION],
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
        "type": "fhir.ig",
        "author": PUBLISHER,
        "license": "Apache-2.0",
    }


def index_json(resources: Sequence[JsonDict]) -> JsonDict:
    files = []
    for r in resources:
        entry: JsonDict = {
            "filename": f"{r['resourceType']}-{r['id']}.json",
            "resourceType": r["resourceType"],
            "id": r["id"],
            "url": r["url"],
            "version": r["version"],
        }
        if r["resourceType"] == "StructureDefinition":
            entry |= {"kind": r["kind"], "type": r["type"]}
        files.append(entry)
    return {"index-version": 1, "files": files}


def render() -> dict[str, str]:
    """Every generated file, relative to `fhir_profiles/`, with its exact content."""
    files: dict[str, str] = {}
    resources = conformance_resources()
    for r in resources:
        files[f"package/{r['resourceType']}-{r['id']}.json"] = _dump(r)
    topic = subscription_topic()
    files[f"package/other/SubscriptionTopic-{topic['id']}.json"] = _dump(topic)
    files["package/package.json"] = _dump(package_json())
    files["package/.index.json"] = _dump(index_json(resources))
    for ex in examples():
        files[f"examples/{ex['resourceType']}-{ex['id']}.json"] = _dump(ex)
    files |= fsh_files()
    files["sushi-config.yaml"] = sushi_config()
    return files


def write(out: Path) -> None:
    """Write the tree under `out`, removing stale generated files in the managed folders."""
    files = render()
    for managed in MANAGED_DIRS:
        folder = out / managed
        if folder.is_dir():
            for stale in folder.rglob("*"):
                if stale.is_file() and str(stale.relative_to(out)) not in files:
                    stale.unlink()
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def drift(root: Path) -> list[str]:
    """Files under `root` that differ from (or are missing in, or are extra to) a fresh render."""
    files = render()
    problems = [
        rel
        for rel, text in files.items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text
    ]
    for managed in MANAGED_DIRS:
        folder = root / managed
        if folder.is_dir():
            problems += [
                str(p.relative_to(root))
                for p in folder.rglob("*")
                if p.is_file() and str(p.relative_to(root)) not in files
            ]
    return sorted(problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.out)
        for rel in problems:
            sys.stderr.write(f"drift: {rel}\n")
        return 1 if problems else 0
    write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
