"""`PatientAssessment` -> FHIR Observations, Provenance, OperationOutcome (docs/fhir-contract.md section 2).

Resources are built as plain JSON dicts (fast; tests validate each one with the R4B models),
with codes and canonical URLs from `codes.py` only. Every Observation carries `meta.profile`,
`subject`, `status` `final`, category `imaging`, a `code` from `CS_ONCORESPONSE`, a value from
the matching code system, the components of the contract, `derivedFrom` the inputs it used,
one rule-trace extension per rule id, and a deterministic `identifier`.

Decisions (all [P]; other engineers must match them):

- Identifier value = first 32 hex digits of SHA-256 over
  ``patient_id, kind, criterion, definition, date`` joined with U+001F (`assessment_identifier`),
  nothing else, so a re-run finds the same resource. `kind` is the Observation code, qualified
  by the lesion id for LesionResponse (``lesion-response/<lesion_id>``) and by the finding for
  AtypicalResponse (``atypical-response/DR``); `criterion` is ``recist1.1``/``irecist`` for
  timepoint and best responses, else empty; `definition` is the atypical-response definition,
  ``confirmation-required``/``no-confirmation`` for best responses, else empty; `date` is the
  timepoint date, empty for BestOverallResponse and ResponseGroup (one per patient and
  criterion, updated as follow-up grows). The timepoint index is deliberately not part of it: an
  added earlier scan renumbers timepoints but does not change their dates.
- `fullUrl` of each Observation = ``urn:uuid:`` + a UUID made from its identifier
  (`observation_full_url`), so Observations can reference each other inside one Bundle
  (BestOverallResponse -> its timepoint responses, AtypicalResponse -> its LesionResponses,
  ResponseGroup -> best response and atypical findings).
- Recist11TimepointResponse's value is `TimepointResult.reported` (the FAQ's continued-PR
  reading); the strict per-timepoint value differs only in the rule traces. After the first PD
  the value is PD and the component `post-progression` (true) marks the timepoint
  (docs/rules/recist-1.1.md: RECIST 1.1 has no response after progression).
- AtypicalResponse for HPD adds the kinetics as Quantity components (TGR and ΔTGR in `%/mo`, TGK
  in `mm/mo`, ratios in `1`), the reason the definition is met (`definition-reason`) and the
  dates of the three reference scans (docs/rules/hyperprogression.md).
- Decimals: percentages are rounded half-even to 0.01 %; millimetres are emitted as given.
  Thresholds were decided by the engine on exact values; rounding here is for display only.
  A value the engine could not compute becomes the component's `dataAbsentReason`.
- CancerDiseaseStatus (mCODE STU4, docs/fhir/cancer-disease-status.md): one per iRECIST
  timepoint, after the ResponseGroup. It claims mCODE's profile, not ours: code LOINC 97509-4,
  no category, value the SNOMED trend of `disease_trend` (docs/rules/disease-status.md),
  evidence-type extension imaging, `focus` the primary cancer Condition when the input has one,
  `derivedFrom` the iRECIST timepoint response and any AtypicalResponse of the same date.
  Identifier `kind` ``cancer-disease-status``, criterion ``irecist``, the timepoint date.
- Provenance: `target` = every Observation (by fullUrl), `agent` = the service Device
  (`service_device`, identifier system `IDENTIFIER_DEVICE`, value ``oncoresponse-<version>``,
  participant type `assembler`), `entity` (role `source`) = the Patient, every input the
  Observations are derived from, and the timeline's `source_refs`, each once.

Speed (`benchmarks/ingest.py`): constant parts (codings of codes and values, category,
`meta`, `subject`, rule-trace extensions, `dataAbsentReason` and boolean components) are built
once and shared between the resources of a run, full URLs are cached per identifier, and
Decimals become JSON numbers without a string round trip. Shared parts are never changed here;
callers treat everything below a resource's top level as read-only (copy before changing it).
`tests/unit/fhir/test_outbound_golden.py` checks the output byte for byte against a plain
reference implementation of this contract.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Final

from service.adapters.fhir import codes
from service.adapters.fhir.references import input_reference_forms
from service.application.ports import PatientInput
from service.domain.disease_status import disease_trend
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    Criterion,
    DataIssue,
    ImmuneTimepointResult,
    LesionResult,
    PatientAssessment,
    RuleTrace,
    TimepointResult,
)

__all__ = [
    "assessment_bundle",
    "assessment_identifier",
    "device_full_url",
    "observation_full_url",
    "observations_for",
    "operation_outcome",
    "provenance_for",
    "service_device",
]

JsonDict = dict[str, Any]

_SEPARATOR: Final = "\x1f"
_PCT_STEP: Final = Decimal("0.01")
_MAX_FLOAT_DIGITS: Final = 15

_IMAGING_CATEGORY: Final = {
    "coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]
}
_RESPONSE_SYSTEM: Final = {
    Criterion.RECIST11: codes.CS_RECIST_RESPONSE,
    Criterion.IRECIST: codes.CS_IRECIST_RESPONSE,
}
_BOR_CODE: Final = {Criterion.RECIST11: codes.CODE_RECIST11_BOR, Criterion.IRECIST: codes.CODE_IRECIST_BOR}
# Hyperprogression metric (`atypical.hpd_metrics`) -> component code and UCUM unit (docs/rules/hyperprogression.md).
_HPD_METRIC_COMPONENTS: Final = {
    "tgr_ref_pct_per_month": (codes.COMP_TGR_REFERENCE, "%/mo"),
    "tgr_exp_pct_per_month": (codes.COMP_TGR_EXPERIMENTAL, "%/mo"),
    "delta_tgr_pct_per_month": (codes.COMP_DELTA_TGR, "%/mo"),
    "tgr_ratio": (codes.COMP_TGR_RATIO, "1"),
    "tgk_ref_mm_per_month": (codes.COMP_TGK_REFERENCE, "mm/mo"),
    "tgk_exp_mm_per_month": (codes.COMP_TGK_EXPERIMENTAL, "mm/mo"),
    "tgk_ratio": (codes.COMP_TGK_RATIO, "1"),
}
_SCAN_COMPONENTS: Final = {
    "pre-baseline": codes.COMP_PRE_BASELINE_SCAN,
    "baseline": codes.COMP_BASELINE_SCAN,
    "first-evaluation": codes.COMP_FIRST_EVALUATION_SCAN,
}

# DataIssue slug -> FHIR issue-type (http://hl7.org/fhir/issue-type); others: "processing".
_ISSUE_TYPE_BY_SLUG: Final[dict[str, str]] = {
    "malformed-resource": "structure",
    "malformed-bundle": "structure",
    "unit-not-convertible": "value",
    "unknown-lesion-role": "code-invalid",
    "unknown-measurement-flag": "code-invalid",
    "unknown-non-target-status": "code-invalid",
    "unknown-code": "code-invalid",
    "lesion-not-found": "not-found",
    "patient-not-found": "not-found",
    "study-not-found": "not-found",
    "no-ici-start": "incomplete",
    "no-baseline": "incomplete",
    "no-date": "incomplete",
    "no-study-date": "incomplete",
    "no-value": "incomplete",
    "lesion-without-identifier": "required",
}
_SEVERITIES: Final = frozenset({"fatal", "error", "warning", "information"})


# --- identity ----------------------------------------------------------------------------------
def assessment_identifier(
    patient_id: str, kind: str, criterion: str, definition: str, on: date | None
) -> str:
    """Identifier value of one written result: derived only from these five parts (see module doc)."""
    text = _SEPARATOR.join((patient_id, kind, criterion, definition, on.isoformat() if on else ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@lru_cache(maxsize=1 << 16)
def _urn(seed: str) -> str:
    """`urn:uuid:` + the first 16 bytes of SHA-256(seed) with the version-5 and RFC 4122 variant
    bits set, written like `str(uuid.UUID(bytes=..., version=5))` (without building a UUID)."""
    digest = bytearray(hashlib.sha256(seed.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def observation_full_url(observation: JsonDict) -> str:
    """`urn:uuid:` full URL of an Observation built here, derived from its identifier value."""
    return _urn(f"{codes.IDENTIFIER_ASSESSMENT}|{observation['identifier'][0]['value']}")


def device_full_url(version: str) -> str:
    return _urn(f"{codes.IDENTIFIER_DEVICE}|{_device_identifier_value(version)}")


def _device_identifier_value(version: str) -> str:
    return f"{codes.SERVICE_DEVICE_NAME}-{version}"


def service_device(version: str) -> JsonDict:
    """The Device that stands for this service (Provenance agent); conditionally created by identifier."""
    return {
        "resourceType": "Device",
        "identifier": [{"system": codes.IDENTIFIER_DEVICE, "value": _device_identifier_value(version)}],
        "status": "active",
        "deviceName": [{"name": codes.SERVICE_DEVICE_NAME, "type": "user-friendly-name"}],
        "version": [{"value": version}],
    }


# --- values --------------------------------------------------------------------------------------
def _json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number without changing its digits (at most 15 significant digits)."""
    if value.is_finite():
        whole = int(value)
        if whole == value:  # integral, zero included (-0 and 0.00 give 0)
            return whole
        if len(value.as_tuple().digits) <= _MAX_FLOAT_DIGITS:
            return float(value)
    if value.is_zero():
        return 0
    if value == value.to_integral_value():
        return int(value)
    digits = len(value.as_tuple().digits)
    if digits > _MAX_FLOAT_DIGITS:
        value = round(value, max(0, _MAX_FLOAT_DIGITS - value.adjusted() - 1))
    return float(value)


