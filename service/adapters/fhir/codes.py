"""Codes, systems and canonical URLs of the FHIR contract (`docs/fhir-contract.md`).

The single source of every code the service reads or writes; the synthetic generator uses the
same constants so that generated data and the reader cannot drift apart. Tags as in the
reference: [V] checked against a source, [R] recalled (verify before relying on it), [P] a
project decision.
"""

from __future__ import annotations

from typing import Final

# --- canonical base and our own systems (contract: "Codes and URLs below are fixed") ---------
OR_BASE: Final = "http://oncoresponse.org/fhir"
CS_ONCORESPONSE: Final = f"{OR_BASE}/CodeSystem/oncoresponse"
CS_LESION_ROLE: Final = f"{OR_BASE}/CodeSystem/lesion-role"
CS_MEASUREMENT_FLAG: Final = f"{OR_BASE}/CodeSystem/measurement-flag"
CS_NON_TARGET_STATUS: Final = f"{OR_BASE}/CodeSystem/non-target-status"
CS_LESION_RESPONSE: Final = f"{OR_BASE}/CodeSystem/lesion-response"
CS_RECIST_RESPONSE: Final = f"{OR_BASE}/CodeSystem/recist-response"
CS_IRECIST_RESPONSE: Final = f"{OR_BASE}/CodeSystem/irecist-response"
CS_ATYPICAL_RESPONSE: Final = f"{OR_BASE}/CodeSystem/atypical-response"
CS_RESPONSE_GROUP: Final = f"{OR_BASE}/CodeSystem/response-group"
CS_DR_TRIGGER: Final = f"{OR_BASE}/CodeSystem/dr-trigger"  # [P] values of the dr-trigger component
CS_RESPONSE_DEFINITION: Final = f"{OR_BASE}/CodeSystem/response-definition"  # [P] DR/PsPD/HPD variants
CS_ANTINEOPLASTIC_DRUG: Final = f"{OR_BASE}/CodeSystem/antineoplastic-drug"  # [P] drugs of the drug ValueSets

IDENTIFIER_ASSESSMENT: Final = f"{OR_BASE}/identifier/assessment"
IDENTIFIER_ALERT: Final = f"{OR_BASE}/identifier/alert"  # [P] Communication/Flag identifiers

EXT_LESION_ROLE: Final = f"{OR_BASE}/StructureDefinition/lesion-role"
EXT_LYMPH_NODE: Final = f"{OR_BASE}/StructureDefinition/lymph-node"
EXT_LINE_OF_THERAPY: Final = f"{OR_BASE}/StructureDefinition/line-of-therapy"
EXT_RULE_TRACE: Final = f"{OR_BASE}/StructureDefinition/rule-trace"  # [P] rule id that produced a value
EXT_DRUG_INGREDIENT: Final = f"{OR_BASE}/StructureDefinition/drug-ingredient"  # [P] drug of a ValueSet code


def profile_url(name: str) -> str:
    return f"{OR_BASE}/StructureDefinition/{name}"


PROFILE_LESION_RESPONSE: Final = profile_url("LesionResponse")
PROFILE_RECIST11_TIMEPOINT: Final = profile_url("Recist11TimepointResponse")
PROFILE_IRECIST_TIMEPOINT: Final = profile_url("IrecistTimepointResponse")
PROFILE_BEST_OVERALL_RESPONSE: Final = profile_url("BestOverallResponse")
PROFILE_ATYPICAL_RESPONSE: Final = profile_url("AtypicalResponse")
PROFILE_RESPONSE_GROUP: Final = profile_url("ResponseGroup")

# Observation.code values in CS_ONCORESPONSE (contract section 2) and what we read (section 1).
CODE_LESION_RESPONSE: Final = "lesion-response"
CODE_RECIST11_TPR: Final = "recist11-timepoint-response"
CODE_IRECIST_TPR: Final = "irecist-timepoint-response"
CODE_RECIST11_BOR: Final = "recist11-best-overall-response"
CODE_IRECIST_BOR: Final = "irecist-best-overall-response"
CODE_ATYPICAL_RESPONSE: Final = "atypical-response"
CODE_RESPONSE_GROUP: Final = "response-group"
CODE_NON_TARGET_STATUS: Final = "non-target-status"
CODE_SHORT_AXIS: Final = "short-axis"
CODE_PDL1_TPS: Final = "pdl1-tps"  # [P] PD-L1 tumour proportion score, %, assay-independent local code

