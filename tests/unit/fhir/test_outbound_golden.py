"""Outbound output is byte for byte what a plain implementation of the contract writes.

`outbound.py` is tuned for speed: shared constant sub-dicts, cached full URLs, Decimal
-> JSON number without a string round trip. Those tricks must not change one byte on the wire.
The oracle here is a deliberately plain reference of docs/fhir-contract.md section 2 and the
`outbound.py` module doc (fresh dicts everywhere, `uuid.UUID(..., version=5)` for full URLs,
`Decimal.is_zero`/`to_integral_value`/`as_tuple` for numbers), kept in this file instead of
hashes or stored output (project rule: no expected results copied from the code's own output).
It runs over a generated cohort of every trajectory, assessed by the real engine.

When the contract changes (a new component, say), change the reference in the same commit.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.inbound import patient_input
from service.adapters.fhir.outbound import (
    device_full_url,
    observation_full_url,
    observations_for,
    provenance_for,
)
from service.adapters.fhir.writer import Existing, transaction_bundle
from service.application.ports import PatientInput
from service.domain.engine import assess
from service.domain.results import AtypicalKind, Criterion, PatientAssessment, RuleTrace
from service.synthetic import Trajectory, generate_patient

JsonDict = dict[str, Any]
AS_OF = date(2026, 11, 1)
RECORDED = datetime(2026, 11, 1, 12, tzinfo=UTC)


# --- the plain reference ---------------------------------------------------------------------------
def ref_number(value: Decimal) -> int | float:
    if value.is_zero():
        return 0
    if value == value.to_integral_value():
        return int(value)
    if len(value.as_tuple().digits) > 15:
        value = round(value, max(0, 15 - value.adjusted() - 1))
    return float(value)


def ref_concept(system: str, code: str) -> JsonDict:
    return {"coding": [{"system": system, "code": code}]}


def ref_component(code: str, **value: Any) -> JsonDict:
    return {"code": ref_concept(codes.CS_ONCORESPONSE, code), **value}


# Hyperprogression: docs/rules/hyperprogression.md (metric, component code, UCUM unit).
REF_HPD_UNITS = {
    "tgr_ref_pct_per_month": (codes.COMP_TGR_REFERENCE, "%/mo"),
    "tgr_exp_pct_per_month": (codes.COMP_TGR_EXPERIMENTAL, "%/mo"),
    "delta_tgr_pct_per_month": (codes.COMP_DELTA_TGR, "%/mo"),
    "tgr_ratio": (codes.COMP_TGR_RATIO, "1"),
    "tgk_ref_mm_per_month": (codes.COMP_TGK_REFERENCE, "mm/mo"),
    "tgk_exp_mm_per_month": (codes.COMP_TGK_EXPERIMENTAL, "mm/mo"),
    "tgk_ratio": (codes.COMP_TGK_RATIO, "1"),
}
REF_SCANS = {
    "pre-baseline": codes.COMP_PRE_BASELINE_SCAN,
    "baseline": codes.COMP_BASELINE_SCAN,
    "first-evaluation": codes.COMP_FIRST_EVALUATION_SCAN,
}


def ref_hpd(f: Any) -> list[JsonDict]:
    out = []
    for name, value in f.metrics:
        code, unit = REF_HPD_UNITS[name]
        out.append(
            ref_component(
                code,
                valueQuantity={"value": ref_number(value), "unit": unit, "system": codes.UCUM, "code": unit},
            )
        )
    if f.reason is not None:
        out.append(ref_component(codes.COMP_DEFINITION_REASON, valueString=f.reason))
    out.extend(
        ref_component(REF_SCANS[role], valueDateTime=day.isoformat()) for role, day in f.reference_scans
    )
    return out


def ref_mm(code: str, value: Decimal | None) -> JsonDict:
    if value is None:
        return ref_component(code, dataAbsentReason=ref_concept(codes.DATA_ABSENT_REASON, "unknown"))
    quantity = {"value": ref_number(value), "unit": "mm", "system": codes.UCUM, "code": "mm"}
    return ref_component(code, valueQuantity=quantity)


def ref_pct(code: str, value: Decimal | None) -> JsonDict:
    if value is None:
        return ref_component(code, dataAbsentReason=ref_concept(codes.DATA_ABSENT_REASON, "not-applicable"))
    rounded = ref_number(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
    return ref_component(
        code, valueQuantity={"value": rounded, "unit": "%", "system": codes.UCUM, "code": "%"}
    )


def ref_coded(code: str, system: str, value: str | None) -> JsonDict:
    if value is None:
        return ref_component(code, dataAbsentReason=ref_concept(codes.DATA_ABSENT_REASON, "not-applicable"))
    return ref_component(code, valueCodeableConcept=ref_concept(system, value))


def ref_url(identifier_value: str) -> str:
    digest = hashlib.sha256(f"{codes.IDENTIFIER_ASSESSMENT}|{identifier_value}".encode()).digest()
    return f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=5)}"


class Reference:
    """Contract section 2, written the plain way."""

    def __init__(self, a: PatientAssessment, patient: PatientInput) -> None:
        self.a = a
        timeline = patient.timeline
        self.lesion_refs = {les.lesion_id: les.ref for les in timeline.lesions} if timeline else {}
        self.lesion_urls: dict[tuple[str, date], str] = {}
        self.timepoint_urls: dict[tuple[Criterion, date], str] = {}
        self.primary_cancer_ref = patient.primary_cancer_ref
        self.out: list[JsonDict] = []

    def add(
        self,
        profile: str,
        code: str,
        identity: tuple[str, str, str, date | None],
        value: JsonDict,
        effective: JsonDict,
        components: list[JsonDict],
        derived: Iterable[str],
        traces: Iterable[RuleTrace],
        extra: JsonDict | None = None,
    ) -> str:
        kind, criterion, definition, on = identity
        text = "\x1f".join((self.a.patient_id, kind, criterion, definition, on.isoformat() if on else ""))
        identifier = hashlib.sha256(text.encode()).hexdigest()[:32]
        resource: JsonDict = {"resourceType": "Observation", "meta": {"profile": [profile]}}
        rules = list(dict.fromkeys(t.rule for t in traces))
        if rules:
            resource["extension"] = [{"url": codes.EXT_RULE_TRACE, "valueString": r} for r in rules]
        resource["identifier"] = [{"system": codes.IDENTIFIER_ASSESSMENT, "value": identifier}]
        resource["status"] = "final"
        resource["category"] = [ref_concept(codes.OBSERVATION_CATEGORY, "imaging")]
        resource["category"][0]["coding"][0]["display"] = "Imaging"
        resource["code"] = ref_concept(codes.CS_ONCORESPONSE, code)
        resource["subject"] = {"reference": f"Patient/{self.a.patient_id}"}
        resource.update(effective)
        resource["valueCodeableConcept"] = value
        resource["component"] = components
        resource.update(extra or {})
        refs = list(dict.fromkeys(derived))
        if refs:
            resource["derivedFrom"] = [{"reference": r} for r in refs]
        self.out.append(resource)
        return ref_url(identifier)

    def sums(self, tp: Any) -> list[JsonDict]:
        return [
            ref_component(codes.COMP_NEW_LESION_PRESENT, valueBoolean=tp.new_lesion),
            ref_mm(codes.COMP_SUM_OF_DIAMETERS_MM, tp.sum_mm),
            ref_mm(codes.COMP_BASELINE_SUM_MM, tp.baseline_sum_mm),
            ref_mm(codes.COMP_NADIR_SUM_MM, tp.nadir_sum_mm),
            ref_pct(codes.COMP_CHANGE_FROM_BASELINE_PCT, tp.change_from_baseline_pct),
            ref_pct(codes.COMP_CHANGE_FROM_NADIR_PCT, tp.change_from_nadir_pct),
            ref_component(codes.COMP_TIMEPOINT_INDEX, valueInteger=tp.index),
        ]

    def run(self) -> list[JsonDict]:
        a = self.a
        for r in a.lesions:
            focus = r.lesion_ref or self.lesion_refs.get(r.lesion_id)
            self.lesion_urls[(r.lesion_id, r.timepoint_date)] = self.add(
                codes.PROFILE_LESION_RESPONSE,
                codes.CODE_LESION_RESPONSE,
                (f"{codes.CODE_LESION_RESPONSE}/{r.lesion_id}", "", "", r.timepoint_date),
                ref_concept(codes.CS_LESION_RESPONSE, r.status.value),
                {"effectiveDateTime": r.timepoint_date.isoformat()},
                [
                    ref_mm(codes.COMP_DIAMETER_MM, r.diameter_mm),
                    ref_pct(codes.COMP_CHANGE_FROM_BASELINE_PCT, r.change_from_baseline_pct),
                    ref_pct(codes.COMP_CHANGE_FROM_NADIR_PCT, r.change_from_nadir_pct),
                    ref_component(codes.COMP_TIMEPOINT_INDEX, valueInteger=r.timepoint_index),
                ],
                r.source_refs,
                (r.trace,),
                {"focus": [{"reference": focus}]} if focus else None,
            )
        system = codes.CS_RECIST_RESPONSE
        for tp in a.timepoints:
            self.timepoint_urls[(Criterion.RECIST11, tp.timepoint_date)] = self.add(
                codes.PROFILE_RECIST11_TIMEPOINT,
                codes.CODE_RECIST11_TPR,
                (codes.CODE_RECIST11_TPR, "recist1.1", "", tp.timepoint_date),
                ref_concept(system, tp.reported.value),
                {"effectiveDateTime": tp.timepoint_date.isoformat()},
                [
                    ref_coded(codes.COMP_TARGET_RESPONSE, system, tp.target.value if tp.target else None),
                    ref_coded(
                        codes.COMP_NON_TARGET_RESPONSE, system, tp.non_target.value if tp.non_target else None
                    ),
                    *self.sums(tp),
                    *(
                        [ref_component(codes.COMP_POST_PROGRESSION, valueBoolean=True)]
                        if tp.post_progression
                        else []
                    ),
                ],
                tp.source_refs,
                tp.traces,
            )
        for itp in a.immune_timepoints:
            self.timepoint_urls[(Criterion.IRECIST, itp.timepoint_date)] = self.add(
                codes.PROFILE_IRECIST_TIMEPOINT,
                codes.CODE_IRECIST_TPR,
                (codes.CODE_IRECIST_TPR, "irecist", "", itp.timepoint_date),
                ref_concept(codes.CS_IRECIST_RESPONSE, itp.overall.value),
                {"effectiveDateTime": itp.timepoint_date.isoformat()},
                [
                    # Contract section 2: the RECIST components "as above", in iRECIST codes.
                    ref_coded(
                        codes.COMP_TARGET_RESPONSE,
                        codes.CS_IRECIST_RESPONSE,
                        itp.target.value if itp.target else None,
                    ),
                    ref_coded(
                        codes.COMP_NON_TARGET_RESPONSE,
                        codes.CS_IRECIST_RESPONSE,
                        itp.non_target.value if itp.non_target else None,
                    ),
                    *self.sums(itp),
                    ref_mm(codes.COMP_NEW_LESION_TARGET_SUM_MM, itp.new_lesion_target_sum_mm),
                ],
                itp.source_refs,
                itp.traces,
            )
        group_inputs: list[str] = []
        atypical_urls: dict[date, list[str]] = {}
        for best in (a.best_response, a.best_response_confirmed, a.immune_best_response):
            if best is None:
                continue
            code = codes.CODE_RECIST11_BOR if best.criterion is Criterion.RECIST11 else codes.CODE_IRECIST_BOR
            resp_system = (
                codes.CS_RECIST_RESPONSE
                if best.criterion is Criterion.RECIST11
                else codes.CS_IRECIST_RESPONSE
            )
            definition = "confirmation-required" if best.confirmation_required else "no-confirmation"
            url = self.add(
                codes.PROFILE_BEST_OVERALL_RESPONSE,
                code,
                (code, best.criterion.value, definition, None),
                ref_concept(resp_system, best.response.value),
                {
                    "effectivePeriod": {
                        "start": best.period_start.isoformat(),
                        "end": best.period_end.isoformat(),
                    }
                },
                [ref_component(codes.COMP_CONFIRMATION_REQUIRED, valueBoolean=best.confirmation_required)],
                [
                    u
                    for (criterion, on), u in self.timepoint_urls.items()
                    if criterion is best.criterion and best.period_start <= on <= best.period_end
                ],
                (best.trace,),
            )
            if best is a.best_response:
                group_inputs.append(url)
        for f in a.atypical:
            members = [
                self.lesion_urls[(lid, f.timepoint_date)]
                for lid in dict.fromkeys((*f.growing_lesions, *f.shrinking_lesions))
                if (lid, f.timepoint_date) in self.lesion_urls
            ]
            criterion = Criterion.IRECIST if f.kind is AtypicalKind.PSPD else Criterion.RECIST11
            timepoint = self.timepoint_urls.get((criterion, f.timepoint_date))
            concept = ref_concept(codes.CS_RESPONSE_DEFINITION, f.definition)
            concept["text"] = f"{f.definition} {f.definition_version}"
            components = [
                ref_component(codes.COMP_DEFINITION, valueCodeableConcept=concept),
                ref_component(codes.COMP_TIMEPOINT_INDEX, valueInteger=f.timepoint_index),
            ]
            if f.trigger is not None:
                components.append(ref_coded(codes.COMP_DR_TRIGGER, codes.CS_DR_TRIGGER, f.trigger.value))
            if f.overall_at_detection is not None:
                components.append(
                    ref_coded(
                        codes.COMP_OVERALL_RESPONSE_AT_DETECTION,
                        codes.CS_RECIST_RESPONSE,
                        f.overall_at_detection.value,
                    )
                )
            if f.kind is AtypicalKind.HPD:
                components.extend(ref_hpd(f))
            atypical_urls.setdefault(f.timepoint_date, []).append(
                self.add(
                    codes.PROFILE_ATYPICAL_RESPONSE,
                    codes.CODE_ATYPICAL_RESPONSE,
                    (f"{codes.CODE_ATYPICAL_RESPONSE}/{f.kind.value}", "", f.definition, f.timepoint_date),
                    ref_concept(codes.CS_ATYPICAL_RESPONSE, f.kind.value),
                    {"effectiveDateTime": f.timepoint_date.isoformat()},
                    components,
                    [*members, *([timepoint] if timepoint else [])],
                    (f.trace,),
                    {"hasMember": [{"reference": m} for m in dict.fromkeys(members)]} if members else None,
                )
            )
            group_inputs.append(atypical_urls[f.timepoint_date][-1])
        dates = [tp.timepoint_date for tp in a.timepoints] + [tp.timepoint_date for tp in a.immune_timepoints]
        self.add(
            codes.PROFILE_RESPONSE_GROUP,
            codes.CODE_RESPONSE_GROUP,
            (codes.CODE_RESPONSE_GROUP, "", "", None),
            ref_concept(codes.CS_RESPONSE_GROUP, a.response_group.value),
            {"effectiveDateTime": max(dates, default=a.baseline_date or a.treatment_start).isoformat()},
            [ref_component(codes.COMP_ATYPICAL, valueBoolean=a.is_atypical)],
            group_inputs,
            a.traces,
        )
        for tp in a.immune_timepoints:
            self.out.append(self.disease_status(tp, atypical_urls.get(tp.timepoint_date, [])))
        return self.out

    def disease_status(self, tp: Any, atypical: list[str]) -> JsonDict:
        """mCODE STU4 CancerDiseaseStatus, spelled out from the profile and its ValueSets."""
        text = "\x1f".join(
            (self.a.patient_id, "cancer-disease-status", "irecist", "", tp.timepoint_date.isoformat())
        )
        identifier = hashlib.sha256(text.encode()).hexdigest()[:32]
        trend = {
            "iCR": ("268910001", "Patient's condition improved (finding)"),
            "iPR": ("268910001", "Patient's condition improved (finding)"),
            "iSD": ("359746009", "Patient's condition stable (finding)"),
            "iNonCR-NonUPD": ("359746009", "Patient's condition stable (finding)"),
            "iUPD": ("709137006", "Patient condition undetermined (finding)"),
            "iCPD": ("271299001", "Patient's condition worsened (finding)"),
            "NE": ("709137006", "Patient condition undetermined (finding)"),
        }[tp.overall.value]
        resource: JsonDict = {
            "resourceType": "Observation",
            "meta": {
                "profile": ["http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"]
            },
            "extension": [
                {
                    "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status-evidence-type",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "363679005",
                                "display": "Imaging (procedure)",
                            }
                        ]
                    },
                }
            ],
            "identifier": [{"system": codes.IDENTIFIER_ASSESSMENT, "value": identifier}],
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "97509-4", "display": "Cancer Disease Progression"}
                ]
            },
            "subject": {"reference": f"Patient/{self.a.patient_id}"},
        }
        if self.primary_cancer_ref:
            resource["focus"] = [{"reference": self.primary_cancer_ref}]
        resource["effectiveDateTime"] = tp.timepoint_date.isoformat()
        resource["valueCodeableConcept"] = {
            "coding": [{"system": "http://snomed.info/sct", "code": trend[0], "display": trend[1]}]
        }
        derived = [self.timepoint_urls[(Criterion.IRECIST, tp.timepoint_date)], *atypical]
        resource["derivedFrom"] = [{"reference": r} for r in dict.fromkeys(derived)]
        return resource


# --- the cohort --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort() -> list[tuple[PatientAssessment, PatientInput]]:
    trajectories = list(Trajectory)
    out: list[tuple[PatientAssessment, PatientInput]] = []
    for i in range(3 * len(trajectories)):
        patient_id = f"golden-{i}"
        resources = generate_patient(
            trajectories[i % len(trajectories)], seed=4100 + i, patient_id=patient_id
        )
        source = patient_input(patient_id, resources.resources)
        assert source.timeline is not None
        out.append((assess(source.timeline, as_of=AS_OF), source))
    return out


def test_observations_are_byte_identical_to_the_plain_reference(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    kinds: set[str] = set()
    for a, source in cohort:
        ours = observations_for(a, source)
        assert orjson.dumps(ours) == orjson.dumps(Reference(a, source).run()), a.patient_id
        assert [observation_full_url(o) for o in ours] == [ref_url(o["identifier"][0]["value"]) for o in ours]
        kinds.update(o["code"]["coding"][0]["code"] for o in ours)
    # The cohort exercises every Observation kind of the contract, atypical findings included.
    assert {codes.CODE_LESION_RESPONSE, codes.CODE_RECIST11_TPR, codes.CODE_IRECIST_TPR} <= kinds
    assert {codes.CODE_RECIST11_BOR, codes.CODE_IRECIST_BOR, codes.CODE_ATYPICAL_RESPONSE} <= kinds


def test_provenance_targets_and_activity_follow_the_written_results(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    a, source = cohort[0]
    first, _ = transaction_bundle(a, source, version="v1", recorded=RECORDED)
    provenance = first["entry"][-1]["resource"]
    written = [e["fullUrl"] for e in first["entry"][1:-1]]
    assert provenance["target"] == [{"reference": u} for u in written]
    assert provenance["activity"] == ref_concept(
        "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE"
    )
    assert provenance["agent"][0]["who"]["reference"] == device_full_url("v1")
    # Every result exists with other content: the write only updates, by server id.
    existing = {
        o["identifier"][0]["value"]: [Existing(f"srv-{n}", "1", {"resourceType": "Observation"})]
        for n, o in enumerate(observations_for(a, source))
    }
    update, plan = transaction_bundle(
        a, source, version="v1", recorded=RECORDED, existing=existing, base_url="b"
    )
    assert set(plan.kinds) == {"update"}
    provenance = update["entry"][-1]["resource"]
    assert provenance["activity"] == ref_concept(
        "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE"
    )
    assert provenance["target"] == [{"reference": f"Observation/srv-{n}"} for n in range(len(existing))]
    expected = provenance_for(
        plan.written, source, device_reference=device_full_url("v1"), version="v1", recorded=RECORDED
    )
    assert provenance["entity"] == expected["entity"]


def test_a_run_never_changes_what_an_earlier_run_emitted(
    cohort: list[tuple[PatientAssessment, PatientInput]],
) -> None:
    # Shared constant parts must stay constant: an update-only write (activity UPDATE) and a
    # caller editing its own copy leave later output as the reference says.
    a, source = cohort[1]
    before = orjson.dumps(transaction_bundle(a, source, version="v", recorded=RECORDED)[0])
    existing = {o["identifier"][0]["value"]: [Existing("x", "1", {})] for o in observations_for(a, source)}
    transaction_bundle(a, source, version="v", recorded=RECORDED, existing=existing, base_url="b")
    mine = copy.deepcopy(observations_for(a, source))
    mine[0]["code"]["coding"][0]["code"] = "changed-by-a-caller"
    assert orjson.dumps(transaction_bundle(a, source, version="v", recorded=RECORDED)[0]) == before
    assert orjson.dumps(observations_for(a, source)) == orjson.dumps(Reference(a, source).run())