def _code(system: str, code: str) -> JsonDict:
    """A new CodeableConcept (the caller may change it); `_concept` for a shared one."""
    return {"coding": [{"system": system, "code": code}]}


_SHARED: Final[dict[tuple[str, ...], Any]] = {}
_SHARED_MAX: Final = 4096  # codes and rule ids are finite; the bound only guards against misuse


def _shared(key: tuple[str, ...], build: Any) -> Any:
    found = _SHARED.get(key)
    if found is None:
        found = build()
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[key] = found
    return found


def _concept(system: str, code: str) -> JsonDict:
    """The shared CodeableConcept of one code (read-only, see module doc)."""
    found: JsonDict | None = _SHARED.get(("concept", system, code))
    return found if found is not None else _shared(("concept", system, code), lambda: _code(system, code))


def _absent(reason: str) -> JsonDict:
    return {"dataAbsentReason": _concept(codes.DATA_ABSENT_REASON, reason)}


def _component(code: str, value: JsonDict) -> JsonDict:
    return {"code": _concept(codes.CS_ONCORESPONSE, code), **value}


def _absent_component(code: str, reason: str) -> JsonDict:
    """The shared component of a value the engine could not compute (read-only)."""
    found: JsonDict | None = _SHARED.get(("absent", code, reason))
    if found is not None:
        return found
    return _shared(("absent", code, reason), lambda: _component(code, _absent(reason)))  # type: ignore[no-any-return]


