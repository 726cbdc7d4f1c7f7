"""Plain-dict FHIR R4 resources in the shape of the contract (`docs/fhir-contract.md` section 1).

No fhir.resources on this path (speed); the tests validate every resource with the R4B models.
Codes and canonical URLs come from `service.adapters.fhir.codes`. The few codes the contract does
not fix are defined here and listed in the report to the reader engineer:

- DICOM modality system (ImagingStudy.modality), SNOMED CT method "CT" for TumorSize,
- smoking-status answers (SNOMED), CareTeam roles (SNOMED oncologist / general practitioner),
- identifier systems under `OR_BASE/identifier/` (synthetic patient, lesion),
- Encounter class (v3 ActCode AMB) for the last-contact encounter,
- the R4 core extension `procedure-targetBodyStructure` pointing a local treatment at its lesion.

Date-times are local to the seed study's site (+08:00), between 08:00 and 17:59, so the calendar
date is the same in UTC; `birthDate` and `deceasedDateTime` are plain dates.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from service.adapters.fhir import codes

Resource = dict[str, Any]

DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"  # [V] FHIR R4 ImagingStudy.modality binding
DICOM_UID_SYSTEM = "urn:dicom:uid"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
EXT_TARGET_BODY_STRUCTURE = "http://hl7.org/fhir/StructureDefinition/procedure-targetBodyStructure"
IDENTIFIER_PATIENT = f"{codes.OR_BASE}/identifier/synthetic-patient"
IDENTIFIER_LESION = f"{codes.OR_BASE}/identifier/lesion"

SNOMED_CT_METHOD = ("77477000", "Computerized axial tomography")  # [R] mCODE TumorSizeMethodVS
SNOMED_ONCOLOGIST = ("309295000", "Oncologist")  # [R] occupation
SNOMED_GP = ("62247001", "General practitioner")  # [R] occupation
SMOKING_SNOMED = {  # [R] LOINC 72166-2 answers (US Core smoking status)
    "never": ("266919005", "Never smoked tobacco"),
    "former": ("8517006", "Ex-smoker"),
    "current": ("449868002", "Smokes tobacco daily"),
}
ORGAN_DISPLAY = {
    "lung": "Lung structure",
    "liver": "Liver structure",
    "lymph-node": "Lymph node structure",
    "bone": "Bone structure",
    "brain": "Brain structure",
    "adrenal": "Adrenal gland structure",
    "peritoneum": "Peritoneum structure",
    "stomach": "Stomach structure",
    "pancreas": "Pancreatic structure",
    "ovary": "Ovarian structure",
    "pleura": "Pleural structure",
    "kidney": "Kidney structure",
    "skin": "Skin structure",
    "soft-tissue": "Soft tissue structure",
}
LAB_UNITS = {
    codes.LOINC_NEUTROPHILS: ("Neutrophils [#/volume] in Blood", "10*3/uL"),
    codes.LOINC_LYMPHOCYTES: ("Lymphocytes [#/volume] in Blood", "10*3/uL"),
    codes.LOINC_LYMPHOCYTES_PCT: ("Lymphocytes/100 leukocytes in Blood", "%"),
    codes.LOINC_LEUKOCYTES: ("Leukocytes [#/volume] in Blood", "10*3/uL"),
    codes.LOINC_IL6: ("Interleukin 6 [Mass/volume] in Serum or Plasma", "pg/mL"),
}
LDH_DISPLAY = "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma"


def ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def date_time(day: date, minute_of_day: int) -> str:
    """Local date-time at the site (+08:00); `minute_of_day` is clamped to 08:00-17:59."""
    minute = 480 + minute_of_day % 600
    return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00+08:00"


def number(value: Decimal) -> int | float:
    """JSON number for a decimal (int when whole); float repr of a short decimal is exact text."""
    return int(value) if value == value.to_integral_value() else float(value)


def quantity(value: Decimal, unit: str) -> dict[str, Any]:
    return {"value": number(value), "unit": unit, "system": codes.UCUM, "code": unit}


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, str] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def category(code: str) -> list[dict[str, Any]]:
    return [concept(codes.OBSERVATION_CATEGORY, code)]


def line_of_therapy(line: int) -> dict[str, Any]:
    return {"url": codes.EXT_LINE_OF_THERAPY, "valuePositiveInt": line}


# --- people ------------------------------------------------------------------------------------
def patient(
    pid: str, *, gender: str, birth_date: date, deceased: date | None, gp_id: str, family: str, given: str
) -> Resource:
    res: Resource = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": IDENTIFIER_PATIENT, "value": pid}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date.isoformat(),
        "generalPractitioner": [ref("Practitioner", gp_id)],
    }
    if deceased is not None:
        res["deceasedDateTime"] = deceased.isoformat()
    return res


def practitioner(pract_id: str, *, family: str, given: str) -> Resource:
    return {
        "resourceType": "Practitioner",
        "id": pract_id,
        "active": True,
        "name": [{"family": family, "given": [given], "prefix": ["Dr"]}],
    }


def care_team(team_id: str, pid: str, *, oncologist_id: str, gp_id: str, start: date) -> Resource:
    return {
        "resourceType": "CareTeam",
        "id": team_id,
        "status": "active",
        "name": "Oncology care team",
        "subject": ref("Patient", pid),
        "period": {"start": start.isoformat()},
        "participant": [
            {
                "role": [concept(codes.SNOMED, *SNOMED_ONCOLOGIST, text="Responsible oncologist")],
                "member": ref("Practitioner", oncologist_id),
            },
            {"role": [concept(codes.SNOMED, *SNOMED_GP)], "member": ref("Practitioner", gp_id)},
        ],
    }


# --- disease -----------------------------------------------------------------------------------
def primary_condition(
    cond_id: str, pid: str, *, icd10: tuple[str, str], morphology: tuple[str, str] | None, onset: date
) -> Resource:
    res: Resource = {
        "resourceType": "Condition",
        "id": cond_id,
        "meta": {"profile": [codes.MCODE_PRIMARY_CANCER_CONDITION]},
        "clinicalStatus": concept(CONDITION_CLINICAL, "active"),
        "verificationStatus": concept(CONDITION_VERIFICATION, "confirmed"),
        "category": [concept(CONDITION_CATEGORY, "problem-list-item")],
        "code": concept(codes.ICD10CM, icd10[0], icd10[1]),
        "subject": ref("Patient", pid),
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
    }
    if morphology is not None:
        res["extension"] = [
            {"url": codes.MCODE_HISTOLOGY_EXT, "valueCodeableConcept": concept(codes.ICDO3, *morphology)}
        ]
    return res


# --- medication ----------------------------------------------------------------------------------
def medication_concept(name: str, atc: str | None) -> dict[str, Any]:
    if atc is None:  # recognised by name (drug ValueSets, drug_terminology.py); no ATC code listed
        return {"text": name}
    return concept(codes.ATC, atc, name, text=name)


def medication_request(
    req_id: str,
    pid: str,
    *,
    drug: str,
    atc: str | None,
    line: int,
    authored: str,
    active: bool,
    requester_id: str,
    care_team_id: str,
    condition_id: str,
) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": req_id,
        "extension": [line_of_therapy(line)],
        "status": "active" if active else "completed",
        "intent": "order",
        "medicationCodeableConcept": medication_concept(drug, atc),
        "subject": ref("Patient", pid),
        "authoredOn": authored,
        "requester": ref("Practitioner", requester_id),
        "performer": ref("CareTeam", care_team_id),
        "reasonReference": [ref("Condition", condition_id)],
        "dosageInstruction": [{"text": "every 21 days"}],
    }


def medication_administration(
    adm_id: str,
    pid: str,
    *,
    drug: str,
    atc: str | None,
    dose_mg: int,
    when: str,
    request_id: str,
    condition_id: str,
    line: int | None,
) -> Resource:
    res: Resource = {
        "resourceType": "MedicationAdministration",
        "id": adm_id,
        "status": "completed",
        "medicationCodeableConcept": medication_concept(drug, atc),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "request": ref("MedicationRequest", request_id),
        "reasonReference": [ref("Condition", condition_id)],
        "dosage": {"dose": quantity(Decimal(dose_mg), "mg")},
    }
    if line is not None:
        res["extension"] = [line_of_therapy(line)]
    return res


# --- imaging and lesions -------------------------------------------------------------------------
def imaging_study(study_id: str, pid: str, *, started: str, uid: str, description: str) -> Resource:
    return {
        "resourceType": "ImagingStudy",
        "id": study_id,
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}],
        "status": "available",
        "modality": [{"system": DICOM_DCM, "code": "CT", "display": "Computed Tomography"}],
        "subject": ref("Patient", pid),
        "started": started,
        "numberOfSeries": 1,
        "description": description,
    }


def body_structure(
    bs_id: str, pid: str, *, lesion_identifier: str, organ: str, role: str, lymph_node: bool, description: str
) -> Resource:
    return {
        "resourceType": "BodyStructure",
        "id": bs_id,
        "meta": {"profile": [codes.MCODE_TUMOR]},
        "extension": [
            {"url": codes.EXT_LESION_ROLE, "valueCoding": {"system": codes.CS_LESION_ROLE, "code": role}},
            {"url": codes.EXT_LYMPH_NODE, "valueBoolean": lymph_node},
        ],
        "identifier": [
            {
                "use": "usual",
                "type": concept(RESOURCE_TYPES, "BodyStructure"),
                "system": IDENTIFIER_LESION,
                "value": lesion_identifier,
            }
        ],
        "active": True,
        "location": concept(codes.SNOMED, codes.ORGANS[organ], ORGAN_DISPLAY[organ]),
        "description": description,
        "patient": ref("Patient", pid),
    }


def _length(tenths: int, in_cm: bool) -> dict[str, Any]:
    if in_cm:
        return quantity(Decimal(tenths) / 100, "cm")
    return quantity(Decimal(tenths) / 10, "mm")


def tumour_size(
    obs_id: str,
    pid: str,
    *,
    bs_id: str,
    study_id: str,
    when: str,
    long_tenths: int,
    short_tenths: int | None,
    flag: str | None,
    in_cm: bool,
) -> Resource:
    components: list[dict[str, Any]] = [
        {
            "code": concept(codes.LOINC, codes.LOINC_LONGEST_DIAMETER, "Tumor longest dimension"),
            "valueQuantity": _length(long_tenths, in_cm),
        }
    ]
    if short_tenths is not None:
        components.append(
            {
                "code": concept(codes.CS_ONCORESPONSE, codes.CODE_SHORT_AXIS, "Short axis"),
                "valueQuantity": _length(short_tenths, in_cm),
            }
        )
    res: Resource = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": [codes.MCODE_TUMOR_SIZE]},
        "status": "final",
        "category": category("imaging"),
        "code": concept(codes.LOINC, codes.LOINC_TUMOR_SIZE, "Size Tumor"),
        "subject": ref("Patient", pid),
        "focus": [ref("BodyStructure", bs_id)],
        "effectiveDateTime": when,
        "method": concept(codes.SNOMED, *SNOMED_CT_METHOD),
        "derivedFrom": [ref("ImagingStudy", study_id)],
        "component": components,
    }
    if flag is not None:
        res["interpretation"] = [concept(codes.CS_MEASUREMENT_FLAG, flag)]
    return res


def non_target_status(
    obs_id: str, pid: str, *, bs_id: str, study_id: str, when: str, status: str
) -> Resource:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": category("imaging"),
        "code": concept(codes.CS_ONCORESPONSE, codes.CODE_NON_TARGET_STATUS, "Non-target lesion status"),
        "subject": ref("Patient", pid),
        "focus": [ref("BodyStructure", bs_id)],
        "effectiveDateTime": when,
        "derivedFrom": [ref("ImagingStudy", study_id)],
        "valueCodeableConcept": concept(codes.CS_NON_TARGET_STATUS, status),
    }


# --- labs and status -----------------------------------------------------------------------------
def lab(obs_id: str, pid: str, *, loinc: str, value: Decimal, when: str) -> Resource:
    display, unit = LAB_UNITS.get(loinc, (LDH_DISPLAY, "U/L"))
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": category("laboratory"),
        "code": concept(codes.LOINC, loinc, display),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "valueQuantity": quantity(value, unit),
    }


def ecog(obs_id: str, pid: str, *, value: int, when: str, care_team_id: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": [codes.MCODE_ECOG]},
        "status": "final",
        "category": category("survey"),
        "code": concept(codes.LOINC, codes.LOINC_ECOG, "ECOG Performance Status score"),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "performer": [ref("CareTeam", care_team_id)],
        "valueInteger": value,
    }


def bmi(obs_id: str, pid: str, *, value: Decimal, when: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": category("vital-signs"),
        "code": concept(codes.LOINC, codes.LOINC_BMI, "Body mass index (BMI) [Ratio]"),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "valueQuantity": quantity(value, "kg/m2"),
    }


def smoking(obs_id: str, pid: str, *, status: str, when: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": category("social-history"),
        "code": concept(codes.LOINC, codes.LOINC_SMOKING, "Tobacco smoking status"),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "valueCodeableConcept": concept(codes.SNOMED, *SMOKING_SNOMED[status]),
    }


def pdl1(obs_id: str, pid: str, *, tps_pct: int, when: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": category("laboratory"),
        "code": concept(codes.CS_ONCORESPONSE, codes.CODE_PDL1_TPS, "PD-L1 tumour proportion score"),
        "subject": ref("Patient", pid),
        "effectiveDateTime": when,
        "valueQuantity": quantity(Decimal(tps_pct), "%"),
    }


# --- procedures and encounters --------------------------------------------------------------------
def radiotherapy(
    proc_id: str, pid: str, *, start: date, end: date, organ: str, condition_id: str, lesion_bs_id: str | None
) -> Resource:
    res: Resource = {
        "resourceType": "Procedure",
        "id": proc_id,
        "meta": {"profile": [codes.MCODE_RADIOTHERAPY_COURSE_SUMMARY]},
        "status": "completed",
        "code": concept(codes.SNOMED, codes.RADIOTHERAPY_SNOMED, "Radiotherapy course of treatment"),
        "subject": ref("Patient", pid),
        "performedPeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "bodySite": [concept(codes.SNOMED, codes.ORGANS[organ], ORGAN_DISPLAY[organ])],
        "reasonReference": [ref("Condition", condition_id)],
    }
    if lesion_bs_id is not None:
        res["extension"] = [
            {"url": EXT_TARGET_BODY_STRUCTURE, "valueReference": ref("BodyStructure", lesion_bs_id)}
        ]
    return res


def thermal_ablation(
    proc_id: str, pid: str, *, when: str, organ: str, condition_id: str, lesion_bs_id: str
) -> Resource:
    return {
        "resourceType": "Procedure",
        "id": proc_id,
        "extension": [
            {"url": EXT_TARGET_BODY_STRUCTURE, "valueReference": ref("BodyStructure", lesion_bs_id)}
        ],
        "status": "completed",
        "code": concept(codes.SNOMED, min(codes.THERMAL_ABLATION_SNOMED), "Thermal ablation of lesion"),
        "subject": ref("Patient", pid),
        "performedDateTime": when,
        "bodySite": [concept(codes.SNOMED, codes.ORGANS[organ], ORGAN_DISPLAY[organ])],
        "reasonReference": [ref("Condition", condition_id)],
    }


def last_contact_encounter(enc_id: str, pid: str, *, day: date, condition_id: str) -> Resource:
    when = day.isoformat()
    return {
        "resourceType": "Encounter",
        "id": enc_id,
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "subject": ref("Patient", pid),
        "period": {"start": when, "end": when},
        "reasonReference": [ref("Condition", condition_id)],
    }


def day_after(start: date, days: int) -> date:
    return start + timedelta(days=days)