# Component codes (CS_ONCORESPONSE).
COMP_CHANGE_FROM_BASELINE_PCT: Final = "change-from-baseline-pct"
COMP_CHANGE_FROM_NADIR_PCT: Final = "change-from-nadir-pct"
COMP_DIAMETER_MM: Final = "diameter-mm"
COMP_TARGET_RESPONSE: Final = "target-response"
COMP_NON_TARGET_RESPONSE: Final = "non-target-response"
COMP_NEW_LESION_PRESENT: Final = "new-lesion-present"
COMP_SUM_OF_DIAMETERS_MM: Final = "sum-of-diameters-mm"
COMP_BASELINE_SUM_MM: Final = "baseline-sum-mm"
COMP_NADIR_SUM_MM: Final = "nadir-sum-mm"
COMP_TIMEPOINT_INDEX: Final = "timepoint-index"
COMP_NEW_LESION_TARGET_SUM_MM: Final = "new-lesion-target-sum-mm"
COMP_CONFIRMATION_REQUIRED: Final = "confirmation-required"
COMP_DEFINITION: Final = "definition"
COMP_DR_TRIGGER: Final = "dr-trigger"
COMP_OVERALL_RESPONSE_AT_DETECTION: Final = "overall-response-at-detection"
COMP_ATYPICAL: Final = "atypical"
# RECIST 1.1 timepoint after the first PD (docs/rules/recist-1.1.md).
COMP_POST_PROGRESSION: Final = "post-progression"
# Hyperprogression numbers, reason and reference scans (docs/rules/hyperprogression.md).
COMP_TGR_REFERENCE: Final = "tgr-reference"
COMP_TGR_EXPERIMENTAL: Final = "tgr-experimental"
COMP_DELTA_TGR: Final = "delta-tgr"
COMP_TGR_RATIO: Final = "tgr-ratio"
COMP_TGK_REFERENCE: Final = "tgk-reference"
COMP_TGK_EXPERIMENTAL: Final = "tgk-experimental"
COMP_TGK_RATIO: Final = "tgk-ratio"
COMP_DEFINITION_REASON: Final = "definition-reason"
COMP_PRE_BASELINE_SCAN: Final = "pre-baseline-scan"
COMP_BASELINE_SCAN: Final = "baseline-scan"
COMP_FIRST_EVALUATION_SCAN: Final = "first-evaluation-scan"

# --- external terminologies ------------------------------------------------------------------
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"
ATC: Final = "http://www.whocc.no/atc"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
NCIT: Final = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"  # [V] NCI Thesaurus, as HL7 names it
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ICDO3: Final = "http://terminology.hl7.org/CodeSystem/icd-o-3"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
COMMUNICATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/communication-category"

LOINC_TUMOR_SIZE: Final = "21889-1"  # [V] mCODE TumorSize
LOINC_LONGEST_DIAMETER: Final = "33728-7"  # [V] mCODE tumorLongestDimension
LOINC_OTHER_DIMENSIONS: Final = frozenset({"33729-5", "33730-3"})  # [V] mCODE TumorSize other dimensions
# [V] mCODE TumorSize.method: examination of a specimen (pathology), not imaging.
SNOMED_PATHOLOGY_METHODS: Final = frozenset(
    {"787377000"}
)  # gross examination and sampling of tissue specimen
LOINC_NEUTROPHILS: Final = "751-8"
LOINC_LYMPHOCYTES: Final = "731-0"
LOINC_LYMPHOCYTES_PCT: Final = "736-9"
LOINC_LEUKOCYTES: Final = "6690-2"
LOINC_LDH: Final = frozenset({"2532-0", "14804-9"})
LOINC_IL6: Final = "26881-3"
LOINC_ECOG: Final = "89247-1"  # [V] mCODE ECOGPerformanceStatus
LOINC_BMI: Final = "39156-5"
LOINC_SMOKING: Final = "72166-2"

