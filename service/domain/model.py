"""Inputs of the response engine: lesions, scans and the patient timeline.

Pure values only (no FHIR, no I/O). The FHIR adapter maps the contract's resources
(`docs/fhir-contract.md` section 1) onto these types; the engine never sees FHIR.

Measurements are `Decimal` millimetres with the unit in the name. A measurement that is
"present but too small to measure" arrives with `flag=TOO_SMALL` and is valued at 5 mm by
the engine; "disappeared" is valued at 0 mm (RECIST 1.1 guideline, "Lesions that become too
small to measure"; recist.eortc.org Q&A).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum


class LesionRole(StrEnum):
    """Role of a lesion (`OR/CodeSystem/lesion-role`)."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NEW_TARGET = "new-target"
    NEW_NON_TARGET = "new-non-target"


class MeasurementFlag(StrEnum):
    """`OR/CodeSystem/measurement-flag`."""

    TOO_SMALL = "too-small"
    DISAPPEARED = "disappeared"


class NonTargetState(StrEnum):
    """`OR/CodeSystem/non-target-status`."""

    ABSENT = "absent"
    PRESENT = "present"
    INCREASED = "increased"
    UNEQUIVOCAL_PROGRESSION = "unequivocal-progression"


class LabKind(StrEnum):
    NEUTROPHILS = "neutrophils"
    LYMPHOCYTES = "lymphocytes"
    LYMPHOCYTES_PCT = "lymphocytes-pct"
    LEUKOCYTES = "leukocytes"
    LDH = "ldh"
    IL6 = "il6"


class TumourType(StrEnum):
    """Tumour type after the configurable Condition-code mapping (contract section 1)."""

    NSCLC = "NSCLC"
    SCLC = "SCLC"
    GASTRIC = "gastric"
    HCC = "HCC"
    OVARIAN = "ovarian"
    PANCREATIC = "pancreatic"
    OTHER = "other"


class IciClass(StrEnum):
    PD1 = "PD-1"
    PDL1 = "PD-L1"


@dataclass(frozen=True, slots=True)
class Lesion:
    """One tumour lesion followed over time (a BodyStructure in the contract).

    `lesion_id` is the stable identity (BodyStructure.identifier value). `organ` is the
    location code used for the per-organ target limits; all lymph nodes count as one organ.
    `role` is the declared role, `None` when the source did not say.
    """

    lesion_id: str
    organ: str
    is_lymph_node: bool = False
    role: LesionRole | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LesionMeasurement:
    """A diameter measurement of one lesion on one imaging study.

    Several measurements of the same lesion on the same timepoint are fragments of a
    fragmenting lesion: their diameters are added (RECIST 1.1 guideline, "Lesions that split").
    """

    lesion_id: str
    long_axis_mm: Decimal | None = None
    short_axis_mm: Decimal | None = None
    flag: MeasurementFlag | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class NonTargetAssessment:
    """Qualitative status of a non-measured lesion at one imaging study."""

    lesion_id: str
    state: NonTargetState
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """One imaging study and what was read on it."""

    study_date: date
    measurements: tuple[LesionMeasurement, ...] = ()
    non_target: tuple[NonTargetAssessment, ...] = ()
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LabResult:
    kind: LabKind
    taken_on: date
    value: Decimal
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LocalTreatment:
    """Radiotherapy or thermal ablation (contract: Procedure)."""

    performed_on: date
    kind: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class ClinicalProfile:
    """Covariates for the research portal; not used by the response rules."""

    sex: str | None = None
    birth_date: date | None = None
    tumour_type: TumourType | None = None
    ici_drug: str | None = None
    ici_class: IciClass | None = None
    combination: bool | None = None
    line_of_therapy: int | None = None
    ecog: int | None = None
    bmi: Decimal | None = None
    smoking: str | None = None
    pdl1_tps_pct: Decimal | None = None
    prior_radiotherapy: bool | None = None
    institution: str | None = None


@dataclass(frozen=True, slots=True)
class PatientTimeline:
    """Everything the engine needs about one patient.

    `scans` may come in any order and include pre-baseline scans; the engine groups them
    into timepoints and picks the baseline itself.
    """

    patient_id: str
    treatment_start: date
    lesions: tuple[Lesion, ...]
    scans: tuple[Scan, ...]
    death_date: date | None = None
    last_contact: date | None = None
    labs: tuple[LabResult, ...] = ()
    local_treatments: tuple[LocalTreatment, ...] = ()
    profile: ClinicalProfile = field(default_factory=ClinicalProfile)
    source_refs: tuple[str, ...] = ()
    # Dates of the ICI administrations (contract: MedicationAdministration `completed`/`in-progress`
    # of an ICI, recognised as for the start), sorted, unique. Research field: treatment beyond
    # progression (Guan 2024, Fig. 2g); not used by the response rules. Empty when not read.
    ici_administration_dates: tuple[date, ...] = ()