def _flag_component(code: str, value: bool) -> JsonDict:
    """The shared `valueBoolean` component (read-only)."""
    key = ("flag", code, "1" if value else "0")
    found: JsonDict | None = _SHARED.get(key)
    return found if found is not None else _shared(key, lambda: _component(code, {"valueBoolean": value}))


def _index_component(value: int) -> JsonDict:
    return {"code": _concept(codes.CS_ONCORESPONSE, codes.COMP_TIMEPOINT_INDEX), "valueInteger": value}


def _mm(code: str, value: Decimal | None) -> JsonDict:
    if value is None:
        return _absent_component(code, "unknown")
    return {
        "code": _concept(codes.CS_ONCORESPONSE, code),
        "valueQuantity": {"value": _json_number(value), "unit": "mm", "system": codes.UCUM, "code": "mm"},
    }


def _pct(code: str, value: Decimal | None) -> JsonDict:
    if value is None:
        return _absent_component(code, "not-applicable")
    rounded = value.quantize(_PCT_STEP, rounding=ROUND_HALF_EVEN)
    return {
        "code": _concept(codes.CS_ONCORESPONSE, code),
        "valueQuantity": {"value": _json_number(rounded), "unit": "%", "system": codes.UCUM, "code": "%"},
    }


def _coded(code: str, system: str, value: str | None) -> JsonDict:
    if value is None:
        return _absent_component(code, "not-applicable")
    return {"code": _concept(codes.CS_ONCORESPONSE, code), "valueCodeableConcept": _concept(system, value)}