SNOMED_LYMPH_NODE: Final = "59441001"  # [R] Structure of lymph node; implies the lymph-node flag

# mCODE (STU4) canonicals [V HL7/fhir-mCODE-ig].
MCODE: Final = "http://hl7.org/fhir/us/mcode/StructureDefinition"
MCODE_PRIMARY_CANCER_CONDITION: Final = f"{MCODE}/mcode-primary-cancer-condition"
MCODE_TUMOR: Final = f"{MCODE}/mcode-tumor"
MCODE_TUMOR_SIZE: Final = f"{MCODE}/mcode-tumor-size"
MCODE_RADIOTHERAPY_VOLUME: Final = f"{MCODE}/mcode-radiotherapy-volume"  # a treatment volume, not a lesion
MCODE_HISTOLOGY_EXT: Final = f"{MCODE}/mcode-histology-morphology-behavior"
MCODE_RADIOTHERAPY_COURSE_SUMMARY: Final = f"{MCODE}/mcode-radiotherapy-course-summary"
MCODE_ECOG: Final = f"{MCODE}/mcode-ecog-performance-status"

# mCODE CancerDiseaseStatus, written per iRECIST timepoint (docs/rules/disease-status.md) [V mCODE STU4
# npm package hl7.fhir.us.mcode@4.0.0: profile differential, its examples and ValueSets].
MCODE_CANCER_DISEASE_STATUS: Final = f"{MCODE}/mcode-cancer-disease-status"
MCODE_EVIDENCE_TYPE_EXT: Final = f"{MCODE}/mcode-cancer-disease-status-evidence-type"
LOINC_CANCER_DISEASE_STATUS: Final = "97509-4"
LOINC_CANCER_DISEASE_STATUS_DISPLAY: Final = "Cancer Disease Progression"  # as the IG's examples render it
SNOMED_EVIDENCE_IMAGING: Final = "363679005"
SNOMED_EVIDENCE_IMAGING_DISPLAY: Final = "Imaging (procedure)"
# DiseaseTrend value -> (SNOMED code, display) of mCODE ConditionStatusTrendVS.
SNOMED_CONDITION_TREND: Final[dict[str, tuple[str, str]]] = {
    "improved": ("268910001", "Patient's condition improved (finding)"),
    "stable": ("359746009", "Patient's condition stable (finding)"),
    "worsened": ("271299001", "Patient's condition worsened (finding)"),
    "undetermined": ("709137006", "Patient condition undetermined (finding)"),
}
# [P] identifier `kind` of a CancerDiseaseStatus (its code is LOINC, not one of ours).
KIND_CANCER_DISEASE_STATUS: Final = "cancer-disease-status"

# Organs (BodyStructure.location, SNOMED body structures) [R].
ORGANS: Final[dict[str, str]] = {
    "lung": "39607008",
    "liver": "10200004",
    "lymph-node": SNOMED_LYMPH_NODE,
    "bone": "272673000",
    "brain": "12738006",
    "adrenal": "23451007",
    "peritoneum": "15425007",
    "stomach": "69695003",
    "pancreas": "15776009",
    "ovary": "15497006",
    "pleura": "3120008",
    "kidney": "64033007",
    "skin": "39937001",
    "soft-tissue": "87784001",
}
ORGAN_BY_CODE: Final[dict[str, str]] = {code: name for name, code in ORGANS.items()}
# SNOMED CT descriptions of those body structures, as the patient view shows them [R].
ORGAN_DISPLAY: Final[dict[str, str]] = {
    "39607008": "Lung structure",
    "10200004": "Liver structure",
    SNOMED_LYMPH_NODE: "Lymph node structure",
    "272673000": "Bone structure",
    "12738006": "Brain structure",
    "23451007": "Adrenal structure",
    "15425007": "Peritoneum structure",
    "69695003": "Stomach structure",
    "15776009": "Pancreatic structure",
    "15497006": "Ovarian structure",
    "3120008": "Pleural membrane structure",
    "64033007": "Kidney structure",
    "39937001": "Skin structure",
    "87784001": "Soft tissues",
}

