"""Codes, systems and canonical URLs of the FHIR contract (`../shared/FHIR-CONTRACT.md`).

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

IDENTIFIER_ASSESSMENT: Final = f"{OR_BASE}/identifier/assessment"
IDENTIFIER_ALERT: Final = f"{OR_BASE}/identifier/alert"  # [P] Communication/Flag identifiers

EXT_LESION_ROLE: Final = f"{OR_BASE}/StructureDefinition/lesion-role"
EXT_LYMPH_NODE: Final = f"{OR_BASE}/StructureDefinition/lymph-node"
EXT_LINE_OF_THERAPY: Final = f"{OR_BASE}/StructureDefinition/line-of-therapy"
EXT_RULE_TRACE: Final = f"{OR_BASE}/StructureDefinition/rule-trace"  # [P] rule id that produced a value


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

# --- external terminologies ------------------------------------------------------------------
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"
ATC: Final = "http://www.whocc.no/atc"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
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

# --- ICIs (contract section 1: ATC starting L01FF = PD-1/PD-L1 inhibitors) --------------------
ICI_ATC_PREFIX: Final = "L01FF"
# ATC code -> (drug, class). [R] WHO ATC L01FF list; the class decides PD-1 vs PD-L1.
ICI_BY_ATC: Final[dict[str, tuple[str, str]]] = {
    "L01FF01": ("nivolumab", "PD-1"),
    "L01FF02": ("pembrolizumab", "PD-1"),
    "L01FF03": ("durvalumab", "PD-L1"),
    "L01FF04": ("avelumab", "PD-L1"),
    "L01FF05": ("atezolizumab", "PD-L1"),
    "L01FF06": ("cemiplimab", "PD-1"),
    "L01FF07": ("dostarlimab", "PD-1"),
    "L01FF09": ("tislelizumab", "PD-1"),
}
# Drugs without a (known) ATC code are recognised by name; class by drug [P, configurable].
ICI_CLASS_BY_NAME: Final[dict[str, str]] = {
    "nivolumab": "PD-1",
    "pembrolizumab": "PD-1",
    "cemiplimab": "PD-1",
    "dostarlimab": "PD-1",
    "tislelizumab": "PD-1",
    "camrelizumab": "PD-1",
    "sintilimab": "PD-1",
    "toripalimab": "PD-1",
    "durvalumab": "PD-L1",
    "avelumab": "PD-L1",
    "atezolizumab": "PD-L1",
}
# Other antineoplastics (ATC L01, not L01FF) given within the first cycle make it a combination [P].
ANTINEOPLASTIC_ATC_PREFIX: Final = "L01"
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