def _references(refs: Iterable[str]) -> list[JsonDict]:
    return [{"reference": r} for r in dict.fromkeys(refs)]


def _trace(rule: str) -> JsonDict:
    found: JsonDict | None = _SHARED.get(("trace", rule))
    if found is not None:
        return found
    return _shared(("trace", rule), lambda: {"url": codes.EXT_RULE_TRACE, "valueString": rule})  # type: ignore[no-any-return]


def _traces(traces: Iterable[RuleTrace]) -> list[JsonDict]:
    return [_trace(rule) for rule in dict.fromkeys(t.rule for t in traces)]


def _meta(profile: str) -> JsonDict:
    found: JsonDict | None = _SHARED.get(("meta", profile))
    return found if found is not None else _shared(("meta", profile), lambda: {"profile": [profile]})


_CATEGORY: Final = [_IMAGING_CATEGORY]
_CANCER_DISEASE_STATUS_CODE: Final = {
    "coding": [
        {
            "system": codes.LOINC,
            "code": codes.LOINC_CANCER_DISEASE_STATUS,
            "display": codes.LOINC_CANCER_DISEASE_STATUS_DISPLAY,
        }
    ]
}
_EVIDENCE_IMAGING: Final = [
    {
        "url": codes.MCODE_EVIDENCE_TYPE_EXT,
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": codes.SNOMED,
                    "code": codes.SNOMED_EVIDENCE_IMAGING,
                    "display": codes.SNOMED_EVIDENCE_IMAGING_DISPLAY,
                }
            ]
        },
    }
]
# DiseaseTrend value -> the shared SNOMED CodeableConcept of ConditionStatusTrendVS.
_TREND_CONCEPTS: Final = {
    trend: {"coding": [{"system": codes.SNOMED, "code": code, "display": display}]}
    for trend, (code, display) in codes.SNOMED_CONDITION_TREND.items()
}