# --- ICIs and other antineoplastics (contract section 1) --------------------------------------
# The drug lists are FHIR ValueSets of the package (fhir_profiles/generate.py: ici-pd-1, ici-pd-l1,
# ici-ctla-4, antineoplastic-other), read by `drug_terminology.py`; docs/fhir/drug-terminology.md.
# These prefixes are the ATC classes a code not in those lists still belongs to.
ICI_ATC_PREFIX: Final = "L01FF"  # PD-1/PD-L1 inhibitors (WHO ATC)
ANTINEOPLASTIC_ATC_PREFIX: Final = "L01"  # antineoplastic agents (WHO ATC)
# Other antineoplastics given within the first cycle make it a combination [P].
COMBINATION_WINDOW_DAYS: Final = 21

# --- tumour type mapping (contract section 1; documented and configurable) [P] ----------------
# ICD-10-CM prefixes; lung (C34) is split by ICD-O-3 histology: 8041-8045 small cell -> SCLC.
TUMOUR_TYPE_BY_ICD10_PREFIX: Final[dict[str, str]] = {
    "C16": "gastric",
    "C22.0": "HCC",
    "C56": "ovarian",
    "C25": "pancreatic",
}
LUNG_ICD10_PREFIX: Final = "C34"
SCLC_ICDO3_MORPHOLOGIES: Final = frozenset({"8041/3", "8042/3", "8043/3", "8044/3", "8045/3"})
# SNOMED CT disorders [R].
TUMOUR_TYPE_BY_SNOMED: Final[dict[str, str]] = {
    "254637007": "NSCLC",  # Non-small cell lung cancer
    "254632001": "SCLC",  # Small cell carcinoma of lung
    "363349007": "gastric",  # Malignant tumour of stomach
    "109841003": "HCC",  # Liver cell carcinoma
    "363443007": "ovarian",  # Malignant tumour of ovary
    "363418001": "pancreatic",  # Malignant tumour of pancreas
}

# --- local treatment (contract: Procedure; documented configurable list) [R]/[P] -------------
RADIOTHERAPY_SNOMED: Final = "1217123003"  # Radiotherapy course of treatment (mCODE course summary)
THERMAL_ABLATION_SNOMED: Final = frozenset({"447761002", "440427000"})  # [R] RF / microwave ablation

# --- added with the FHIR adapter (walking skeleton); additive only -----------------------------
IDENTIFIER_DEVICE: Final = f"{OR_BASE}/identifier/device"  # [P] the service's own Device (Provenance agent)
# [P] meta.tag of a Provenance: code = write run + patient, so a repeated write creates no second one
TAG_WRITE: Final = f"{OR_BASE}/tag/write"
CS_DATA_ISSUE: Final = (
    f"{OR_BASE}/CodeSystem/data-issue"  # [P] DataIssue slugs in OperationOutcome.issue.details
)
SERVICE_DEVICE_NAME: Final = "oncoresponse"  # [P] Device.deviceName of the service
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"  # [V] FHIR R4
PROVENANCE_PARTICIPANT_TYPE: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"  # [V]
)
ISSUE_TYPE: Final = "http://hl7.org/fhir/issue-type"  # [V] OperationOutcome.issue.code values

# Smoking status (LOINC 72166-2 answers, US Core / SNOMED CT) -> the ClinicalProfile value [R].
SMOKING_STATUS_BY_SNOMED: Final[dict[str, str]] = {
    "449868002": "current",  # Current every day smoker
    "428041000124106": "current",  # Current some day smoker
    "77176002": "current",  # Smoker, current status unknown
    "428071000124103": "current",  # Current heavy tobacco smoker
    "428061000124105": "current",  # Current light tobacco smoker
    "8517006": "former",  # Ex-smoker
    "266919005": "never",  # Never smoked tobacco
    "266927001": "unknown",  # Tobacco smoking consumption unknown
}


# Contract section 1: every resource type the reader uses (Bulk Data `_type`, SMART read scopes).
READ_TYPES: Final = (
    "Patient",
    "Condition",
    "MedicationAdministration",
    "MedicationRequest",
    "Medication",
    "ImagingStudy",
    "BodyStructure",
    "Observation",
    "Procedure",
)
