"""The profile checker (`service.adapters.fhir.conformance`) rejects what the contract forbids.

Each case starts from a valid example of `fhir_profiles/examples/`, breaks one rule of
docs/fhir-contract.md section 2 (or section 1 for the inbound profiles) and expects an issue that
names the element. The last tests run the outbound mapping (`outbound.observations_for`) and
require every emitted Observation to pass the checks with zero issues.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.conformance import ConformanceIssue, check
from service.adapters.fhir.inbound import patient_input
from service.adapters.fhir.outbound import observations_for
from service.application.ports import PatientInput, PatientRef
from service.domain.engine import assess
from service.domain.model import Lesion, LesionRole, PatientTimeline
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    Criterion,
    DrTrigger,
    Endpoints,
    ImmuneResponse,
    ImmuneTimepointResult,
    LesionResult,
    LesionStatus,
    PatientAssessment,
    Response,
    ResponseGroup,
    RuleTrace,
    TimepointResult,
)
from service.synthetic import mixed_cohort

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_profiles" / "examples"
JsonDict = dict[str, Any]


def example(name: str) -> JsonDict:
    data: JsonDict = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def component(resource: JsonDict, code: str) -> JsonDict:
    return next(c for c in resource["component"] if c["code"]["coding"][0]["code"] == code)


def coded(system: str, code: str) -> JsonDict:
    return {"coding": [{"system": system, "code": code}]}


def only(issues: list[ConformanceIssue]) -> ConformanceIssue:
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


# --- mutations ---------------------------------------------------------------------------------------
def wrong_fixed_code(r: JsonDict) -> None:
    r["code"] = coded(codes.CS_ONCORESPONSE, codes.CODE_RECIST11_TPR)


def drop_target_response(r: JsonDict) -> None:
    r["component"].remove(component(r, codes.COMP_TARGET_RESPONSE))


def value_outside_code_system(r: JsonDict) -> None:
    r["valueCodeableConcept"] = coded(codes.CS_RECIST_RESPONSE, "iUPD")  # an iRECIST code, RECIST system


def irecist_code_in_recist_value(r: JsonDict) -> None:
    r["valueCodeableConcept"] = coded(codes.CS_IRECIST_RESPONSE, "iSD")


def duplicate_diameter(r: JsonDict) -> None:
    r["component"].append(copy.deepcopy(component(r, codes.COMP_DIAMETER_MM)))


def drop_identifier_system(r: JsonDict) -> None:
    del r["identifier"][0]["system"]


def other_identifier_system(r: JsonDict) -> None:
    r["identifier"][0]["system"] = "http://hospital.example.org/ids"


def drop_identifier(r: JsonDict) -> None:
    del r["identifier"]


def preliminary_status(r: JsonDict) -> None:
    r["status"] = "preliminary"


def drop_focus(r: JsonDict) -> None:
    del r["focus"]


def focus_on_patient(r: JsonDict) -> None:
    r["focus"] = [{"reference": "Patient/example-nsclc"}]


def subject_group(r: JsonDict) -> None:
    r["subject"] = {"reference": "Group/cohort-1"}


def diameter_in_cm(r: JsonDict) -> None:
    component(r, codes.COMP_DIAMETER_MM)["valueQuantity"] = {
        "value": 1.8,
        "unit": "cm",
        "system": codes.UCUM,
        "code": "cm",
    }


def index_zero(r: JsonDict) -> None:
    component(r, codes.COMP_TIMEPOINT_INDEX)["valueInteger"] = 0


def new_lesion_as_string(r: JsonDict) -> None:
    comp = component(r, codes.COMP_NEW_LESION_PRESENT)
    del comp["valueBoolean"]
    comp["valueString"] = "no"


def value_and_absent_reason(r: JsonDict) -> None:
    component(r, codes.COMP_SUM_OF_DIAMETERS_MM)["dataAbsentReason"] = coded(
        codes.DATA_ABSENT_REASON, "unknown"
    )


def effective_date_time(r: JsonDict) -> None:
    del r["effectivePeriod"]
    r["effectiveDateTime"] = "2024-04-29"


def drop_dr_trigger(r: JsonDict) -> None:
    r["component"].remove(component(r, codes.COMP_DR_TRIGGER))


def unknown_definition(r: JsonDict) -> None:
    component(r, codes.COMP_DEFINITION)["valueCodeableConcept"] = coded(
        codes.CS_RESPONSE_DEFINITION, "recist"
    )


def atypical_false_for_dr(r: JsonDict) -> None:
    component(r, codes.COMP_ATYPICAL)["valueBoolean"] = False


def unknown_role(r: JsonDict) -> None:
    r["extension"][0]["valueCoding"]["code"] = "measurable"


def role_twice(r: JsonDict) -> None:
    r["extension"].append(copy.deepcopy(r["extension"][0]))


def lymph_node_as_code(r: JsonDict) -> None:
    del r["extension"][1]["valueBoolean"]
    r["extension"][1]["valueCode"] = "yes"


def non_target_value_from_lesion_response(r: JsonDict) -> None:
    r["valueCodeableConcept"] = coded(codes.CS_LESION_RESPONSE, "progressing")


CASES: list[tuple[str, str, Callable[[JsonDict], None], str, str]] = [
    # (example, why, mutation, element named, message fragment)
    (
        "Observation-lesion-response-l1-tp1",
        "contract s2: LesionResponse code is lesion-response",
        wrong_fixed_code,
        "Observation.code",
        "does not match the required pattern",
    ),
    (
        "Observation-recist11-timepoint-response-tp1",
        "contract s2: target-response is a key component",
        drop_target_response,
        "Observation.component:targetResponse",
        "required slice missing",
    ),
    (
        "Observation-recist11-timepoint-response-tp1",
        "contract s2: value from OR/CodeSystem/recist-response",
        value_outside_code_system,
        "Observation.value[x]",
        "not in the required ValueSet",
    ),
    (
        "Observation-lesion-response-l1-tp1",
        "one diameter per lesion and timepoint",
        duplicate_diameter,
        "Observation.component:diameterMm",
        "maximum 1",
    ),
    (
        "Observation-response-group",
        "contract s2: identifier system OR/identifier/assessment",
        drop_identifier_system,
        "Observation.identifier.system",
        "minimum cardinality 1",
    ),
    (
        "Observation-response-group",
        "contract s2: identifier system OR/identifier/assessment",
        other_identifier_system,
        "Observation.identifier.system",
        "differs from the fixed value",
    ),
    (
        "Observation-response-group",
        "contract s2: deterministic identifier, so a re-run updates",
        drop_identifier,
        "Observation.identifier",
        "minimum cardinality 1",
    ),
    (
        "Observation-atypical-response-dr-tp1",
        "contract s2: status final or amended",
        preliminary_status,
        "Observation.status",
        "not in the required ValueSet",
    ),
    (
        "Observation-lesion-response-l2-tp1",
        "contract s2: LesionResponse focus -> BodyStructure",
        drop_focus,
        "Observation.focus",
        "minimum cardinality 1",
    ),
    (
        "Observation-lesion-response-l2-tp1",
        "contract s2: LesionResponse focus -> BodyStructure",
        focus_on_patient,
        "Observation.focus",
        "reference to Patient",
    ),
    (
        "Observation-irecist-timepoint-response-tp1",
        "contract s2: subject is the Patient",
        subject_group,
        "Observation.subject",
        "reference to Group",
    ),
    (
        "Observation-lesion-response-l1-tp1",
        "diameter-mm is in millimetres (UCUM mm)",
        diameter_in_cm,
        "Observation.component:diameterMm.value[x]",
        "does not match the required pattern",
    ),
    (
        "Observation-lesion-response-l1-tp1",
        "contract s2: timepoint-index 1 = first evaluation after baseline",
        index_zero,
        "Observation.component:timepointIndex.value[x]",
        "below the minimum 1",
    ),
    (
        "Observation-recist11-timepoint-response-tp1",
        "new-lesion-present is a boolean",
        new_lesion_as_string,
        "Observation.component:newLesionPresent.value[x]",
        "allowed: boolean",
    ),
    (
        "Observation-recist11-timepoint-response-tp1",
        "FHIR R4 obs-6: dataAbsentReason only without a value",
        value_and_absent_reason,
        "Observation.component",
        "or-comp-1",
    ),
    (
        "Observation-recist11-best-overall-response",
        "contract s2: BestOverallResponse has effectivePeriod",
        effective_date_time,
        "Observation.effective[x]",
        "allowed: Period",
    ),
    (
        "Observation-recist11-best-overall-response",
        "contract s2: the matching response code system",
        irecist_code_in_recist_value,
        "Observation",
        "or-bor-1",
    ),
    (
        "Observation-atypical-response-dr-tp1",
        "contract s2: dr-trigger of a DR (target/non-target/new lesion)",
        drop_dr_trigger,
        "Observation",
        "or-atyp-1",
    ),
    (
        "Observation-atypical-response-dr-tp1",
        "contract s2: definition from OR/CodeSystem/response-definition",
        unknown_definition,
        "Observation.component:definition.value[x]",
        "not in the required ValueSet",
    ),
    (
        "Observation-response-group",
        "contract s2: atypical = DR or PsPD",
        atypical_false_for_dr,
        "Observation",
        "or-rg-1",
    ),
    (
        "BodyStructure-recist-lesion-l1",
        "contract s1: role from OR/CodeSystem/lesion-role",
        unknown_role,
        "BodyStructure.extension:lesionRole.value[x]",
        "not in the required ValueSet",
    ),
    (
        "BodyStructure-recist-lesion-l1",
        "one role per lesion",
        role_twice,
        "BodyStructure.extension:lesionRole",
        "maximum 1",
    ),
    (
        "BodyStructure-recist-lesion-n1",
        "contract s1: lymph-node is valueBoolean",
        lymph_node_as_code,
        "BodyStructure.extension:lymphNode.value[x]",
        "allowed: boolean",
    ),
    (
        "Observation-non-target-status-n1-tp1",
        "contract s1: value from OR/CodeSystem/non-target-status",
        non_target_value_from_lesion_response,
        "Observation.value[x]",
        "not in the required ValueSet",
    ),
]


@pytest.mark.parametrize(
    ("name", "why", "mutate", "element", "fragment"), CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in CASES]
)
def test_checker_rejects_a_broken_resource_naming_the_element(
    name: str, why: str, mutate: Callable[[JsonDict], None], element: str, fragment: str
) -> None:
    resource = example(name)
    assert check(resource) == [], why
    mutate(resource)
    issue = only(check(resource))
    assert issue.element == element, (why, str(issue))
    assert fragment in issue.message, (why, str(issue))
    assert issue.profile == resource["meta"]["profile"][0]


def test_missing_meta_profile_is_reported_when_no_profile_is_given() -> None:
    # Contract s2: every resource written carries meta.profile.
    resource = example("Observation-response-group")
    del resource["meta"]
    issue = only(check(resource))
    assert issue.element == "Observation.meta.profile"
    assert "missing" in issue.message


def test_missing_meta_profile_is_reported_against_an_outbound_profile() -> None:
    resource = example("Observation-lesion-response-l1-tp1")
    del resource["meta"]
    issue = only(check(resource, codes.PROFILE_LESION_RESPONSE))
    assert issue.element == "Observation.meta"
    assert "minimum cardinality 1" in issue.message


def test_inbound_profiles_do_not_require_meta_profile() -> None:
    # Contract s1: what the EHR sends is recognised by its code and extensions, not by meta.profile.
    lesion = example("BodyStructure-recist-lesion-l1")
    del lesion["meta"]
    assert check(lesion, codes.profile_url("RecistLesion")) == []


def test_a_resource_of_another_type_is_rejected() -> None:
    lesion = example("BodyStructure-recist-lesion-l1")
    issue = only(check(lesion, codes.PROFILE_RESPONSE_GROUP))
    assert "does not match profile type Observation" in issue.message


def test_foreign_profile_only_is_reported() -> None:
    subscription = example("Subscription-atypical-response-rest-hook")
    issue = only(check(subscription))
    assert "names no profile of this package" in issue.message


def test_data_absent_reason_may_stand_in_for_a_quantity() -> None:
    # Outbound decision: a value the engine could not compute is the component's dataAbsentReason.
    resource = example("Observation-recist11-timepoint-response-tp1")
    comp = component(resource, codes.COMP_SUM_OF_DIAMETERS_MM)
    del comp["valueQuantity"]
    comp["dataAbsentReason"] = coded(codes.DATA_ABSENT_REASON, "unknown")
    assert check(resource) == []


def test_a_component_with_neither_value_nor_absent_reason_is_rejected() -> None:
    resource = example("Observation-recist11-timepoint-response-tp1")
    del component(resource, codes.COMP_NADIR_SUM_MM)["valueQuantity"]
    issue = only(check(resource))
    assert issue.element == "Observation.component"
    assert "or-comp-1" in issue.message


# --- outbound mapping output passes the checks ---------------------------------------------------------
BASELINE = date(2024, 2, 26)
TP1 = date(2024, 4, 29)
TP2 = date(2024, 6, 24)


def _lesion(
    lesion_id: str,
    index: int,
    on: date,
    status: LesionStatus,
    mm: str | None,
    base: str | None,
    nadir: str | None,
    *,
    target: bool = True,
) -> LesionResult:
    return LesionResult(
        lesion_id=lesion_id,
        timepoint_index=index,
        timepoint_date=on,
        status=status,
        diameter_mm=None if mm is None else Decimal(mm),
        change_from_baseline_pct=None if base is None else Decimal(base),
        change_from_nadir_pct=None if nadir is None else Decimal(nadir),
        is_target=target,
        trace=RuleTrace.of(f"lesion/{status.value}"),
        source_refs=(f"Observation/m-{lesion_id}-{index}", f"ImagingStudy/is{index + 1}"),
    )


def _assessment() -> PatientAssessment:
    """Two follow-ups: a Bernard-Tessier DR with RECIST SD at TP1, then an NE timepoint at TP2.

    TP1: L1 30 -> 18 mm (-40 %), L2 20 -> 26 mm (+30 %, +6 mm), no non-target lesion, sum 50 -> 44
    (-12 %): SD; iRECIST iSD. TP2: L2 not assessed, so the sums are unknown: NE (RECIST 1.1
    section 4.3.1), and a new lesion L3 (iRECIST iUPD). Findings: DR (trigger target lesion),
    an HPD finding without trigger, PsPD and a delayed response, to cover every component shape.
    """
    lesions = (
        _lesion("L1", 1, TP1, LesionStatus.RESPONDING, "18", "-40", "-40"),
        _lesion("L2", 1, TP1, LesionStatus.PROGRESSING, "26", "30", "30"),
        _lesion("L1", 2, TP2, LesionStatus.RESPONDING, "17", "-43.333333", "-5.5555556"),
        _lesion("L2", 2, TP2, LesionStatus.NOT_EVALUABLE, None, None, None),
        _lesion("L3", 2, TP2, LesionStatus.NEW, "12", None, None, target=False),
    )
    # Every hyperprogression number (atypical.hpd_metrics) and the three reference scans.
    hpd_metrics = (
        ("tgr_ref_pct_per_month", Decimal("40")),
        ("tgr_exp_pct_per_month", Decimal("100")),
        ("delta_tgr_pct_per_month", Decimal("60")),
        ("tgk_ref_mm_per_month", Decimal("5")),
        ("tgk_exp_mm_per_month", Decimal("15")),
        ("tgr_ratio", Decimal("2.5")),
        ("tgk_ratio", Decimal("3")),
    )
    hpd_scans = (("pre-baseline", date(2023, 12, 1)), ("baseline", BASELINE), ("first-evaluation", TP1))
    tp1 = TimepointResult(
        1,
        TP1,
        Response.SD,
        None,
        False,
        Response.SD,
        Response.SD,
        Decimal(44),
        Decimal(50),
        Decimal(50),
        Decimal(-12),
        Decimal(-12),
        (RuleTrace.of("recist1.1/target/sd"),),
        ("ImagingStudy/is2",),
    )
    tp2 = TimepointResult(
        2,
        TP2,
        Response.NE,
        None,
        True,
        Response.PD,
        Response.PD,
        None,
        Decimal(50),
        Decimal(44),
        None,
        None,
        (RuleTrace.of("recist1.1/overall/new-lesion"),),
        ("ImagingStudy/is3",),
    )
    itp1 = ImmuneTimepointResult(
        1,
        TP1,
        ImmuneResponse.ISD,
        Decimal(44),
        Decimal(50),
        Decimal(50),
        Decimal(-12),
        Decimal(-12),
        None,
        False,
        (RuleTrace.of("irecist/isd"),),
    )
    itp2 = ImmuneTimepointResult(
        2,
        TP2,
        ImmuneResponse.IUPD,
        None,
        Decimal(50),
        Decimal(44),
        None,
        None,
        Decimal(12),
        True,
        (RuleTrace.of("irecist/iupd/new-lesion"),),
    )
    bor = BestResponse(Criterion.RECIST11, Response.SD, False, BASELINE, TP2, TP1, RuleTrace.of("bor/sd"))
    bor_confirmed = BestResponse(
        Criterion.RECIST11, Response.SD, True, BASELINE, TP2, TP1, RuleTrace.of("bor/c")
    )
    ibor = BestResponse(
        Criterion.IRECIST, ImmuneResponse.ISD, False, BASELINE, TP2, TP1, RuleTrace.of("ibor")
    )

    def finding(
        kind: AtypicalKind, definition: str, trigger: DrTrigger | None, at: Response | None
    ) -> AtypicalFinding:
        return AtypicalFinding(
            kind,
            definition,
            "1.0",
            1,
            TP1,
            trigger,
            at,
            ("L2",),
            ("L1",),
            RuleTrace.of(f"{kind}/{definition}"),
            hpd_metrics if kind is AtypicalKind.HPD else (("resolved_at_index", Decimal(2)),),
            "TGR ratio 2.50 >= 2" if kind is AtypicalKind.HPD else None,
            hpd_scans if kind is AtypicalKind.HPD else (),
        )

    return PatientAssessment(
        patient_id="p1",
        treatment_start=date(2024, 3, 1),
        baseline_date=BASELINE,
        timepoints=(tp1, tp2),
        immune_timepoints=(itp1, itp2),
        lesions=lesions,
        best_response=bor,
        best_response_confirmed=bor_confirmed,
        immune_best_response=ibor,
        atypical=(
            finding(AtypicalKind.DR, "bernard-tessier", DrTrigger.TARGET_LESION, Response.SD),
            finding(AtypicalKind.HPD, "champiat", None, Response.SD),
            finding(AtypicalKind.PSPD, "irecist", None, None),
            finding(AtypicalKind.DER, "project-delayed-response", None, Response.PR),
        ),
        response_group=ResponseGroup.DR,
        endpoints=Endpoints(None, None, None, None, None, None, None),
        auto_selected_targets=(),
        issues=(),
        traces=(RuleTrace.of("group/dr-before-pspd"),),
    )


def _patient_input() -> PatientInput:
    timeline = PatientTimeline(
        patient_id="p1",
        treatment_start=date(2024, 3, 1),
        lesions=(
            Lesion("L1", "lung", role=LesionRole.TARGET, ref="BodyStructure/bs1"),
            Lesion("L2", "liver", role=LesionRole.TARGET, ref="BodyStructure/bs2"),
            Lesion("L3", "liver", role=LesionRole.NEW_NON_TARGET, ref="BodyStructure/bs3"),
        ),
        scans=(),
    )
    return PatientInput(PatientRef("p1"), timeline)


def test_every_outbound_observation_passes_the_profile_checks() -> None:
    observations = observations_for(_assessment(), _patient_input())
    failures = {o["meta"]["profile"][0]: [str(i) for i in check(o)] for o in observations if check(o)}
    assert failures == {}
    claimed = {o["meta"]["profile"][0] for o in observations}
    assert claimed == {
        codes.PROFILE_LESION_RESPONSE,
        codes.PROFILE_RECIST11_TIMEPOINT,
        codes.PROFILE_IRECIST_TIMEPOINT,
        codes.PROFILE_BEST_OVERALL_RESPONSE,
        codes.PROFILE_ATYPICAL_RESPONSE,
        codes.PROFILE_RESPONSE_GROUP,
        codes.MCODE_CANCER_DISEASE_STATUS,  # mCODE's, accepted by name (FOREIGN_PROFILES)
    }


def test_outbound_group_without_best_response_passes_the_checks() -> None:
    # Contract s2: no best overall response -> group NE, not atypical.
    import dataclasses

    nothing = dataclasses.replace(
        _assessment(),
        best_response=None,
        best_response_confirmed=None,
        immune_best_response=None,
        atypical=(),
        response_group=ResponseGroup.NE,
    )
    observations = observations_for(nothing, _patient_input())
    group = [o for o in observations if o["meta"]["profile"][0] == codes.PROFILE_RESPONSE_GROUP]
    assert len(group) == 1
    assert [str(i) for o in observations for i in check(o)] == []


def test_engine_output_for_a_synthetic_cohort_passes_the_profile_checks() -> None:
    # Inbound resources of the synthetic generator conform to RecistLesion / NonTargetStatus, and
    # every Observation the engine + outbound mapping derive from them conforms to its profile.
    problems: list[str] = []
    written = 0
    for generated in mixed_cohort(24, 5).patients:
        resource: Any
        for resource in generated.resources:
            if resource["resourceType"] == "BodyStructure":
                problems += [str(i) for i in check(resource, codes.profile_url("RecistLesion"))]
            elif resource["resourceType"] == "Observation" and (
                codes.CS_ONCORESPONSE,
                codes.CODE_NON_TARGET_STATUS,
            ) in {(c.get("system"), c.get("code")) for c in resource["code"]["coding"]}:
                problems += [str(i) for i in check(resource, codes.profile_url("NonTargetStatus"))]
        source = patient_input(generated.patient_id, generated.resources)
        assert source.timeline is not None
        for observation in observations_for(assess(source.timeline, as_of=date(2030, 1, 1)), source):
            written += 1
            problems += [str(i) for i in check(observation)]
    assert written > 24 * 5
    assert problems == []