# --- Observations ----------------------------------------------------------------------------------
class _Builder:
    def __init__(self, assessment: PatientAssessment, patient: PatientInput) -> None:
        self.assessment = assessment
        self.patient_id = assessment.patient_id
        timeline = patient.timeline
        self.lesion_refs = {les.lesion_id: les.ref for les in timeline.lesions} if timeline else {}
        self.lesion_urls: dict[tuple[str, date], str] = {}
        self.timepoint_urls: dict[tuple[Criterion, date], str] = {}
        self.atypical_urls: dict[date, list[str]] = {}
        self.primary_cancer_ref = patient.primary_cancer_ref
        self.out: list[JsonDict] = []
        self.subject: JsonDict = {"reference": f"Patient/{self.patient_id}"}  # shared (read-only)

    def observation(
        self,
        *,
        profile: str,
        code: str,
        identity: tuple[str, str, str, date | None],
        value: JsonDict,
        effective: JsonDict,
        components: list[JsonDict],
        derived_from: Iterable[str],
        traces: Iterable[RuleTrace],
        extra: JsonDict | None = None,
    ) -> str:
        kind, criterion, definition, on = identity
        resource: JsonDict = {"resourceType": "Observation", "meta": _meta(profile)}
        extension = _traces(traces)
        if extension:
            resource["extension"] = extension
        value_id = assessment_identifier(self.patient_id, kind, criterion, definition, on)
        resource["identifier"] = [{"system": codes.IDENTIFIER_ASSESSMENT, "value": value_id}]
        resource["status"] = "final"
        resource["category"] = _CATEGORY
        resource["code"] = _concept(codes.CS_ONCORESPONSE, code)
        resource["subject"] = self.subject
        resource.update(effective)
        resource["valueCodeableConcept"] = value
        resource["component"] = components
        if extra:
            resource.update(extra)
        derived = _references(derived_from)
        if derived:
            resource["derivedFrom"] = derived
        self.out.append(resource)
        return _urn(f"{codes.IDENTIFIER_ASSESSMENT}|{value_id}")

    def lesion(self, result: LesionResult) -> None:
        focus = result.lesion_ref or self.lesion_refs.get(result.lesion_id)
        url = self.observation(
            profile=codes.PROFILE_LESION_RESPONSE,
            code=codes.CODE_LESION_RESPONSE,
            identity=(f"{codes.CODE_LESION_RESPONSE}/{result.lesion_id}", "", "", result.timepoint_date),
            value=_concept(codes.CS_LESION_RESPONSE, result.status.value),
            effective={"effectiveDateTime": result.timepoint_date.isoformat()},
            components=[
                _mm(codes.COMP_DIAMETER_MM, result.diameter_mm),
                _pct(codes.COMP_CHANGE_FROM_BASELINE_PCT, result.change_from_baseline_pct),
                _pct(codes.COMP_CHANGE_FROM_NADIR_PCT, result.change_from_nadir_pct),
                _index_component(result.timepoint_index),
            ],
            derived_from=result.source_refs,
            traces=(result.trace,),
            extra={"focus": [{"reference": focus}]} if focus else None,
        )
        self.lesion_urls[(result.lesion_id, result.timepoint_date)] = url

    def _sums(self, tp: TimepointResult | ImmuneTimepointResult) -> list[JsonDict]:
        return [
            _flag_component(codes.COMP_NEW_LESION_PRESENT, tp.new_lesion),
            _mm(codes.COMP_SUM_OF_DIAMETERS_MM, tp.sum_mm),
            _mm(codes.COMP_BASELINE_SUM_MM, tp.baseline_sum_mm),
            _mm(codes.COMP_NADIR_SUM_MM, tp.nadir_sum_mm),
            _pct(codes.COMP_CHANGE_FROM_BASELINE_PCT, tp.change_from_baseline_pct),
            _pct(codes.COMP_CHANGE_FROM_NADIR_PCT, tp.change_from_nadir_pct),
            _index_component(tp.index),
        ]

    def recist_timepoint(self, tp: TimepointResult) -> None:
        system = codes.CS_RECIST_RESPONSE
        components = [
            _coded(codes.COMP_TARGET_RESPONSE, system, tp.target.value if tp.target else None),
            _coded(codes.COMP_NON_TARGET_RESPONSE, system, tp.non_target.value if tp.non_target else None),
            *self._sums(tp),
        ]
        if tp.post_progression:  # after the first PD: PD carried forward, not a response
            components.append(_flag_component(codes.COMP_POST_PROGRESSION, True))
        self.timepoint_urls[(Criterion.RECIST11, tp.timepoint_date)] = self.observation(
            profile=codes.PROFILE_RECIST11_TIMEPOINT,
            code=codes.CODE_RECIST11_TPR,
            identity=(codes.CODE_RECIST11_TPR, Criterion.RECIST11.value, "", tp.timepoint_date),
            value=_concept(system, tp.reported.value),
            effective={"effectiveDateTime": tp.timepoint_date.isoformat()},
            components=components,
            derived_from=tp.source_refs,
            traces=tp.traces,
        )

    def immune_timepoint(self, tp: ImmuneTimepointResult) -> None:
        # Contract section 2: the components of the RECIST one "as above", in iRECIST terms (the
        # iRECIST Table 2 categories, `irecist-response` codes), plus the new-lesion target sum.
        system = codes.CS_IRECIST_RESPONSE
        components = [
            _coded(codes.COMP_TARGET_RESPONSE, system, tp.target.value if tp.target else None),
            _coded(codes.COMP_NON_TARGET_RESPONSE, system, tp.non_target.value if tp.non_target else None),
            *self._sums(tp),
            _mm(codes.COMP_NEW_LESION_TARGET_SUM_MM, tp.new_lesion_target_sum_mm),
        ]
        self.timepoint_urls[(Criterion.IRECIST, tp.timepoint_date)] = self.observation(
            profile=codes.PROFILE_IRECIST_TIMEPOINT,
            code=codes.CODE_IRECIST_TPR,
            identity=(codes.CODE_IRECIST_TPR, Criterion.IRECIST.value, "", tp.timepoint_date),
            value=_concept(codes.CS_IRECIST_RESPONSE, tp.overall.value),
            effective={"effectiveDateTime": tp.timepoint_date.isoformat()},
            components=components,
            derived_from=tp.source_refs,
            traces=tp.traces,
        )

    def best(self, best: BestResponse) -> str:
        code = _BOR_CODE[best.criterion]
        definition = "confirmation-required" if best.confirmation_required else "no-confirmation"
        timepoints = [
            url
            for (criterion, on), url in self.timepoint_urls.items()
            if criterion is best.criterion and best.period_start <= on <= best.period_end
        ]
        return self.observation(
            profile=codes.PROFILE_BEST_OVERALL_RESPONSE,
            code=code,
            identity=(code, best.criterion.value, definition, None),
            value=_concept(_RESPONSE_SYSTEM[best.criterion], best.response.value),
            effective={
                "effectivePeriod": {
                    "start": best.period_start.isoformat(),
                    "end": best.period_end.isoformat(),
                }
            },
            components=[_flag_component(codes.COMP_CONFIRMATION_REQUIRED, best.confirmation_required)],
            derived_from=timepoints,
            traces=(best.trace,),
        )

    def atypical(self, finding: AtypicalFinding) -> str:
        lesions = dict.fromkeys((*finding.growing_lesions, *finding.shrinking_lesions))
        members = [
            self.lesion_urls[(lesion_id, finding.timepoint_date)]
            for lesion_id in lesions
            if (lesion_id, finding.timepoint_date) in self.lesion_urls
        ]
        criterion = Criterion.IRECIST if finding.kind is AtypicalKind.PSPD else Criterion.RECIST11
        timepoint = self.timepoint_urls.get((criterion, finding.timepoint_date))
        definition = _code(codes.CS_RESPONSE_DEFINITION, finding.definition)
        definition["text"] = f"{finding.definition} {finding.definition_version}"
        components = [
            _component(codes.COMP_DEFINITION, {"valueCodeableConcept": definition}),
            _index_component(finding.timepoint_index),
        ]
        if finding.trigger is not None:
            components.append(_coded(codes.COMP_DR_TRIGGER, codes.CS_DR_TRIGGER, finding.trigger.value))
        if finding.overall_at_detection is not None:
            components.append(
                _coded(
                    codes.COMP_OVERALL_RESPONSE_AT_DETECTION,
                    codes.CS_RECIST_RESPONSE,
                    finding.overall_at_detection.value,
                )
            )
        if finding.kind is AtypicalKind.HPD:
            components.extend(_hpd_components(finding))
        url = self.observation(
            profile=codes.PROFILE_ATYPICAL_RESPONSE,
            code=codes.CODE_ATYPICAL_RESPONSE,
            identity=(
                f"{codes.CODE_ATYPICAL_RESPONSE}/{finding.kind.value}",
                "",
                finding.definition,
                finding.timepoint_date,
            ),
            value=_concept(codes.CS_ATYPICAL_RESPONSE, finding.kind.value),
            effective={"effectiveDateTime": finding.timepoint_date.isoformat()},
            components=components,
            derived_from=[*members, *([timepoint] if timepoint else [])],
            traces=(finding.trace,),
            extra={"hasMember": _references(members)} if members else None,
        )
        self.atypical_urls.setdefault(finding.timepoint_date, []).append(url)
        return url

    def disease_status(self, tp: ImmuneTimepointResult) -> None:
        """mCODE CancerDiseaseStatus of one iRECIST timepoint (see module doc)."""
        on = tp.timepoint_date
        value_id = assessment_identifier(
            self.patient_id, codes.KIND_CANCER_DISEASE_STATUS, Criterion.IRECIST.value, "", on
        )
        resource: JsonDict = {
            "resourceType": "Observation",
            "meta": _meta(codes.MCODE_CANCER_DISEASE_STATUS),
            "extension": _EVIDENCE_IMAGING,
            "identifier": [{"system": codes.IDENTIFIER_ASSESSMENT, "value": value_id}],
            "status": "final",
            "code": _CANCER_DISEASE_STATUS_CODE,
            "subject": self.subject,
        }
        if self.primary_cancer_ref:
            resource["focus"] = [{"reference": self.primary_cancer_ref}]
        resource["effectiveDateTime"] = on.isoformat()
        resource["valueCodeableConcept"] = _TREND_CONCEPTS[disease_trend(tp.overall)]
        derived = [self.timepoint_urls[(Criterion.IRECIST, on)], *self.atypical_urls.get(on, ())]
        resource["derivedFrom"] = _references(derived)
        self.out.append(resource)

    def group(self, derived: Sequence[str]) -> None:
        a = self.assessment
        dates = [tp.timepoint_date for tp in a.timepoints] + [tp.timepoint_date for tp in a.immune_timepoints]
        effective = max(dates, default=a.baseline_date or a.treatment_start)
        self.observation(
            profile=codes.PROFILE_RESPONSE_GROUP,
            code=codes.CODE_RESPONSE_GROUP,
            identity=(codes.CODE_RESPONSE_GROUP, "", "", None),
            value=_concept(codes.CS_RESPONSE_GROUP, a.response_group.value),
            effective={"effectiveDateTime": effective.isoformat()},
            components=[_flag_component(codes.COMP_ATYPICAL, a.is_atypical)],
            derived_from=derived,
            traces=a.traces,
        )


