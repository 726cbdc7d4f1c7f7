"""FHIR resources of one patient -> `PatientInput` (docs/fhir-contract.md section 1).

Works on plain JSON dicts as parsed by orjson, and on the msgspec Structs of `typed.py` (the usual
shapes, from the typed search pages of a REST sync), never on fhir.resources models: this is the
hot path of every sync and the models are about 65 times slower. Every field is read defensively
(`isinstance` checks); a resource that cannot be parsed or used becomes a `DataIssue` naming
it (`Type/id`) and is skipped, never an exception and never a failed patient, except that a
patient without an ICI start has no timeline (issue `no-ici-start`).

Speed (`benchmarks/ingest.py`): the usual shapes take fast paths that read a resource
in one function, without the general path's layers of checked accessors: an Observation with one
coding and an `effectiveDateTime` (tumour size, non-target status, laboratory value, covariate:
`_fast_observation`), a MedicationAdministration (`_fast_administration`) and an ImagingStudy
(`_fast_study`); a patient's repeated drug concepts are classified once (`_classify_cached`), and
frozen results are built by `domain.frozen.fast_constructor`. A fast path changes nothing unless it
can finish, and otherwise hands the resource to the general path, which reports what is wrong;
tests/unit/fhir/test_inbound_fast_paths.py checks that both give the same result (to the digit of
every Decimal) and the same issues in the same order on odd inputs, every single edit of its pools
and random combinations. Typed resources take typed fast paths (`_typed_observation` and the
others: the same reading, by attribute, the Structs' types standing for the type checks); whatever
they decline is mapped as the dict it was decoded from, so the dict paths see exactly what they
saw before (tests/unit/fhir/test_inbound_typed.py). The mapper holds no reference cycle, so a
patient's parsed resources are freed as soon as the mapping returns (no wait for the cyclic
collector).

Decisions where the contract is silent (all [P]):

- Dates: `date`, `datetime` and FHIR strings (`2024`, `2024-03`, `2024-03-15`,
  `2024-03-15T10:00:00+02:00`). A partial date is the first day of its period. A date-time
  gives the calendar date as written at the source; it is never converted to UTC (a scan at
  00:30+02:00 happened on that local day).
- Statuses: Observations `final`/`amended`/`corrected` (docs/architecture.md);
  MedicationAdministration `completed`/`in-progress`/`stopped`; MedicationRequest
  `active`/`completed`/`stopped`; Procedure `completed`/`in-progress`/`stopped`; ImagingStudy
  anything but `cancelled`/`entered-in-error`. Other statuses are skipped with an
  `information` issue.
- ICI start: earliest ICI MedicationAdministration (`effective[x]`); only when there is none,
  earliest ICI MedicationRequest (`dosageInstruction.timing.repeat.boundsPeriod.start`, else
  `authoredOn`). An ICI is a PD-1/PD-L1 inhibitor of the package's drug ValueSets, by ATC,
  RxNorm, SNOMED CT or NCIt code or by generic/brand name (`drug_terminology.py`; an unlisted
  ATC L01FF code too, reported). Combination = another antineoplastic of those ValueSets (a
  CTLA-4 inhibitor, chemotherapy, an unlisted ATC L01 code: reported) or a different ICI,
  administered or requested within `combination_window_days` of the start,
  either side. Line of therapy from the line-of-therapy extension of the earliest ICI record
  that carries one.
- `ici_administration_dates`: the dates of every ICI MedicationAdministration (recognised as for
  the start, any ICI drug) with status `completed`/`in-progress` (a `stopped` one may not have
  been given), sorted and unique; MedicationRequests are plans, not doses, and never count.
- Measurements attach to the ImagingStudy in `derivedFrom`; without one (or when it is not
  among the patient's studies) to the study of the same date; without such a study to a scan
  of that date with no study reference (warning `measurement-without-study`).
- Lymph node = lymph-node extension true or `location` SNOMED 59441001.
- ClinicalProfile covariates (ECOG, BMI, smoking, PD-L1 TPS) take the latest value on or before
  the ICI start; later values are ignored (they are not pre-treatment covariates).
- `prior_radiotherapy` is True when a radiotherapy Procedure precedes the ICI start, else
  None: the absence of a Procedure is not evidence that none was given.
- A second resource with the same `Type/id`: the same content (`meta` aside) is read once;
  different content is `duplicate-resource-conflict` and no timeline (docs/fhir/data-integrity.md).
  A declared target of 0 mm before the ICI start is `impossible-baseline-value` (same doc).
- mCODE TumorSize from pathology (specimen, gross examination, laboratory without imaging) is
  excluded; its other dimensions are reported; RadiotherapyVolume BodyStructures are not lesions
  (docs/fhir/mcode.md). Posted Bundles reach this module with their references resolved
  (`references.py`, docs/fhir/references.md).
- `last_contact` = the latest clinical date on any resource of the patient (effective,
  started, performed, authored, recorded, onset/abatement, period, occurrence, death), except
  entered-in-error resources and the service's own output Observations. `meta.lastUpdated`
  and `issued` are system times, not patient contact, and are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, Final

from service.adapters.fhir import codes, typed
from service.adapters.fhir.drug_terminology import DrugTerminology, MatchBasis, drug_terminology
from service.adapters.fhir.errors import MalformedResource
from service.adapters.fhir.references import resolve_bundle
from service.application.ports import PatientInput, PatientRef
from service.domain.frozen import fast_constructor
from service.domain.model import (
    ClinicalProfile,
    IciClass,
    LabKind,
    LabResult,
    Lesion,
    LesionMeasurement,
    LesionRole,
    LocalTreatment,
    MeasurementFlag,
    NonTargetAssessment,
    NonTargetState,
    PatientTimeline,
    Scan,
    TumourType,
)
from service.domain.results import DataIssue

__all__ = [
    "DEFAULT_MAPPING",
    "BundlePatients",
    "InboundMapping",
    "bundle_patients",
    "group_bundle_by_patient",
    "parse_fhir_date",
    "patient_input",
    "patient_of",
    "reference_key",
]

JsonDict = dict[str, Any]

OBSERVATION_STATUSES: Final = frozenset({"final", "amended", "corrected"})
ADMINISTRATION_STATUSES: Final = frozenset({"completed", "in-progress", "stopped"})
DOSE_STATUSES: Final = frozenset({"completed", "in-progress"})  # `ici_administration_dates`
REQUEST_STATUSES: Final = frozenset({"active", "completed", "stopped"})
PROCEDURE_STATUSES: Final = frozenset({"completed", "in-progress", "stopped"})
STUDY_STATUSES_SKIPPED: Final = frozenset({"cancelled", "entered-in-error"})

LOCAL_TREATMENT_RADIOTHERAPY: Final = "radiotherapy"
LOCAL_TREATMENT_ABLATION: Final = "thermal-ablation"


def _mapping(d: Mapping[str, str], as_type: Any) -> Mapping[str, Any]:
    return MappingProxyType({k: as_type(v) for k, v in d.items()})


@dataclass(frozen=True, slots=True)
class InboundMapping:
    """The configurable code lists of contract section 1 (defaults from `codes.py`)."""

    tumour_type_by_icd10_prefix: Mapping[str, TumourType] = field(
        default_factory=lambda: _mapping(codes.TUMOUR_TYPE_BY_ICD10_PREFIX, TumourType)
    )
    lung_icd10_prefix: str = codes.LUNG_ICD10_PREFIX
    sclc_morphologies: frozenset[str] = codes.SCLC_ICDO3_MORPHOLOGIES
    tumour_type_by_snomed: Mapping[str, TumourType] = field(
        default_factory=lambda: _mapping(codes.TUMOUR_TYPE_BY_SNOMED, TumourType)
    )
    drugs: DrugTerminology = field(default_factory=drug_terminology)  # the package's drug ValueSets
    combination_window_days: int = codes.COMBINATION_WINDOW_DAYS
    radiotherapy_codes: frozenset[str] = frozenset({codes.RADIOTHERAPY_SNOMED})
    ablation_codes: frozenset[str] = codes.THERMAL_ABLATION_SNOMED


DEFAULT_MAPPING: Final = InboundMapping()

# --- units -------------------------------------------------------------------------------------
_MM_PER_UNIT: Final[dict[str, Decimal]] = {"mm": Decimal(1), "cm": Decimal(10)}
_CELL_COUNT_TO_10E9_PER_L: Final[dict[str, Decimal]] = {
    "10*9/L": Decimal(1),
    "10^9/L": Decimal(1),
    "10*3/uL": Decimal(1),
    "10^3/uL": Decimal(1),
    "10*3/mm3": Decimal(1),
    "K/uL": Decimal(1),
    "/uL": Decimal("0.001"),
    "/mm3": Decimal("0.001"),
    "{cells}/uL": Decimal("0.001"),
    "10*6/L": Decimal("0.001"),
}
_LAB_UNITS: Final[dict[LabKind, dict[str, Decimal]]] = {
    LabKind.NEUTROPHILS: _CELL_COUNT_TO_10E9_PER_L,
    LabKind.LYMPHOCYTES: _CELL_COUNT_TO_10E9_PER_L,
    LabKind.LEUKOCYTES: _CELL_COUNT_TO_10E9_PER_L,
    LabKind.LYMPHOCYTES_PCT: {"%": Decimal(1)},
    LabKind.LDH: {"U/L": Decimal(1), "[IU]/L": Decimal(1), "IU/L": Decimal(1), "ukat/L": Decimal(60)},
    LabKind.IL6: {"pg/mL": Decimal(1), "ng/L": Decimal(1)},
}
_LAB_BY_LOINC: Final[dict[str, LabKind]] = {
    codes.LOINC_NEUTROPHILS: LabKind.NEUTROPHILS,
    codes.LOINC_LYMPHOCYTES: LabKind.LYMPHOCYTES,
    codes.LOINC_LYMPHOCYTES_PCT: LabKind.LYMPHOCYTES_PCT,
    codes.LOINC_LEUKOCYTES: LabKind.LEUKOCYTES,
    codes.LOINC_IL6: LabKind.IL6,
    **dict.fromkeys(codes.LOINC_LDH, LabKind.LDH),
}

_COVARIATE_BY_LOINC: Final = {
    codes.LOINC_ECOG: "ecog",
    codes.LOINC_BMI: "bmi",
    codes.LOINC_SMOKING: "smoking",
}

# Observation codes this service writes itself: never inputs, never a patient contact.
_OWN_OUTPUT_CODES: Final = frozenset(
    {
        codes.CODE_LESION_RESPONSE,
        codes.CODE_RECIST11_TPR,
        codes.CODE_IRECIST_TPR,
        codes.CODE_RECIST11_BOR,
        codes.CODE_IRECIST_BOR,
        codes.CODE_ATYPICAL_RESPONSE,
        codes.CODE_RESPONSE_GROUP,
    }
)

# --- dates -------------------------------------------------------------------------------------
_DATE_RE: Final = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _status(res: JsonDict) -> str | None:
    """`status` when it is a string; anything else (an object, a list) is no usable status."""
    status = res.get("status")
    return status if isinstance(status, str) else None


def parse_fhir_date(value: object) -> date:
    """The calendar date of a FHIR date/dateTime/instant in any shape fhir.resources or orjson yields.

    Raises `ValueError` for anything else. Partial dates give the first day of their period; a
    date-time keeps its local date as written (no conversion to UTC).
    """
    if type(value) is str:
        return _date_text(value)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("not a date")
    return _date_text(str(value))


@lru_cache(maxsize=4096)
def _date_text(value: str) -> date:
    r"""`parse_fhir_date` of a string (cached: a patient's resources repeat a few dates many times).

    Fast path for the common `YYYY-MM-DD` shape; `isdecimal` is exactly the regex's `\d`
    (Unicode category Nd), so both paths accept and reject the same strings.
    """
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        y, m, d = value[:4], value[5:7], value[8:]
        if y.isdecimal() and m.isdecimal() and d.isdecimal():
            return date(int(y), int(m), int(d))
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise ValueError("not a FHIR date")
    return date(int(match["y"]), int(match["m"] or 1), int(match["d"] or 1))


# --- references --------------------------------------------------------------------------------
def reference_key(reference: str) -> str | None:
    """`Type/id` of a relative, absolute or versioned reference; `urn:` and `#` references as given."""
    if reference.startswith(("urn:", "#")):
        return reference
    parts = [p for p in reference.split("?", 1)[0].split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2:
        return None
    return f"{parts[-2]}/{parts[-1]}"


# Hot path: a patient's Observations name the same few lesions and studies over and over.
_reference_key: Final[Callable[[str], str | None]] = lru_cache(maxsize=8192)(reference_key)


def _keys_of(resource_type: str, resource_id: str) -> tuple[str, ...]:
    return (f"{resource_type}/{resource_id}", f"urn:uuid:{resource_id}")


def _patient_id_of_reference(reference: str) -> str | None:
    if reference.startswith("urn:uuid:"):
        return reference.removeprefix("urn:uuid:") or None
    key = _reference_key(reference)
    if key is None or not key.startswith("Patient/"):
        return None
    return key.removeprefix("Patient/")


# --- defensive accessors (raise MalformedResource on a present but wrongly typed element) -------
# Each accessor first tries the exact JSON type orjson yields (`type(x) is dict`, one C-level
# comparison) and falls back to the general check, so they accept and reject the same values
# and raise the same messages as the plain `isinstance` versions, only faster.
def _opt(res: JsonDict, key: str, kind: type, ref: str) -> Any:
    value = res.get(key)
    if value is None:
        return None
    if kind is int and isinstance(value, bool):
        raise MalformedResource(ref, f"{key} is not an integer")
    if not isinstance(value, kind):
        raise MalformedResource(ref, f"{key} has the wrong type")
    return value


def _opt_str(res: JsonDict, key: str, ref: str) -> str | None:
    value = res.get(key)
    if value is None or type(value) is str:
        return value
    checked: str | None = _opt(res, key, str, ref)
    return checked


def _opt_dict(res: JsonDict, key: str, ref: str) -> JsonDict | None:
    value = res.get(key)
    if value is None or type(value) is dict:
        return value
    checked: JsonDict | None = _opt(res, key, dict, ref)
    return checked


_NONE: Final[list[JsonDict]] = []  # returned for an absent list; callers only read it


def _dicts(res: JsonDict, key: str, ref: str) -> list[JsonDict]:
    value = res.get(key)
    if value is None:
        return _NONE
    if type(value) is not list:
        value = _opt(res, key, list, ref)
    for item in value:
        if type(item) is not dict and not isinstance(item, dict):
            raise MalformedResource(ref, f"{key} has an element of the wrong type")
    items: list[JsonDict] = value
    return items


def _date_of(res: JsonDict, key: str, ref: str) -> date | None:
    value = res.get(key)
    if value is None:
        return None
    try:
        return _date_text(value) if type(value) is str else parse_fhir_date(value)
    except ValueError:
        raise MalformedResource(ref, f"{key} is not a valid date") from None


def _effective_date(res: JsonDict, ref: str, prefix: str = "effective") -> date | None:
    keys = _EFFECTIVE_KEYS.get(prefix) or (f"{prefix}DateTime", f"{prefix}Instant", f"{prefix}Period")
    found = _date_of(res, keys[0], ref) or _date_of(res, keys[1], ref)
    if found is not None:
        return found
    period = _opt_dict(res, keys[2], ref)
    if period is not None:
        return _date_of(period, "start", ref) or _date_of(period, "end", ref)
    return None


_EFFECTIVE_KEYS: Final = {
    prefix: (f"{prefix}DateTime", f"{prefix}Instant", f"{prefix}Period")
    for prefix in ("effective", "performed")
}


def _codings(concept: JsonDict | None, ref: str) -> list[JsonDict]:
    return _NONE if concept is None else _dicts(concept, "coding", ref)


def _has_code(concept: JsonDict | None, system: str, code: str, ref: str) -> bool:
    if concept is None:
        return False
    return any(c.get("system") == system and c.get("code") == code for c in _dicts(concept, "coding", ref))


def _code_in(concept: JsonDict | None, system: str, ref: str) -> str | None:
    if concept is None:
        return None
    for coding in _dicts(concept, "coding", ref):
        if coding.get("system") == system:
            value = _opt_str(coding, "code", ref)
            if value:
                return value
    return None


def _reference_keys(value: Any, ref: str) -> list[str]:
    """Keys of a Reference or a list of References."""
    items = value if isinstance(value, list) else [value] if value is not None else _NONE
    keys: list[str] = []
    for item in items:
        if type(item) is not dict and not isinstance(item, dict):
            raise MalformedResource(ref, "reference has the wrong type")
        reference = _opt_str(item, "reference", ref)
        if reference:
            key = _reference_key(reference)
            if key is not None:
                keys.append(key)
    return keys


def _extension_value(res: JsonDict, url: str, value_key: str, ref: str) -> Any:
    for ext in _dicts(res, "extension", ref):
        if ext.get("url") == url:
            return ext.get(value_key)
    return None


@lru_cache(maxsize=4096)
def _decimal_of_float(value: float) -> Decimal:
    return Decimal(str(value))


def _number(value: Any, ref: str, what: str) -> Decimal:
    """A JSON number as an exact Decimal (floats through their shortest repr, so 2.34 -> 2.34).

    Non-zero floats go through a small cache (lengths repeat across readings); zero does not, as
    `0.0 == -0.0` would share one cache entry although their reprs differ.
    """
    if type(value) is float and value:
        number = _decimal_of_float(value)
    elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MalformedResource(ref, f"{what} is not a number")
    else:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise MalformedResource(ref, f"{what} is not a finite number")
    return number


class _Unusable(Exception):
    """A resource that parses but cannot be used (its own issue code)."""

    def __init__(self, code: str, message: str, severity: str = "error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.severity = severity


def _quantity(quantity: JsonDict, units: Mapping[str, Decimal], ref: str, what: str) -> Decimal:
    value = _number(quantity.get("value"), ref, what)
    system = _opt_str(quantity, "system", ref)
    unit = _opt_str(quantity, "code", ref) or (None if system else _opt_str(quantity, "unit", ref))
    if system not in (None, codes.UCUM) or unit is None or unit not in units:
        raise _Unusable("unit-not-convertible", f"{what}: unit {unit!r} cannot be converted")
    return value * units[unit]


# --- the mapping -------------------------------------------------------------------------------
@dataclass(slots=True)
class _DrugRecord:
    on: date
    name: str
    ici_class: IciClass | None
    is_ici: bool
    administered: bool
    line_of_therapy: int | None
    ref: str
    dose: bool = False  # an administration given (completed / in-progress), not a plan or a stop


@dataclass(slots=True)
class _Dated:
    on: date
    value: Any
    ref: str


@dataclass(slots=True)
class _ScanParts:
    study_date: date
    ref: str | None
    measurements: list[LesionMeasurement] = field(default_factory=list)
    non_target: list[NonTargetAssessment] = field(default_factory=list)


class _NotRead:
    """Marks an Observation whose own-system code was not read while noting contact dates."""


NOT_READ: Final = _NotRead()
_CONTACT_DATE_KEYS: Final = (
    "effectiveDateTime",
    "effectiveInstant",
    "started",
    "authoredOn",
    "performedDateTime",
    "recordedDate",
    "onsetDateTime",
    "abatementDateTime",
    "occurrenceDateTime",
    "deceasedDateTime",
)
_CONTACT_PERIOD_KEYS: Final = ("effectivePeriod", "performedPeriod", "period")
_CONTACT_KEYS: Final = frozenset(_CONTACT_DATE_KEYS + _CONTACT_PERIOD_KEYS)
_EFFECTIVE_ONLY: Final = frozenset({"effectiveDateTime"})
# Plain dicts, not MappingProxyType, for the lookups of the hot path: a proxy's `get` is a second
# method call. Private and never handed out.
_NON_TARGET_BY_CODE: Final[dict[str, NonTargetState]] = {s.value: s for s in NonTargetState}
_ROLE_BY_CODE: Final[dict[str, LesionRole]] = {r.value: r for r in LesionRole}
_FLAG_BY_CODE: Final[dict[str, MeasurementFlag]] = {f.value: f for f in MeasurementFlag}


# Keys whose presence sends a resource to the general path: other contact elements (each would be
# one more contact date, or an issue) and verificationStatus (an entered-in-error one is no contact).
_UNUSUAL_EFFECTIVE: Final = (_CONTACT_KEYS - _EFFECTIVE_ONLY) | {"verificationStatus"}
_UNUSUAL_STUDY: Final = (_CONTACT_KEYS - {"started"}) | {"verificationStatus"}
_UNUSUAL_AUTHORED: Final = (_CONTACT_KEYS - {"authoredOn"}) | {"verificationStatus"}
_INF: Final = float("inf")
_BMI_UNITS: Final[dict[str, Decimal]] = {"kg/m2": Decimal(1)}
_PERCENT: Final[dict[str, Decimal]] = {"%": Decimal(1)}
# Frozen domain objects built without the frozen `__init__` (see `service.domain.frozen`).
_new_measurement: Final = fast_constructor(LesionMeasurement)
_new_non_target: Final = fast_constructor(NonTargetAssessment)
_new_lab: Final = fast_constructor(LabResult)
_new_lesion: Final = fast_constructor(Lesion)
_new_scan: Final = fast_constructor(Scan)
_new_profile: Final = fast_constructor(ClinicalProfile)
# Several keys in one C call (KeyError when one is missing: the fast path then gives up).
_OBSERVATION_FIELDS: Final = itemgetter("status", "code", "effectiveDateTime")
_LESION_FIELDS: Final = itemgetter("focus", "derivedFrom")
_QUANTITY_FIELDS: Final = itemgetter("value", "code")

# What an Observation's single coding (system, code) is to `_fast_observation`: what
# `_observation_kind` makes of it; `_OWN_OUTPUT` for the service's own output (no contact, general
# path), anything absent only a contact date.
_MEASUREMENT: Final = "measurement"
_NON_TARGET: Final = "non-target"
_OWN_OUTPUT: Final = "own-output"
_OBSERVATION_KINDS: Final[dict[tuple[str, str], str | LabKind]] = {
    (codes.LOINC, codes.LOINC_TUMOR_SIZE): _MEASUREMENT,
    (codes.CS_ONCORESPONSE, codes.CODE_NON_TARGET_STATUS): _NON_TARGET,
    (codes.CS_ONCORESPONSE, codes.CODE_PDL1_TPS): "pdl1",
    **{(codes.LOINC, loinc): lab for loinc, lab in _LAB_BY_LOINC.items()},
    **{(codes.LOINC, loinc): covariate for loinc, covariate in _COVARIATE_BY_LOINC.items()},
    **{(codes.CS_ONCORESPONSE, own): _OWN_OUTPUT for own in _OWN_OUTPUT_CODES},
}

# What `_fast_observation` hands to the final pass: the contact date, then (unless there is nothing
# to read) the list the value joins, the value, and whether the resource counts as used.
_Ready = tuple[date, list[Any] | None, Any, bool]


def _fast_quantity(quantity: object, units: Mapping[str, Decimal]) -> Decimal | None:
    """`_quantity` of the usual quantity (a finite JSON number, a `code` among `units`, UCUM or no
    system), or None for anything else, which the general path then reads or reports."""
    if type(quantity) is not dict:
        return None
    try:
        value, unit = _QUANTITY_FIELDS(quantity)
    except KeyError:
        return None
    if type(value) is float:
        if not -_INF < value < _INF:  # infinities and NaN: the general path reports them
            return None
        number = _decimal_of_float(value) if value else Decimal(str(value))
    elif type(value) is int:
        number = Decimal(value)  # the same Decimal as Decimal(str(value))
    else:
        return None
    system = quantity.get("system")
    if type(unit) is not str or not unit or (system is not None and system != codes.UCUM):
        return None
    factor = units.get(unit)
    return None if factor is None else number * factor


def _first_code(concept: object, system: str) -> str | bool | None:
    """`_code_in(concept, system)` of a concept; False where `_code_in` would raise (or for a
    concept that is not a dict), so that the caller leaves the resource to the general path."""
    if type(concept) is not dict:
        return False
    codings = concept.get("coding")
    if codings is None:
        return None
    if type(codings) is not list:
        return False
    found: str | None = None
    for coding in codings:  # every coding is checked, as `_dicts` does, before the first match counts
        if type(coding) is not dict:
            return False
        if found is None and coding.get("system") == system:
            code = coding.get("code")
            if code is not None and type(code) is not str:
                return False
            if code:
                found = code
    return found


def _fast_observation(mapper: _PatientMapper, res: JsonDict, ref: str) -> _Ready | None:
    """The whole reading of an Observation of the usual shape, without side effects, or None.

    The shape: a usable string status, no verificationStatus, one coding in `code`, and an
    `effectiveDateTime` that is the resource's only contact element; for a tumour size or
    non-target status one `focus` on a known lesion and one `derivedFrom` study of the patient,
    for a tumour size components with a code and a quantity; values in the usual types and units.
    For it, `_note_contact` would note exactly that date and `_read_observation` would read
    exactly the value computed here, without an issue. Anything else returns None and takes the
    general path, which also reports whatever is wrong; so both paths note the same dates, read
    the same values and report the same issues in the same order. Called after the patient's
    lesions and studies are read, as `_read_observation` is.
    """
    try:
        status, code, effective = _OBSERVATION_FIELDS(res)
    except KeyError:
        return None
    if type(code) is not dict or type(status) is not str or type(effective) is not str:
        return None
    codings = code.get("coding")
    if type(codings) is not list or len(codings) != 1:
        return None
    coding = codings[0]
    if type(coding) is not dict:
        return None
    system, value = coding.get("system"), coding.get("code")
    if type(system) is not str or type(value) is not str or not value or status == "entered-in-error":
        return None
    if not res.keys().isdisjoint(_UNUSUAL_EFFECTIVE):
        return None
    try:
        on = _date_text(effective)
    except ValueError:
        return None
    kind = _OBSERVATION_KINDS.get((system, value))
    if kind is None:
        return on, None, None, False  # not an input: only its date counts
    if kind is _OWN_OUTPUT or status not in OBSERVATION_STATUSES:
        return None  # our own output (no contact) or a status the general path reports
    if kind is _MEASUREMENT:
        return _fast_measurement(mapper, res, ref, on)
    get = res.get
    if kind is _NON_TARGET:
        found = _lesion_and_scan(mapper, res)
        state_code = _first_code(get("valueCodeableConcept"), codes.CS_NON_TARGET_STATUS)
        state = _NON_TARGET_BY_CODE.get(state_code) if type(state_code) is str else None
        if found is None or state is None:
            return None
        return on, found[1].non_target, _new_non_target(found[0].lesion_id, state, ref), True
    if type(kind) is LabKind:
        number = _fast_quantity(get("valueQuantity"), _LAB_UNITS[kind])
        return None if number is None else (on, mapper.labs, _new_lab(kind, on, number, ref), True)
    covariate: Any
    if kind == "ecog":
        covariate = get("valueInteger")
        if type(covariate) is not int or not 0 <= covariate <= 5:
            return None
    elif kind == "smoking":
        snomed = _first_code(get("valueCodeableConcept"), codes.SNOMED)
        covariate = codes.SMOKING_STATUS_BY_SNOMED.get(snomed) if type(snomed) is str else None
    else:
        covariate = _fast_quantity(get("valueQuantity"), _BMI_UNITS if kind == "bmi" else _PERCENT)
    if covariate is None:
        return None
    return on, mapper.covariates[kind], _Dated(on, covariate, ref), False


def _lesion_and_scan(mapper: _PatientMapper, res: JsonDict) -> tuple[Lesion, _ScanParts] | None:
    """The known lesion of a single `focus` and the patient's study of a single `derivedFrom`
    (the contract's shape), or None for anything else (the general path then decides)."""
    try:
        focus, derived = _LESION_FIELDS(res)
    except KeyError:
        return None
    if type(focus) is not list or type(derived) is not list or len(focus) != 1 or len(derived) != 1:
        return None
    focus_ref, derived_ref = focus[0], derived[0]
    if type(focus_ref) is not dict or type(derived_ref) is not dict:
        return None
    focus_text, derived_text = focus_ref.get("reference"), derived_ref.get("reference")
    if type(focus_text) is not str or type(derived_text) is not str:
        return None
    lesion = mapper.lesion_by_key.get(_reference_key(focus_text) or "")
    scan = mapper.studies.get(_reference_key(derived_text) or "")
    if lesion is None or scan is None:
        return None
    return lesion, scan


def _fast_measurement(mapper: _PatientMapper, res: JsonDict, ref: str, on: date) -> _Ready | None:
    """`_fast_observation` of a tumour size (`_read_measurement` of the usual reading).

    The hottest path of all (a third of a patient's resources): `_fast_quantity` is written out
    here, line for line, to save its call.
    """
    components = res.get("component")
    if type(components) is not list or "specimen" in res:
        return None  # the general path tells pathology from imaging (`_pathology_method`)
    method = res.get("method")
    if method is not None:
        method_code = _first_code(method, codes.SNOMED)
        if method_code is False or method_code in codes.SNOMED_PATHOLOGY_METHODS:
            return None
    found = _lesion_and_scan(mapper, res)
    if found is None:
        return None
    lesion, scan = found
    flag: MeasurementFlag | None = None
    if "interpretation" in res:
        interpretation = res["interpretation"]
        if interpretation is not None:  # `_flag`: the first code of the measurement-flag system
            if type(interpretation) is not list:
                return None
            for concept in interpretation:
                if type(concept) is not dict:
                    return None
            for concept in interpretation:
                flag_code = _first_code(concept, codes.CS_MEASUREMENT_FLAG)
                if flag_code is None:
                    continue
                flag = _FLAG_BY_CODE.get(flag_code) if type(flag_code) is str else None
                if flag is None:  # malformed, or a code the general path warns about
                    return None
                break
    long_mm: Decimal | None = None
    short_mm: Decimal | None = None
    for component in components:
        if type(component) is not dict:
            return None
        concept = component.get("code")
        quantity = component.get("valueQuantity")
        if type(concept) is not dict or type(quantity) is not dict:
            return None
        codings = concept.get("coding")
        if type(codings) is not list:
            return None
        is_long = is_short = False
        for coding in codings:
            if type(coding) is not dict:
                return None
            system, code = coding.get("system"), coding.get("code")
            if system == codes.LOINC and code == codes.LOINC_LONGEST_DIAMETER:
                is_long = True
            elif system == codes.CS_ONCORESPONSE and code == codes.CODE_SHORT_AXIS:
                is_short = True
        if not (is_long or is_short):
            if _has_other_dimension(codings):
                return None  # reported by the general path
            continue
        try:  # `_fast_quantity(quantity, _MM_PER_UNIT)`
            value, unit = _QUANTITY_FIELDS(quantity)
        except KeyError:
            return None
        if type(value) is float:
            if not -_INF < value < _INF:
                return None
            number = _decimal_of_float(value) if value else Decimal(str(value))
        elif type(value) is int:
            number = Decimal(value)
        else:
            return None
        system = quantity.get("system")
        if type(unit) is not str or (system is not None and system != codes.UCUM):
            return None
        factor = _MM_PER_UNIT.get(unit)
        if factor is None:
            return None
        number *= factor
        if number < 0:
            return None
        if is_long:
            long_mm = number
        else:
            short_mm = number
    if long_mm is None and short_mm is None and flag is None:
        return None  # the general path warns `measurement-without-value`
    return on, scan.measurements, _new_measurement(lesion.lesion_id, long_mm, short_mm, flag, ref), True


_PATHOLOGY_KEYS: Final = frozenset({"specimen"})  # refused by the typed and dict fast paths


def _not_a_lesion(resource: JsonDict | typed.TypedResource) -> bool:
    """A BodyStructure that is an mCODE RadiotherapyVolume (where a dose was given, not a tumour)."""
    if isinstance(resource, typed.BodyStructureT):
        profiles: object = resource.meta.profile if resource.meta is not None else None
    elif isinstance(resource, dict):
        meta = resource.get("meta")
        profiles = meta.get("profile") if type(meta) is dict else None
    else:
        return False
    return type(profiles) is list and codes.MCODE_RADIOTHERAPY_VOLUME in profiles


def _has_other_dimension(codings: list[Any]) -> bool:
    return any(
        c.get("system") == codes.LOINC and c.get("code") in codes.LOINC_OTHER_DIMENSIONS for c in codings
    )


def _fast_study(mapper: _PatientMapper, res: JsonDict, ref: str) -> bool:
    """`_note_contact` + `_read_study` of the usual ImagingStudy (a string status other than
    cancelled/entered-in-error, no verificationStatus, a `started` date as its only contact
    element); False, with nothing changed, for anything else (the general path then reads it)."""
    get = res.get
    status = get("status")
    started = get("started")
    if (
        type(status) is not str
        or status in STUDY_STATUSES_SKIPPED
        or type(started) is not str
        or not res.keys().isdisjoint(_UNUSUAL_STUDY)
    ):
        return False
    try:
        on = _date_text(started)
    except ValueError:
        return False
    mapper.contact_dates.append(on)
    parts = _ScanParts(on, ref)
    rid = res["id"]
    mapper.studies[f"ImagingStudy/{rid}"] = parts
    mapper.studies[f"urn:uuid:{rid}"] = parts
    mapper.used_refs.append(ref)
    return True


def _fast_body_structure(mapper: _PatientMapper, res: JsonDict, ref: str) -> bool:
    """`_note_contact` + `_read_body_structure` of the usual lesion (no contact element, not
    inactive, an identifier value, a `location`, well-formed extensions, a known role, an organ and
    an identifier not seen before); False, with nothing changed, for anything else (the general
    path then reads it, or reports what is wrong)."""
    get = res.get
    identifiers = get("identifier")
    location = get("location")
    if (
        type(identifiers) is not list
        or type(location) is not dict
        or get("active") is False
        or not res.keys().isdisjoint(_CONTACT_KEYS)
    ):
        return False
    for identifier in identifiers:  # `_dicts`: every element a dict
        if type(identifier) is not dict:
            return False
    lesion_id = next(
        (i["value"] for i in identifiers if isinstance(i.get("value"), str) and i["value"]), None
    )
    location_code = _first_code(location, codes.SNOMED)
    if lesion_id is None or location_code is False or lesion_id in mapper.lesion_by_id:
        return False
    node_ext = role_coding = None
    extensions = get("extension")
    if extensions is not None:
        if type(extensions) is not list:
            return False
        for ext in extensions:
            if type(ext) is not dict:
                return False
        node_ext = next(
            (e.get("valueBoolean") for e in extensions if e.get("url") == codes.EXT_LYMPH_NODE), None
        )
        role_coding = next(
            (e.get("valueCoding") for e in extensions if e.get("url") == codes.EXT_LESION_ROLE), None
        )
    is_node = node_ext is True or location_code == codes.SNOMED_LYMPH_NODE
    text = location.get("text")
    if type(location_code) is str:
        organ = codes.ORGAN_BY_CODE.get(location_code, location_code)
    elif isinstance(text, str) and text:
        organ = text.strip().lower()
    elif is_node:
        organ = "lymph-node"
    else:
        return False  # the general path warns `lesion-without-location`
    role: LesionRole | None = None
    if isinstance(role_coding, dict) and role_coding.get("code") is not None:
        role_code = role_coding["code"]
        role = _ROLE_BY_CODE.get(role_code) if type(role_code) is str else None
        if role is None:
            return False  # the general path warns `unknown-lesion-role`
    lesion = _new_lesion(lesion_id, organ, is_node, role, ref)
    mapper.lesions.append(lesion)
    mapper.lesion_by_id[lesion_id] = lesion
    rid = res["id"]
    mapper.lesion_by_key[f"BodyStructure/{rid}"] = lesion
    mapper.lesion_by_key[f"urn:uuid:{rid}"] = lesion
    mapper.used_refs.append(ref)
    return True


def _fast_line(res: JsonDict) -> int | None:
    """The line-of-therapy of a drug record as `_drug_record` reads it (None: no such extension),
    or 0 where `_drug_record` would report it (malformed extensions, not a positive integer)."""
    extensions = res.get("extension")
    if extensions is None:
        return None
    if type(extensions) is not list:
        return 0
    for ext in extensions:  # `_dicts`: every element a dict
        if type(ext) is not dict:
            return 0
    for ext in extensions:
        if ext.get("url") == codes.EXT_LINE_OF_THERAPY:
            line = ext.get("valuePositiveInt")
            if line is None:
                return None
            return line if type(line) is int and line >= 1 else 0
    return None


def _usual_medication(
    res: JsonDict, statuses: Container[str], date_key: str, unusual: AbstractSet[str]
) -> tuple[str, str, JsonDict] | None:
    """The status, date text (`date_key`) and `medicationCodeableConcept` of a medication resource
    of the usual shape (a status among `statuses`, the date as a string, a coded drug, none of
    the `unusual` contact elements), or None: the general path then reads or reports it."""
    get = res.get
    status = get("status")
    when = get(date_key)
    concept = get("medicationCodeableConcept")
    if (
        type(status) is not str
        or status not in statuses
        or type(when) is not str
        or type(concept) is not dict
        or not res.keys().isdisjoint(unusual)
    ):
        return None
    return status, when, concept


def _line_and_drug(
    mapper: _PatientMapper, res: JsonDict, concept: JsonDict, ref: str
) -> tuple[int | None, tuple[str, IciClass | None, bool] | None] | None:
    """The treatment line (`_fast_line`; None: not given) and drug classification (None: not a drug we follow) of
    a medication resource of the usual shape, or None where either is unusual or malformed (the
    general path then reads or reports the resource)."""
    line = _fast_line(res)
    if line == 0:
        return None
    try:
        return line, mapper._classify_cached(concept, ref)
    except MalformedResource:
        return None


def _fast_administration(mapper: _PatientMapper, res: JsonDict, ref: str) -> bool:
    """`_note_contact` + `_read_administration` of the usual MedicationAdministration (a usable
    status, an `effectiveDateTime` as its only contact element, a `medicationCodeableConcept`,
    well-formed extensions); False, with nothing changed, for anything else (the general path
    then reads or reports it). The drug classification is remembered either way (`_classify_cached`)."""
    usual = _usual_medication(res, ADMINISTRATION_STATUSES, "effectiveDateTime", _UNUSUAL_EFFECTIVE)
    if usual is None:
        return False
    status, effective, concept = usual
    try:
        on = _date_text(effective)
    except ValueError:
        return False
    found = _line_and_drug(mapper, res, concept, ref)
    if found is None:
        return False
    line, drug = found
    mapper.contact_dates.append(on)
    if drug is not None:
        name, cls, is_ici = drug
        dose = status in DOSE_STATUSES
        mapper.drugs.append(_DrugRecord(on, name, cls, is_ici, True, line, ref, dose))
    return True


def _fast_request(mapper: _PatientMapper, res: JsonDict, ref: str) -> bool:
    """`_note_contact` + `_read_request` of the usual MedicationRequest (a usable status, an
    `authoredOn` date as its only contact element, a `medicationCodeableConcept`, well-formed
    dosage instructions and extensions); False, with nothing changed, for anything else."""
    usual = _usual_medication(res, REQUEST_STATUSES, "authoredOn", _UNUSUAL_AUTHORED)
    if usual is None:
        return False
    _, authored, concept = usual
    starts: list[date] = []
    dosages = res.get("dosageInstruction")
    try:
        authored_on = _date_text(authored)
        if dosages is not None:
            if type(dosages) is not list:
                return False
            for dosage in dosages:  # `_dicts`: every element a dict, before any is read
                if type(dosage) is not dict:
                    return False
            for dosage in dosages:  # dosageInstruction.timing.repeat.boundsPeriod.start
                timing = dosage.get("timing")
                if timing is None:
                    continue
                if type(timing) is not dict:
                    return False
                repeat = timing.get("repeat")
                if repeat is None:
                    continue
                if type(repeat) is not dict:
                    return False
                bounds = repeat.get("boundsPeriod")
                if bounds is None:
                    continue
                if type(bounds) is not dict:
                    return False
                start = bounds.get("start")
                if start is None:
                    continue
                if type(start) is not str:
                    return False
                starts.append(_date_text(start))
    except ValueError:
        return False
    found = _line_and_drug(mapper, res, concept, ref)
    if found is None:
        return False
    line, drug = found
    mapper.contact_dates.append(authored_on)
    if drug is not None:
        name, cls, is_ici = drug
        on = min(starts) if starts else authored_on
        mapper.drugs.append(_DrugRecord(on, name, cls, is_ici, False, line, ref))
    return True


# --- typed fast paths (`typed.py`: the usual shapes, decoded from a search page by msgspec) -------
# Each reads a typed resource exactly as its dict fast path reads the same resource as a dict, and
# declines (None/False, nothing changed) wherever that one declines or could; the caller then hands
# `resource.as_dict()` to the dict fast path and the general path. The Structs' types stand for the
# dict paths' type checks (a value of another type fails the typed decode: the resource is a dict),
# and the contact elements a fast path refuses fail it too (`typed.Refused`).
def _typed_first_code(
    concept: typed.Concept | typed.CodeableConcept | None, system: str
) -> str | bool | None:
    """`_first_code` of a typed concept (False for none: `_first_code` of a non-dict)."""
    if concept is None:
        return False
    codings = concept.coding
    if codings is None:
        return None
    for coding in codings:
        if coding.system == system and coding.code:
            return coding.code
    return None


def _typed_quantity(quantity: typed.Quantity | None, units: Mapping[str, Decimal]) -> Decimal | None:
    """`_fast_quantity` of a typed quantity."""
    if quantity is None:
        return None
    value, unit = quantity.value, quantity.code
    if type(value) is float:
        if not -_INF < value < _INF:
            return None
        number = _decimal_of_float(value) if value else Decimal(str(value))
    elif type(value) is int:
        number = Decimal(value)
    else:
        return None
    system = quantity.system
    if not unit or (system is not None and system != codes.UCUM):
        return None
    factor = units.get(unit)
    return None if factor is None else number * factor


def _typed_observation(mapper: _PatientMapper, res: typed.ObservationT, ref: str) -> _Ready | None:
    """`_fast_observation` of a typed Observation."""
    code, effective, status = res.code, res.effectiveDateTime, res.status
    if code is None or effective is None:
        return None
    codings = code.coding
    if codings is None or len(codings) != 1:
        return None
    coding = codings[0]
    system, value = coding.system, coding.code
    if system is None or not value or status == "entered-in-error":
        return None
    try:
        on = _date_text(effective)
    except ValueError:
        return None
    kind = _OBSERVATION_KINDS.get((system, value))
    if kind is None:
        return on, None, None, False
    if kind is _OWN_OUTPUT or status not in OBSERVATION_STATUSES:
        return None
    if kind is _MEASUREMENT:
        return _typed_measurement(mapper, res, ref, on)
    if kind is _NON_TARGET:
        found = _typed_lesion_and_scan(mapper, res)
        state_code = _typed_first_code(res.valueCodeableConcept, codes.CS_NON_TARGET_STATUS)
        state = _NON_TARGET_BY_CODE.get(state_code) if type(state_code) is str else None
        if found is None or state is None:
            return None
        return on, found[1].non_target, _new_non_target(found[0].lesion_id, state, ref), True
    if type(kind) is LabKind:
        number = _typed_quantity(res.valueQuantity, _LAB_UNITS[kind])
        return None if number is None else (on, mapper.labs, _new_lab(kind, on, number, ref), True)
    covariate: Any
    if kind == "ecog":
        covariate = res.valueInteger
        if covariate is None or not 0 <= covariate <= 5:
            return None
    elif kind == "smoking":
        snomed = _typed_first_code(res.valueCodeableConcept, codes.SNOMED)
        covariate = codes.SMOKING_STATUS_BY_SNOMED.get(snomed) if type(snomed) is str else None
    else:
        covariate = _typed_quantity(res.valueQuantity, _BMI_UNITS if kind == "bmi" else _PERCENT)
    if covariate is None:
        return None
    return on, mapper.covariates[kind], _Dated(on, covariate, ref), False


def _typed_lesion_and_scan(
    mapper: _PatientMapper, res: typed.ObservationT
) -> tuple[Lesion, _ScanParts] | None:
    """`_lesion_and_scan` of a typed Observation."""
    focus, derived = res.focus, res.derivedFrom
    if focus is None or derived is None or len(focus) != 1 or len(derived) != 1:
        return None
    focus_text, derived_text = focus[0].reference, derived[0].reference
    if focus_text is None or derived_text is None:
        return None
    lesion = mapper.lesion_by_key.get(_reference_key(focus_text) or "")
    scan = mapper.studies.get(_reference_key(derived_text) or "")
    if lesion is None or scan is None:
        return None
    return lesion, scan


def _typed_measurement(mapper: _PatientMapper, res: typed.ObservationT, ref: str, on: date) -> _Ready | None:
    """`_fast_measurement` of a typed Observation."""
    components = res.component
    if components is None:
        return None
    if (
        res.method is not None
        and _typed_first_code(res.method, codes.SNOMED) in codes.SNOMED_PATHOLOGY_METHODS
    ):
        return None  # the general path reports it (`_pathology_method`)
    found = _typed_lesion_and_scan(mapper, res)
    if found is None:
        return None
    lesion, scan = found
    flag: MeasurementFlag | None = None
    interpretation = res.interpretation
    if interpretation is not None:
        for concept in interpretation:
            flag_code = _typed_first_code(concept, codes.CS_MEASUREMENT_FLAG)
            if flag_code is None:
                continue
            flag = _FLAG_BY_CODE.get(flag_code) if type(flag_code) is str else None
            if flag is None:
                return None
            break
    long_mm: Decimal | None = None
    short_mm: Decimal | None = None
    for component in components:
        component_code, quantity = component.code, component.valueQuantity
        if component_code is None or quantity is None:
            return None
        codings = component_code.coding
        if codings is None:
            return None
        is_long = is_short = False
        for coding in codings:
            system, code = coding.system, coding.code
            if system == codes.LOINC and code == codes.LOINC_LONGEST_DIAMETER:
                is_long = True
            elif system == codes.CS_ONCORESPONSE and code == codes.CODE_SHORT_AXIS:
                is_short = True
            elif system == codes.LOINC and code in codes.LOINC_OTHER_DIMENSIONS:
                return None  # reported by the general path
        if not (is_long or is_short):
            continue
        number = _typed_quantity(quantity, _MM_PER_UNIT)
        if number is None or number < 0:
            return None
        if is_long:
            long_mm = number
        else:
            short_mm = number
    if long_mm is None and short_mm is None and flag is None:
        return None
    return on, scan.measurements, _new_measurement(lesion.lesion_id, long_mm, short_mm, flag, ref), True


def _typed_study(mapper: _PatientMapper, res: typed.ImagingStudyT, ref: str) -> bool:
    """`_fast_study` of a typed ImagingStudy."""
    started = res.started
    if started is None or res.status in STUDY_STATUSES_SKIPPED:
        return False
    try:
        on = _date_text(started)
    except ValueError:
        return False
    mapper.contact_dates.append(on)
    parts = _ScanParts(on, ref)
    rid = res.id
    mapper.studies[f"ImagingStudy/{rid}"] = parts
    mapper.studies[f"urn:uuid:{rid}"] = parts
    mapper.used_refs.append(ref)
    return True


def _typed_body_structure(mapper: _PatientMapper, res: typed.BodyStructureT, ref: str) -> bool:
    """`_fast_body_structure` of a typed BodyStructure."""
    identifiers, location = res.identifier, res.location
    if identifiers is None or location is None or res.active is False:
        return False
    lesion_id = next((i.value for i in identifiers if i.value), None)
    location_code = _typed_first_code(location, codes.SNOMED)
    if lesion_id is None or lesion_id in mapper.lesion_by_id:
        return False
    node_ext: bool | None = None
    role_coding: typed.Coding | None = None
    extensions = res.extension
    if extensions is not None:
        node_ext = next((e.valueBoolean for e in extensions if e.url == codes.EXT_LYMPH_NODE), None)
        role_coding = next((e.valueCoding for e in extensions if e.url == codes.EXT_LESION_ROLE), None)
    is_node = node_ext is True or location_code == codes.SNOMED_LYMPH_NODE
    text = location.text
    if type(location_code) is str:
        organ = codes.ORGAN_BY_CODE.get(location_code, location_code)
    elif text:
        organ = text.strip().lower()
    elif is_node:
        organ = "lymph-node"
    else:
        return False
    role: LesionRole | None = None
    if role_coding is not None and role_coding.code is not None:
        role = _ROLE_BY_CODE.get(role_coding.code)
        if role is None:
            return False
    lesion = _new_lesion(lesion_id, organ, is_node, role, ref)
    mapper.lesions.append(lesion)
    mapper.lesion_by_id[lesion_id] = lesion
    rid = res.id
    mapper.lesion_by_key[f"BodyStructure/{rid}"] = lesion
    mapper.lesion_by_key[f"urn:uuid:{rid}"] = lesion
    mapper.used_refs.append(ref)
    return True


def _typed_line_and_drug(
    mapper: _PatientMapper,
    extensions: list[typed.Extension] | None,
    concept: typed.DrugConcept,
    ref: str,
) -> tuple[int | None, tuple[str, IciClass | None, bool] | None] | None:
    """`_line_and_drug` of a typed medication resource: the same line, the same classification
    (through the same per-patient cache, `_classify_cached`, with the same key)."""
    line: int | None = None
    if extensions is not None:
        for ext in extensions:
            if ext.url == codes.EXT_LINE_OF_THERAPY:
                line = ext.valuePositiveInt
                if line is not None and line < 1:
                    return None
                break
    text, codings = concept.text, concept.coding
    key: tuple[object, ...] = (text,)
    if codings is not None:
        items: list[object] = [text]
        for c in codings:
            items.append(c.system)
            items.append(c.code)
            items.append(c.display)
        key = tuple(items)
    classes = mapper.drug_classes
    if key in classes:
        return line, classes[key]
    as_dict: JsonDict = {"text": text}
    if codings is not None:
        as_dict["coding"] = [{"system": c.system, "code": c.code, "display": c.display} for c in codings]
    try:
        return line, mapper._classify_cached(as_dict, ref)
    except MalformedResource:
        return None


def _typed_administration(mapper: _PatientMapper, res: typed.MedicationAdministrationT, ref: str) -> bool:
    """`_fast_administration` of a typed MedicationAdministration."""
    status, effective, concept = res.status, res.effectiveDateTime, res.medicationCodeableConcept
    if status not in ADMINISTRATION_STATUSES or effective is None or concept is None:
        return False
    try:
        on = _date_text(effective)
    except ValueError:
        return False
    found = _typed_line_and_drug(mapper, res.extension, concept, ref)
    if found is None:
        return False
    line, drug = found
    mapper.contact_dates.append(on)
    if drug is not None:
        name, cls, is_ici = drug
        dose = status in DOSE_STATUSES
        mapper.drugs.append(_DrugRecord(on, name, cls, is_ici, True, line, ref, dose))
    return True


def _typed_request(mapper: _PatientMapper, res: typed.MedicationRequestT, ref: str) -> bool:
    """`_fast_request` of a typed MedicationRequest."""
    authored, concept = res.authoredOn, res.medicationCodeableConcept
    if res.status not in REQUEST_STATUSES or authored is None or concept is None:
        return False
    starts: list[date] = []
    dosages = res.dosageInstruction
    try:
        authored_on = _date_text(authored)
        if dosages is not None:
            for dosage in dosages:
                timing = dosage.timing
                if timing is None:
                    continue
                repeat = timing.repeat
                if repeat is None:
                    continue
                bounds = repeat.boundsPeriod
                if bounds is None:
                    continue
                start = bounds.start
                if start is None:
                    continue
                starts.append(_date_text(start))
    except ValueError:
        return False
    found = _typed_line_and_drug(mapper, res.extension, concept, ref)
    if found is None:
        return False
    line, drug = found
    mapper.contact_dates.append(authored_on)
    if drug is not None:
        name, cls, is_ici = drug
        on = min(starts) if starts else authored_on
        mapper.drugs.append(_DrugRecord(on, name, cls, is_ici, False, line, ref))
    return True


class _PatientMapper:
    """Single-use: collects the pieces of one patient and the issues met on the way."""

    def __init__(self, patient_id: str, mapping: InboundMapping) -> None:
        self.patient_id = patient_id
        self.mapping = mapping
        self.issues: list[DataIssue] = []
        self.used_refs: list[str] = []
        self.contact_dates: list[date] = []
        self.by_key: dict[str, JsonDict] = {}
        self.patient: JsonDict | None = None
        self.lesion_by_key: dict[str, Lesion | None] = {}
        self.lesions: list[Lesion] = []
        self.studies: dict[str, _ScanParts] = {}
        self.drugs: list[_DrugRecord] = []
        self.conditions: list[tuple[bool, date | None, TumourType, str]] = []
        self.labs: list[LabResult] = []
        self.covariates: dict[str, list[_Dated]] = {"ecog": [], "bmi": [], "smoking": [], "pdl1": []}
        self.treatments: list[LocalTreatment] = []
        self.pending_reads: list[tuple[Any, str, str | _NotRead | _Ready | None]] = []
        self.drug_classes: dict[tuple[object, ...], tuple[str, IciClass | None, bool] | None] = {}
        self.death_date: date | None = None
        self.lesion_by_id: dict[str, Lesion] = {}
        self.conflicts: list[str] = []  # refs of duplicate resources with different content

    def issue(self, severity: str, code: str, message: str, ref: str | None) -> None:
        self.issues.append(DataIssue(severity, code, message, ref))

    # -- entry point --------------------------------------------------------------------------
    def run(self, resources: Iterable[object]) -> PatientInput:
        # BodyStructures and ImagingStudies first: measurements refer to them (a stable sort by
        # rank, done as buckets). Only Medications are indexed by key: they are the only resources
        # looked up by reference among the inputs (`medicationReference`). Resources are JSON dicts
        # or, from the typed search pages of a REST sync, `typed.TypedResource`s: each of those
        # tries its typed fast path, then, as the dict it was decoded from, the dict paths.
        first: list[tuple[Any, str]] = []
        lesions: list[tuple[Any, str]] = []
        studies: list[tuple[Any, str]] = []
        medications: list[tuple[Any, str]] = []
        rest: list[tuple[Any, str]] = []
        bucket = {
            "Patient": first,
            "BodyStructure": lesions,
            "ImagingStudy": studies,
            "Medication": medications,
        }
        typed_resource = typed.TypedResource
        seen: dict[str, object] = {}
        for position, resource in enumerate(resources):
            if type(resource) is dict:  # the usual case, checked at once
                rtype, rid = resource.get("resourceType"), resource.get("id")
                if type(rtype) is str and type(rid) is str and rid and rtype != "Medication":
                    ref = f"{rtype}/{rid}"
                    if ref in seen and self._duplicate(seen[ref], resource, ref):
                        continue
                    seen[ref] = resource
                    bucket.get(rtype, rest).append((resource, ref))
                    continue
            elif isinstance(resource, typed_resource):
                rtype, rid = resource.resource_type, resource.id
                if rid:
                    ref = f"{rtype}/{rid}"
                    if ref in seen and self._duplicate(seen[ref], resource, ref):
                        continue
                    seen[ref] = resource
                    bucket.get(rtype, rest).append((resource, ref))
                    continue
                resource = self._as_dict(resource, f"resource[{position}]")  # the dict path reports it
                if resource is None:
                    continue
            if not isinstance(resource, dict) or not isinstance(rtype := resource.get("resourceType"), str):
                self.issue("error", "malformed-resource", "not a FHIR resource", f"resource[{position}]")
                continue
            rid = resource.get("id")
            if not isinstance(rid, str) or not rid:
                self.issue("error", "malformed-resource", f"{rtype} without id", f"resource[{position}]")
                continue
            ref = f"{rtype}/{rid}"
            if ref in seen and self._duplicate(seen[ref], resource, ref):
                continue
            seen[ref] = resource
            if rtype == "Medication":
                for key in _keys_of(rtype, rid):
                    self.by_key.setdefault(key, resource)
            bucket.get(rtype, rest).append((resource, ref))
        # Looked up here, so that the equivalence tests can switch the fast paths off.
        fast_lesion, fast_study = _fast_body_structure, _fast_study
        typed_lesion, typed_study = _typed_body_structure, _typed_study
        for resource, ref in first:
            self._one(resource, ref)
        for resource, ref in lesions:
            if _not_a_lesion(resource):
                self.issue(
                    "information", "not-a-lesion", "radiotherapy volume (mCODE), not a tumour lesion", ref
                )
                continue
            if type(resource) is not dict:
                if typed_lesion(self, resource, ref):
                    continue
                resource = self._as_dict(resource, ref)
                if resource is None:
                    continue
            if not fast_lesion(self, resource, ref):
                self._one(resource, ref)
        for resource, ref in studies:
            if type(resource) is not dict:
                if typed_study(self, resource, ref):
                    continue
                resource = self._as_dict(resource, ref)
                if resource is None:
                    continue
            if not fast_study(self, resource, ref):
                self._one(resource, ref)
        for resource, ref in medications:
            self._one(resource, ref)
        # Observations and MedicationAdministrations (most of a patient's resources) try their fast
        # paths first (looked up here, so that the equivalence tests can switch them off).
        # An Observation is read after all the others (its issues and used refs come last). One read
        # by its fast path joins its list at once while no Observation before it waits for the
        # general path (the same order either way); its ref is kept aside until the others' are in.
        fast_observation, fast_administration, fast_request = (
            _fast_observation,
            _fast_administration,
            _fast_request,
        )
        typed_observation, typed_administration, typed_request = (
            _typed_observation,
            _typed_administration,
            _typed_request,
        )
        contact, pending = self.contact_dates.append, self.pending_reads.append
        read_refs: list[str] = []
        in_order = True  # no Observation waits in `pending_reads` yet
        for resource, ref in rest:
            is_dict = type(resource) is dict
            rtype = resource["resourceType"] if is_dict else resource.resource_type
            if rtype == "Observation":
                if is_dict:
                    ready = fast_observation(self, resource, ref)
                else:
                    ready = typed_observation(self, resource, ref)
                    if ready is None:
                        if (resource := self._as_dict(resource, ref)) is None:
                            continue
                        ready = fast_observation(self, resource, ref)
                if ready is not None:  # its only contact date is the effectiveDateTime
                    contact(ready[0])
                    target = ready[1]
                    if target is None:
                        continue
                    if in_order:
                        target.append(ready[2])
                        if ready[3]:
                            read_refs.append(ref)
                    else:
                        pending((resource, ref, ready))
                    continue
                in_order = False
            elif rtype == "MedicationAdministration":
                if not is_dict:
                    if typed_administration(self, resource, ref):
                        continue
                    resource = self._as_dict(resource, ref)
                    if resource is None:
                        continue
                if fast_administration(self, resource, ref):
                    continue
            elif rtype == "MedicationRequest":
                if not is_dict:
                    if typed_request(self, resource, ref):
                        continue
                    resource = self._as_dict(resource, ref)
                    if resource is None:
                        continue
                if fast_request(self, resource, ref):
                    continue
            self._one(resource, ref)
        self.used_refs.extend(read_refs)
        used = self.used_refs.append
        for resource, ref, own in self.pending_reads:
            if isinstance(own, tuple):  # read by `_fast_observation`: it joins its list now, in order
                target = own[1]
                if target is not None:
                    target.append(own[2])
                    if own[3]:
                        used(ref)
                continue
            try:
                self._read_observation(resource, ref, own)
            except MalformedResource as exc:
                self.issue("error", "malformed-resource", exc.reason, ref)
            except _Unusable as exc:
                self.issue(exc.severity, exc.code, exc.message, ref)
        return self._assemble()

    def _duplicate(self, first: object, again: object, ref: str) -> bool:
        """Always True: a second resource of the same type and id is never read twice.

        The same content again (a resource `_include`d by two pages, sent twice) is dropped without
        a word; different content is an error and the patient is not assessed: which of the two the
        source means cannot be known, and reading either could change the response
        (docs/fhir/data-integrity.md). `meta` (version, lastUpdated) is not content.
        """
        if _content(first) != _content(again):
            self.conflicts.append(ref)
            self.issue(
                "error",
                "duplicate-resource-conflict",
                "two different resources share this type and id; the patient is not assessed",
                ref,
            )
        return True

    def _as_dict(self, resource: typed.TypedResource, ref: str) -> JsonDict | None:
        """A typed resource as the dict it was decoded from; None, with an issue, where there is
        none (`TypedResource.as_dict`)."""
        try:
            return resource.as_dict()
        except MalformedResource as exc:
            self.issue("error", "malformed-resource", exc.reason, ref)
            return None

    def _guarded(self, handler: _Handler, resource: JsonDict, ref: str) -> None:
        try:
            handler(self, resource, ref)
        except MalformedResource as exc:
            self.issue("error", "malformed-resource", exc.reason, ref)
        except _Unusable as exc:
            self.issue(exc.severity, exc.code, exc.message, ref)

    def _one(self, resource: JsonDict, ref: str) -> None:
        rtype = resource["resourceType"]
        try:
            own = self._note_contact(resource, ref, rtype)
        except MalformedResource as exc:
            self.issue("error", "malformed-resource", exc.reason, ref)
            return
        if rtype == "Observation":
            self.pending_reads.append((resource, ref, own))
            return
        handler = _HANDLERS.get(rtype)
        if handler is not None:
            self._guarded(handler, resource, ref)

    # -- last contact ---------------------------------------------------------------------------
    def _note_contact(self, res: JsonDict, ref: str, rtype: str) -> str | _NotRead | None:
        """Note the resource's clinical dates; for an Observation, its own-system code (if read)."""
        get = res.get
        if get("status") == "entered-in-error" or get("verificationStatus") == "entered-in-error":
            return NOT_READ
        own: str | _NotRead | None = NOT_READ
        if rtype == "Observation":
            own = _code_in(_opt_dict(res, "code", ref), codes.CS_ONCORESPONSE, ref)
            if own in _OWN_OUTPUT_CODES:
                return own
        if res.keys().isdisjoint(_CONTACT_KEYS):
            return own
        present = res.keys() & _CONTACT_KEYS
        append = self.contact_dates.append
        for key in _CONTACT_DATE_KEYS if len(present) > 1 else present:  # the checking order matters
            if key in present and get(key) is not None and key not in _CONTACT_PERIOD_KEYS:
                found = _date_of(res, key, ref)
                if found is not None:
                    append(found)
        for key in _CONTACT_PERIOD_KEYS:
            if key in present and get(key) is not None:
                period = _opt_dict(res, key, ref)
                if period is not None:
                    for end in ("start", "end"):
                        found = _date_of(period, end, ref)
                        if found is not None:
                            append(found)
        return own

    # -- Patient --------------------------------------------------------------------------------
    def _read_patient(self, res: JsonDict, ref: str) -> None:
        if res.get("id") != self.patient_id:
            raise _Unusable("foreign-patient", "Patient resource of another patient")
        self.patient = res
        self.used_refs.append(ref)
        self.death_date = _date_of(res, "deceasedDateTime", ref)
        if self.death_date is None and res.get("deceasedBoolean") is True:
            self.issue("warning", "death-date-unknown", "patient deceased without a date of death", ref)

    # -- Condition -> tumour type -----------------------------------------------------------------
    def _read_condition(self, res: JsonDict, ref: str) -> None:
        verification = _codings(_opt_dict(res, "verificationStatus", ref), ref)
        if any(c.get("code") in ("refuted", "entered-in-error") for c in verification):
            return
        meta = _opt_dict(res, "meta", ref) or {}
        profiles = _opt(meta, "profile", list, ref) or []
        primary = codes.MCODE_PRIMARY_CANCER_CONDITION in profiles
        code = _opt_dict(res, "code", ref)
        tumour = self._tumour_type(res, code, ref)
        if tumour is None and primary:
            tumour = TumourType.OTHER
        if tumour is None:
            return
        recorded = _date_of(res, "onsetDateTime", ref) or _date_of(res, "recordedDate", ref)
        self.conditions.append((primary, recorded, tumour, ref))
        self.used_refs.append(ref)

    def _tumour_type(self, res: JsonDict, code: JsonDict | None, ref: str) -> TumourType | None:
        icd = _code_in(code, codes.ICD10CM, ref)
        if icd is not None:
            compact = icd.replace(".", "").upper()
            if compact.startswith(self.mapping.lung_icd10_prefix.replace(".", "")):
                return TumourType.SCLC if self._small_cell(res, ref) else TumourType.NSCLC
            prefixes = sorted(self.mapping.tumour_type_by_icd10_prefix, key=len, reverse=True)
            for prefix in prefixes:
                if compact.startswith(prefix.replace(".", "")):
                    return self.mapping.tumour_type_by_icd10_prefix[prefix]
            if compact.startswith("C") and not compact.startswith(("C77", "C78", "C79")):
                return TumourType.OTHER
        snomed = _code_in(code, codes.SNOMED, ref)
        if snomed is not None and snomed in self.mapping.tumour_type_by_snomed:
            return self.mapping.tumour_type_by_snomed[snomed]
        return None

    def _small_cell(self, res: JsonDict, ref: str) -> bool:
        histology = _extension_value(res, codes.MCODE_HISTOLOGY_EXT, "valueCodeableConcept", ref)
        if not isinstance(histology, dict):
            return False
        morphology = _code_in(histology, codes.ICDO3, ref)
        return morphology is not None and morphology in self.mapping.sclc_morphologies

    # -- medications ------------------------------------------------------------------------------
    def _medication_concept(self, res: JsonDict, ref: str) -> JsonDict | None:
        concept = _opt_dict(res, "medicationCodeableConcept", ref)
        if concept is not None:
            return concept
        keys = _reference_keys(res.get("medicationReference"), ref)
        if not keys:
            return None
        if keys[0].startswith("#"):
            for contained in _dicts(res, "contained", ref):
                if contained.get("resourceType") == "Medication" and contained.get("id") == keys[0][1:]:
                    return _opt_dict(contained, "code", ref)
            return None
        medication = self.by_key.get(keys[0])
        if medication is None or medication.get("resourceType") != "Medication":
            return None
        return _opt_dict(medication, "code", keys[0])

    def _classify_cached(self, concept: JsonDict, ref: str) -> tuple[str, IciClass | None, bool] | None:
        """`_classify_drug`, remembered per patient: a patient's doses repeat one concept.

        The key keeps exactly what the classification reads (text, and system/code/display of each
        coding, anything not a string as None, which the classification ignores alike); a concept
        whose `coding` is malformed is classified (and reported) without the cache.
        """
        codings = concept.get("coding")
        text = concept.get("text")
        if type(text) is not str:
            text = _text(text)
        key: tuple[object, ...] = (text,)
        if codings is not None:  # then (text, system, code, display of each coding in turn)
            if type(codings) is not list:
                return self._classify_drug(concept, ref)
            items: list[object] = [text]
            for c in codings:
                if type(c) is not dict:
                    return self._classify_drug(concept, ref)
                system, code, display = c.get("system"), c.get("code"), c.get("display")
                items.append(system if type(system) is str else _text(system))
                items.append(code if type(code) is str else _text(code))
                items.append(display if type(display) is str else _text(display))
            key = tuple(items)
        classes = self.drug_classes
        if key in classes:
            return classes[key]
        found = classes[key] = self._classify_drug(concept, ref)
        return found

    def _classify_drug(self, concept: JsonDict, ref: str) -> tuple[str, IciClass | None, bool] | None:
        """(drug, class, is_ici) for an ICI or another antineoplastic; None otherwise.

        The drug ValueSets decide (`drug_terminology.py`); a drug recognised only by its name, or
        only by its ATC class, is reported with the codes that the lists do not hold."""
        match = self.mapping.drugs.classify(_codings(concept, ref), concept.get("text"))
        if match is None:
            return None
        drug = match.drug
        shown = ", ".join(map(str, match.unlisted))
        if match.basis is MatchBasis.ATC_CLASS:
            kind = "a PD-1/PD-L1 inhibitor of unknown class" if drug.is_ici else "another antineoplastic"
            message = f"antineoplastic code {shown} is not in the drug ValueSets; read as {kind}"
            self.issue("warning", "unlisted-antineoplastic-code", message, ref)
        elif match.unlisted:
            message = f"{drug.name} recognised by name; code {shown} is not in the drug ValueSets"
            self.issue("information", "drug-code-not-listed", message, ref)
        return drug.name, drug.ici_class, drug.is_ici

    def _drug_record(
        self, res: JsonDict, ref: str, on: date | None, administered: bool, dose: bool = False
    ) -> None:
        concept = self._medication_concept(res, ref)
        if concept is None:
            return
        drug = self._classify_cached(concept, ref)
        if drug is None:
            return
        if on is None:
            raise _Unusable("no-date", "antineoplastic medication without a date")
        line = _extension_value(res, codes.EXT_LINE_OF_THERAPY, "valuePositiveInt", ref)
        if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 1):
            raise MalformedResource(ref, "line-of-therapy is not a positive integer")
        name, cls, is_ici = drug
        self.drugs.append(_DrugRecord(on, name, cls, is_ici, administered, line, ref, dose))

    def _read_administration(self, res: JsonDict, ref: str) -> None:
        if _status(res) not in ADMINISTRATION_STATUSES:
            self._status_skipped(res, ref)
            return
        dose = _status(res) in DOSE_STATUSES
        self._drug_record(res, ref, _effective_date(res, ref), administered=True, dose=dose)

    def _read_request(self, res: JsonDict, ref: str) -> None:
        if _status(res) not in REQUEST_STATUSES:
            self._status_skipped(res, ref)
            return
        starts: list[date] = []
        for dosage in _dicts(res, "dosageInstruction", ref):
            timing = _opt_dict(dosage, "timing", ref) or {}
            repeat = _opt_dict(timing, "repeat", ref) or {}
            bounds = _opt_dict(repeat, "boundsPeriod", ref) or {}
            start = _date_of(bounds, "start", ref)
            if start is not None:
                starts.append(start)
        on = min(starts) if starts else _date_of(res, "authoredOn", ref)
        self._drug_record(res, ref, on, administered=False)

    def _status_skipped(self, res: JsonDict, ref: str) -> None:
        status = _status(res)
        shown = status if isinstance(status, str) else "missing"
        self.issue("information", "status-not-usable", f"status {shown!r} is not used", ref)

    # -- imaging ---------------------------------------------------------------------------------
    def _read_study(self, res: JsonDict, ref: str) -> None:
        if _status(res) in STUDY_STATUSES_SKIPPED:
            self._status_skipped(res, ref)
            return
        started = _date_of(res, "started", ref)
        if started is None:
            raise _Unusable("no-study-date", "ImagingStudy without a start date")
        parts = _ScanParts(started, ref)
        for key in _keys_of("ImagingStudy", res["id"]):
            self.studies[key] = parts
        self.used_refs.append(ref)

    def _read_body_structure(self, res: JsonDict, ref: str) -> None:
        keys = _keys_of("BodyStructure", res["id"])
        for key in keys:
            self.lesion_by_key[key] = None  # known but unusable until proven otherwise
        if res.get("active") is False:
            raise _Unusable("lesion-inactive", "BodyStructure is inactive", "information")
        lesion_id = next(
            (
                i["value"]
                for i in _dicts(res, "identifier", ref)
                if isinstance(i.get("value"), str) and i["value"]
            ),
            None,
        )
        if lesion_id is None:
            raise _Unusable("lesion-without-identifier", "BodyStructure without an identifier value")
        location = _opt_dict(res, "location", ref)
        location_code = _code_in(location, codes.SNOMED, ref)
        node_ext = _extension_value(res, codes.EXT_LYMPH_NODE, "valueBoolean", ref)
        is_node = node_ext is True or location_code == codes.SNOMED_LYMPH_NODE
        if location_code is not None:
            organ = codes.ORGAN_BY_CODE.get(location_code, location_code)
        elif location is not None and isinstance(location.get("text"), str) and location["text"]:
            organ = location["text"].strip().lower()
        else:
            organ = "lymph-node" if is_node else "unknown"
            if not is_node:
                self.issue("warning", "lesion-without-location", "BodyStructure without a location", ref)
        role_coding = _extension_value(res, codes.EXT_LESION_ROLE, "valueCoding", ref)
        role: LesionRole | None = None
        if isinstance(role_coding, dict) and role_coding.get("code") is not None:
            try:
                role = LesionRole(role_coding["code"])
            except ValueError:
                self.issue("warning", "unknown-lesion-role", "lesion role code is not in lesion-role", ref)
        lesion = _new_lesion(lesion_id, organ, is_node, role, ref)
        existing = self.lesion_by_id.get(lesion_id)
        if existing is not None:
            self.issue("warning", "duplicate-lesion-identifier", "lesion identifier used twice", ref)
            lesion = existing
        else:
            self.lesions.append(lesion)
            self.lesion_by_id[lesion_id] = lesion
        for key in keys:
            self.lesion_by_key[key] = lesion
        self.used_refs.append(ref)

    # -- observations ----------------------------------------------------------------------------
    def _read_observation(self, res: JsonDict, ref: str, own: str | _NotRead | None = NOT_READ) -> None:
        code = _opt_dict(res, "code", ref)
        kind = self._observation_kind(code, ref, own)
        if kind is None:
            return
        if _status(res) not in OBSERVATION_STATUSES:
            self._status_skipped(res, ref)
            return
        on = _effective_date(res, ref)
        if kind == "measurement":
            self._read_measurement(res, ref, on)
        elif kind == "non-target":
            self._read_non_target(res, ref, on)
        elif on is None:
            raise _Unusable("no-date", "Observation without an effective date")
        elif isinstance(kind, LabKind):
            self._read_lab(res, ref, on, kind)
        else:
            self._read_covariate(res, ref, on, kind)

    def _observation_kind(
        self, code: JsonDict | None, ref: str, own: str | _NotRead | None = NOT_READ
    ) -> str | LabKind | None:
        """`own`: the own-system code when `_note_contact` already read it (same call, same result)."""
        if isinstance(own, _NotRead):
            own = _code_in(code, codes.CS_ONCORESPONSE, ref)
        if own == codes.CODE_NON_TARGET_STATUS:
            return "non-target"
        if own == codes.CODE_PDL1_TPS:
            return "pdl1"
        loinc = _code_in(code, codes.LOINC, ref)
        if loinc == codes.LOINC_TUMOR_SIZE:
            return "measurement"
        if loinc in _LAB_BY_LOINC:
            return _LAB_BY_LOINC[loinc]
        return _COVARIATE_BY_LOINC.get(loinc or "")

    def _lesion_of(self, res: JsonDict, ref: str) -> Lesion:
        for key in _reference_keys(res.get("focus"), ref):
            if key in self.lesion_by_key:
                lesion = self.lesion_by_key[key]
                if lesion is None:
                    raise _Unusable("lesion-not-usable", "focus BodyStructure could not be used")
                return lesion
        raise _Unusable("lesion-not-found", "focus BodyStructure is not among the patient's lesions")

    def _scan_for(self, res: JsonDict, ref: str, on: date | None) -> _ScanParts:
        derived_keys = _reference_keys(res.get("derivedFrom"), ref)
        derived = [k for k in derived_keys if k in self.studies]
        if derived:
            return self.studies[derived[0]]
        if any(k.startswith("ImagingStudy/") for k in derived_keys):
            self.issue("information", "study-not-found", "derivedFrom study not usable; matched by date", ref)
        if on is None:
            raise _Unusable("no-date", "Observation has neither an ImagingStudy nor an effective date")
        same_day = sorted(
            (p for p in self.studies.values() if p.study_date == on and p.ref is not None),
            key=lambda p: p.ref or "",
        )
        if same_day:
            return same_day[0]
        key = f"date:{on.isoformat()}"
        if key not in self.studies:
            self.studies[key] = _ScanParts(on, None)
        self.issue("warning", "measurement-without-study", "no ImagingStudy for this reading", ref)
        return self.studies[key]

    def _pathology_method(self, res: JsonDict, ref: str) -> str | None:
        """What makes a TumorSize a pathology measurement (docs/fhir/mcode.md), or None: a
        `specimen`, a specimen examination `method`, or a `laboratory` category without `imaging`
        and without an ImagingStudy."""
        if res.get("specimen") is not None:
            return "measured on a specimen"
        if _code_in(_opt_dict(res, "method", ref), codes.SNOMED, ref) in codes.SNOMED_PATHOLOGY_METHODS:
            return "method is a gross examination of a specimen"
        categories = {
            c.get("code") for concept in _dicts(res, "category", ref) for c in _codings(concept, ref)
        }
        if "laboratory" in categories and "imaging" not in categories and not res.get("derivedFrom"):
            return "category laboratory, no imaging study"
        return None

    def _read_measurement(self, res: JsonDict, ref: str, on: date | None) -> None:
        pathology = self._pathology_method(res, ref)
        if pathology is not None:  # RECIST 1.1 section 3.2: imaging (or caliper) measurements only
            raise _Unusable(
                "pathology-measurement-not-recist",
                f"tumour size from pathology ({pathology}); RECIST 1.1 uses imaging measurements only",
                "warning",
            )
        lesion = self._lesion_of(res, ref)
        long_mm: Decimal | None = None
        short_mm: Decimal | None = None
        others: list[str] = []
        for component in _dicts(res, "component", ref):
            comp_code = _opt_dict(component, "code", ref)
            quantity = _opt_dict(component, "valueQuantity", ref)
            if _has_code(comp_code, codes.LOINC, codes.LOINC_LONGEST_DIAMETER, ref) and quantity is not None:
                long_mm = _quantity(quantity, _MM_PER_UNIT, ref, "longest diameter")
            elif (
                _has_code(comp_code, codes.CS_ONCORESPONSE, codes.CODE_SHORT_AXIS, ref)
                and quantity is not None
            ):
                short_mm = _quantity(quantity, _MM_PER_UNIT, ref, "short axis")
            elif (
                dimension := _code_in(comp_code, codes.LOINC, ref)
            ) in codes.LOINC_OTHER_DIMENSIONS and quantity is not None:
                size = _quantity(quantity, _MM_PER_UNIT, ref, f"dimension {dimension}")
                others.append(f"{dimension} {size.normalize():f} mm")
        if others:
            shown = ", ".join(others)
            self.issue(
                "information",
                "tumor-size-other-dimensions",
                f"other dimensions not used by RECIST 1.1: {shown}",
                ref,
            )
        if (long_mm is not None and long_mm < 0) or (short_mm is not None and short_mm < 0):
            raise MalformedResource(ref, "negative diameter")
        flag = self._flag(res, ref)
        if long_mm is None and short_mm is None and flag is None:
            self.issue("warning", "measurement-without-value", "lesion not measured at this reading", ref)
        scan = self._scan_for(res, ref, on)
        scan.measurements.append(LesionMeasurement(lesion.lesion_id, long_mm, short_mm, flag, ref))
        self.used_refs.append(ref)

    def _flag(self, res: JsonDict, ref: str) -> MeasurementFlag | None:
        for concept in _dicts(res, "interpretation", ref):
            code = _code_in(concept, codes.CS_MEASUREMENT_FLAG, ref)
            if code is None:
                continue
            try:
                return MeasurementFlag(code)
            except ValueError:
                self.issue("warning", "unknown-measurement-flag", "interpretation code not understood", ref)
        return None

    def _read_non_target(self, res: JsonDict, ref: str, on: date | None) -> None:
        lesion = self._lesion_of(res, ref)
        code = _code_in(_opt_dict(res, "valueCodeableConcept", ref), codes.CS_NON_TARGET_STATUS, ref)
        try:
            state = NonTargetState(code or "")
        except ValueError:
            raise _Unusable("unknown-non-target-status", "value is not a non-target-status code") from None
        scan = self._scan_for(res, ref, on)
        scan.non_target.append(NonTargetAssessment(lesion.lesion_id, state, ref))
        self.used_refs.append(ref)

    def _read_lab(self, res: JsonDict, ref: str, on: date, kind: LabKind) -> None:
        quantity = _opt_dict(res, "valueQuantity", ref)
        if quantity is None:
            raise _Unusable("no-value", "laboratory result without a quantity", "warning")
        value = _quantity(quantity, _LAB_UNITS[kind], ref, kind.value)
        self.labs.append(LabResult(kind, on, value, ref))
        self.used_refs.append(ref)

    def _read_covariate(self, res: JsonDict, ref: str, on: date, kind: str) -> None:
        value: Any
        if kind == "ecog":
            value = _opt(res, "valueInteger", int, ref)
            if value is None:
                concept = _opt_dict(res, "valueCodeableConcept", ref)
                digits = [c.get("code") for c in _codings(concept, ref)]
                value = next((int(d) for d in digits if isinstance(d, str) and d.isdigit()), None)
            if value is None or not 0 <= value <= 5:
                raise _Unusable("no-value", "ECOG without a value 0-5", "warning")
        elif kind == "smoking":
            concept = _opt_dict(res, "valueCodeableConcept", ref)
            snomed = _code_in(concept, codes.SNOMED, ref)
            value = codes.SMOKING_STATUS_BY_SNOMED.get(snomed or "")
            if value is None:
                raise _Unusable("unknown-code", "smoking status code not understood", "warning")
        else:
            quantity = _opt_dict(res, "valueQuantity", ref)
            if quantity is None:
                raise _Unusable("no-value", f"{kind} without a quantity", "warning")
            units = {"kg/m2": Decimal(1)} if kind == "bmi" else {"%": Decimal(1)}
            value = _quantity(quantity, units, ref, kind)
        self.covariates[kind].append(_Dated(on, value, ref))

    # -- procedures ------------------------------------------------------------------------------
    def _read_procedure(self, res: JsonDict, ref: str) -> None:
        code = _opt_dict(res, "code", ref)
        snomed = _code_in(code, codes.SNOMED, ref)
        meta = _opt_dict(res, "meta", ref) or {}
        profiles = _opt(meta, "profile", list, ref) or []
        if snomed in self.mapping.radiotherapy_codes or codes.MCODE_RADIOTHERAPY_COURSE_SUMMARY in profiles:
            kind = LOCAL_TREATMENT_RADIOTHERAPY
        elif snomed in self.mapping.ablation_codes:
            kind = LOCAL_TREATMENT_ABLATION
        else:
            return
        if _status(res) not in PROCEDURE_STATUSES:
            self._status_skipped(res, ref)
            return
        on = _effective_date(res, ref, prefix="performed")
        if on is None:
            raise _Unusable("no-date", "local treatment without a date")
        self.treatments.append(LocalTreatment(on, kind, ref))
        self.used_refs.append(ref)

    # -- assembly --------------------------------------------------------------------------------
    def _ici_start(self) -> tuple[_DrugRecord, bool, int | None] | None:
        icis = [d for d in self.drugs if d.is_ici and d.administered] or [
            d for d in self.drugs if d.is_ici and not d.administered
        ]
        if not icis:
            return None
        icis.sort(key=_ON_AND_REF)
        first = icis[0]
        window = timedelta(days=self.mapping.combination_window_days)
        partners: list[_DrugRecord] = []
        if window >= timedelta(0):  # abs(d.on - first.on) <= window, as bounds clipped to the dates
            low = first.on - min(window, first.on - date.min)
            high = first.on + min(window, date.max - first.on)
            partners = [
                d for d in self.drugs if low <= d.on <= high and (not d.is_ici or d.name != first.name)
            ]
        line_record = next((d for d in icis if d.line_of_therapy is not None), None)
        self.used_refs.extend(d.ref for d in (first, *partners, *([line_record] if line_record else [])))
        line = line_record.line_of_therapy if line_record else None
        combination = bool(partners)
        return first, combination, line

    def _primary_cancer(self) -> tuple[bool, date | None, TumourType, str] | None:
        """The cancer Condition the tumour type is read from (mCODE primary cancer first)."""
        if not self.conditions:
            return None
        ranked = sorted(
            self.conditions,
            key=lambda c: (not c[0], c[2] is TumourType.OTHER, c[1] or date.max, c[3]),
        )
        best = ranked[0]
        if any(c[0] == best[0] and c[2] not in (best[2], TumourType.OTHER) for c in ranked[1:]):
            self.issue("warning", "conflicting-tumour-type", "primary cancers map to several types", best[3])
        return best

    def _pre_treatment(self, kind: str, start: date) -> Any:
        before = [d for d in self.covariates[kind] if d.on <= start]
        if not before:
            return None
        latest = max(before, key=lambda d: (d.on, d.ref))
        self.used_refs.append(latest.ref)
        return latest.value

    def _check_baseline_targets(self, start: date) -> None:
        """A declared target measured 0 mm before the ICI start is impossible: RECIST 1.1 section
        3.1 lets only measurable lesions (>= 10 mm, nodes >= 15 mm short axis) be targets, and a
        lesion of 0 mm before treatment is no lesion. The reading is kept (the rules then leave the
        lesion out of the baseline); the issue names it (docs/fhir/data-integrity.md)."""
        for parts in {id(p): p for p in self.studies.values()}.values():
            if parts.study_date > start:
                continue
            for m in parts.measurements:
                lesion = self.lesion_by_id.get(m.lesion_id)
                if lesion is None or lesion.role is not LesionRole.TARGET:
                    continue
                size = m.short_axis_mm if lesion.is_lymph_node else m.long_axis_mm
                if size is not None and size == 0:
                    axis = "short axis" if lesion.is_lymph_node else "longest diameter"
                    self.issue(
                        "error",
                        "impossible-baseline-value",
                        f"target lesion {m.lesion_id}: {axis} 0 mm on {parts.study_date.isoformat()}, before "
                        f"the treatment start {start.isoformat()}; a target lesion is measurable at baseline",
                        m.ref,
                    )

    def _assemble(self) -> PatientInput:
        ref = PatientRef(self.patient_id)
        if self.conflicts:  # `_duplicate`: which resource is meant cannot be known
            return PatientInput(ref, None, tuple(self.issues))
        cancer = self._primary_cancer()
        tumour = cancer[2] if cancer else None
        start = self._ici_start()
        if start is None:
            self.issue(
                "error",
                "no-ici-start",
                "no PD-1/PD-L1 inhibitor administration or request",
                f"Patient/{self.patient_id}",
            )
            return PatientInput(ref, None, tuple(self.issues))
        first, combination, line = start
        self._check_baseline_targets(first.on)
        patient = self.patient or {}
        birth: date | None
        try:
            birth = _date_of(patient, "birthDate", f"Patient/{self.patient_id}")
        except MalformedResource:
            birth = None
        gender = patient.get("gender")
        organisation = patient.get("managingOrganization")
        institution = organisation.get("display") if isinstance(organisation, dict) else None
        radiotherapy_before = any(
            t.kind == LOCAL_TREATMENT_RADIOTHERAPY and t.performed_on < first.on for t in self.treatments
        )
        profile = _new_profile(
            sex=gender if isinstance(gender, str) else None,
            birth_date=birth,
            tumour_type=tumour,
            ici_drug=first.name,
            ici_class=first.ici_class,
            combination=combination,
            line_of_therapy=line,
            ecog=self._pre_treatment("ecog", first.on),
            bmi=self._pre_treatment("bmi", first.on),
            smoking=self._pre_treatment("smoking", first.on),
            pdl1_tps_pct=self._pre_treatment("pdl1", first.on),
            prior_radiotherapy=True if radiotherapy_before else None,
            institution=institution if isinstance(institution, str) else None,
        )
        unique_parts = {id(p): p for p in self.studies.values()}.values()
        scans = tuple(
            _new_scan(p.study_date, tuple(p.measurements), tuple(p.non_target), p.ref)
            for p in sorted(unique_parts, key=lambda p: (p.study_date, p.ref or ""))
        )
        timeline = PatientTimeline(
            patient_id=self.patient_id,
            treatment_start=first.on,
            lesions=tuple(self.lesions),
            scans=scans,
            death_date=self.death_date,
            last_contact=max(self.contact_dates, default=None),
            labs=tuple(sorted(self.labs, key=_LAB_ORDER)),  # every ref is a "Type/id" here: no `or ""`
            local_treatments=tuple(sorted(self.treatments, key=lambda t: (t.performed_on, t.ref or ""))),
            profile=profile,
            source_refs=tuple(dict.fromkeys(self.used_refs)),
            ici_administration_dates=tuple(sorted({d.on for d in self.drugs if d.is_ici and d.dose})),
        )
        return PatientInput(
            ref, timeline, tuple(self.issues), primary_cancer_ref=cancer[3] if cancer else None
        )


def _content(resource: object) -> object:
    """A resource without its `meta`, for telling duplicates apart (typed ones as their dict)."""
    if isinstance(resource, typed.TypedResource):
        try:
            resource = resource.as_dict()
        except MalformedResource:
            return resource  # unreadable: never equal to a readable copy
    if isinstance(resource, dict):
        return {k: v for k, v in resource.items() if k != "meta"}
    return resource


_ON_AND_REF: Final = attrgetter("on", "ref")
_LAB_ORDER: Final = attrgetter("taken_on", "kind", "ref")
_Handler = Callable[[_PatientMapper, JsonDict, str], None]
# Module level, not per mapper: bound methods stored on the mapper would make every mapper a
# reference cycle (mapper -> dict -> bound method -> mapper) that only the cyclic GC frees, keeping
# each patient's parsed resources alive after the call and making the collector walk them.
_HANDLERS: Final[Mapping[str, _Handler]] = MappingProxyType(
    {
        "Patient": _PatientMapper._read_patient,
        "Condition": _PatientMapper._read_condition,
        "MedicationAdministration": _PatientMapper._read_administration,
        "MedicationRequest": _PatientMapper._read_request,
        "ImagingStudy": _PatientMapper._read_study,
        "BodyStructure": _PatientMapper._read_body_structure,
        "Procedure": _PatientMapper._read_procedure,
    }
)


def patient_input(
    patient_id: str, resources: Iterable[object], mapping: InboundMapping = DEFAULT_MAPPING
) -> PatientInput:
    """Map one patient's resources to a `PatientInput` (contract section 1).

    `resources` (JSON dicts or `typed.TypedResource`s) are everything read for the patient, in
    any order; resources of other types only count towards `last_contact`. Never raises for bad
    data: every resource that cannot be used is one `DataIssue` naming it, and the rest is kept.
    """
    return _PatientMapper(patient_id, mapping).run(resources)


# --- bundles of several patients (POST /$assess) ------------------------------------------------
_CONTRACT_TYPES: Final = frozenset(
    {
        "Condition",
        "MedicationAdministration",
        "MedicationRequest",
        "ImagingStudy",
        "BodyStructure",
        "Observation",
        "Procedure",
    }
)


def patient_of(resource: JsonDict | typed.TypedResource) -> str | None:
    """Patient id a resource belongs to (`subject`, else `patient`); None when it names none."""
    if isinstance(resource, typed.TypedResource):
        for value in (resource.subject, resource.patient):
            if value is not None and value.reference is not None:
                return _patient_id_of_reference(value.reference)
        return None
    for key in ("subject", "patient"):
        value = resource.get(key)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return _patient_id_of_reference(value["reference"])
    return None


@dataclass(frozen=True, slots=True)
class BundlePatients:
    """A Bundle split by patient: each patient's resources (references resolved), the input's own
    form of each local `Type/id` (`references.ResolvedBundle.output_references`), and the issues."""

    groups: dict[str, list[JsonDict]]
    issues: list[DataIssue]
    output_references: Mapping[str, str]


def bundle_patients(bundle: object) -> BundlePatients:
    """Split a Bundle of one or more patients' resources by patient id.

    References are resolved first by `references.resolve_bundle` (FHIR R4 rules: fullUrl,
    relative to the entry's base, versioned, contained, logical), so every reference the mapping
    reads is `Type/id` of an entry, or gone with an issue naming it. A resource finds its patient
    through `subject` (`patient` for BodyStructure, its own id for the Patient). Medication
    resources go to every patient whose medication records reference them. Resources of the
    contract without a patient are reported; other resource types without one are ignored.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        issue = DataIssue("error", "malformed-bundle", "body is not a FHIR Bundle", None)
        return BundlePatients({}, [issue], {})
    if bundle.get("entry") is not None and not isinstance(bundle.get("entry"), list):
        issue = DataIssue("error", "malformed-bundle", "Bundle.entry is not a list", None)
        return BundlePatients({}, [issue], {})
    resolved = resolve_bundle(bundle)
    issues = list(resolved.issues)
    groups: dict[str, list[JsonDict]] = {}
    medications: dict[str, JsonDict] = {}
    for entry in resolved.entries:
        resource = entry.resource
        rtype = resource["resourceType"]
        if rtype == "Medication":
            medications.setdefault(entry.key, resource)
            continue
        patient_id = resource["id"] if rtype == "Patient" else patient_of(resource)
        if patient_id is None:
            if rtype in _CONTRACT_TYPES:
                issues.append(
                    DataIssue("warning", "no-patient-reference", "resource without a patient", entry.key)
                )
            continue
        groups.setdefault(patient_id, []).append(resource)
    if medications:
        for members in groups.values():
            wanted = {
                r["medicationReference"]["reference"]
                for r in members
                if isinstance(r.get("medicationReference"), dict)
                and isinstance(r["medicationReference"].get("reference"), str)
            }
            members.extend(m for key, m in medications.items() if key in wanted)
    forms = {key: form for key, form in resolved.output_references.items() if key != form}
    return BundlePatients(groups, issues, forms)


def group_bundle_by_patient(bundle: object) -> tuple[dict[str, list[JsonDict]], list[DataIssue]]:
    """`bundle_patients` without the input's reference forms (groups, issues)."""
    found = bundle_patients(bundle)
    return found.groups, found.issues