def _hpd_components(finding: AtypicalFinding) -> list[JsonDict]:
    """The kinetics (Quantity with UCUM units), the reason and the reference scans of an HPD finding."""
    out: list[JsonDict] = []
    for name, value in finding.metrics:
        code, unit = _HPD_METRIC_COMPONENTS[name]
        quantity = {"value": _json_number(value), "unit": unit, "system": codes.UCUM, "code": unit}
        out.append(_component(code, {"valueQuantity": quantity}))
    if finding.reason is not None:
        out.append(_component(codes.COMP_DEFINITION_REASON, {"valueString": finding.reason}))
    for role, day in finding.reference_scans:
        out.append(_component(_SCAN_COMPONENTS[role], {"valueDateTime": day.isoformat()}))
    return out


def observations_for(assessment: PatientAssessment, patient: PatientInput) -> list[JsonDict]:
    """All Observations of contract section 2 for one patient, in a stable order.

    LesionResponses, Recist11 and iRECIST timepoint responses, best overall responses
    (RECIST 1.1 without and with confirmation, iRECIST), AtypicalResponses, ResponseGroup,
    then one mCODE CancerDiseaseStatus per iRECIST timepoint.
    """
    builder = _Builder(assessment, patient)
    for lesion in assessment.lesions:
        builder.lesion(lesion)
    for tp in assessment.timepoints:
        builder.recist_timepoint(tp)
    for itp in assessment.immune_timepoints:
        builder.immune_timepoint(itp)
    group_inputs: list[str] = []
    for best in (
        assessment.best_response,
        assessment.best_response_confirmed,
        assessment.immune_best_response,
    ):
        if best is not None:
            url = builder.best(best)
            if best is assessment.best_response:
                group_inputs.append(url)
    for finding in assessment.atypical:
        group_inputs.append(builder.atypical(finding))
    builder.group(group_inputs)
    for itp in assessment.immune_timepoints:
        builder.disease_status(itp)
    return builder.out


# --- Provenance and OperationOutcome ----------------------------------------------------------------
def provenance_for(
    observations: Sequence[JsonDict],
    patient: PatientInput,
    *,
    device_reference: str,
    version: str,
    recorded: datetime,
    targets: Sequence[str] | None = None,
    activity: str = "CREATE",
) -> JsonDict:
    """Provenance of one patient's Observations (targets by their fullUrl; see module doc).

    `targets`: the target references when they are not the Observations' full URLs (the writer
    targets updated results by their server id); `activity`: the v3-DataOperation code.
    """
    if recorded.tzinfo is None:
        raise ValueError("Provenance.recorded must be timezone-aware")
    inputs: list[str] = [f"Patient/{patient.ref.patient_id}"]
    for observation in observations:
        inputs.extend(
            d["reference"]
            for d in observation.get("derivedFrom", ())
            if not d["reference"].startswith("urn:")
        )
    if patient.timeline is not None:
        inputs.extend(patient.timeline.source_refs)
    return {
        "resourceType": "Provenance",
        "target": [
            {"reference": t}
            for t in (targets if targets is not None else [observation_full_url(o) for o in observations])
        ],
        "recorded": recorded.isoformat(),
        "activity": _code("http://terminology.hl7.org/CodeSystem/v3-DataOperation", activity),
        "agent": [
            {
                "type": _code(codes.PROVENANCE_PARTICIPANT_TYPE, "assembler"),
                "who": {"reference": device_reference, "display": f"{codes.SERVICE_DEVICE_NAME} {version}"},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": r}} for r in dict.fromkeys(inputs)],
    }


def operation_outcome(issues: Iterable[DataIssue]) -> JsonDict:
    """OperationOutcome of data issues: slug in `details.coding`, message in `details.text`, ref in `diagnostics`."""
    items: list[JsonDict] = []
    for issue in dict.fromkeys(issues):
        severity = issue.severity if issue.severity in _SEVERITIES else "error"
        issue_type = _ISSUE_TYPE_BY_SLUG.get(
            issue.code, "informational" if severity == "information" else "processing"
        )
        item: JsonDict = {
            "severity": severity,
            "code": issue_type,
            "details": {
                "coding": [{"system": codes.CS_DATA_ISSUE, "code": issue.code}],
                "text": issue.message,
            },
        }
        if issue.ref:
            item["diagnostics"] = issue.ref
        items.append(item)
    if not items:
        items.append(
            {"severity": "information", "code": "informational", "details": {"text": "no data issues"}}
        )
    return {"resourceType": "OperationOutcome", "issue": items}


def assessment_bundle(
    results: Iterable[tuple[PatientAssessment, PatientInput]],
    issues: Iterable[DataIssue] = (),
    *,
    version: str,
    recorded: datetime,
) -> JsonDict:
    """The `collection` Bundle answered by `POST /$assess` (contract section 4); nothing is written.

    Entries: the service Device, each patient's Observations and Provenance, and one
    OperationOutcome with `issues` plus every result's input and assessment issues.
    """
    device_url = device_full_url(version)
    entries: list[JsonDict] = [{"fullUrl": device_url, "resource": service_device(version)}]
    all_issues: list[DataIssue] = list(issues)
    for assessment, patient in results:
        observations = observations_for(assessment, patient)
        entries.extend({"fullUrl": observation_full_url(o), "resource": o} for o in observations)
        provenance = provenance_for(
            observations, patient, device_reference=device_url, version=version, recorded=recorded
        )
        seed = f"provenance|{assessment.patient_id}|{recorded.isoformat()}"
        entries.append({"fullUrl": _urn(seed), "resource": provenance})
        if patient.reference_forms:  # a posted Bundle's own urn:uuid / absolute forms
            for entry in entries[-len(observations) - 1 :]:
                entry["resource"] = input_reference_forms(entry["resource"], patient.reference_forms)
        all_issues.extend(patient.issues)
        all_issues.extend(assessment.issues)
    entries.append(
        {"fullUrl": _urn(f"outcome|{recorded.isoformat()}"), "resource": operation_outcome(all_issues)}
    )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
