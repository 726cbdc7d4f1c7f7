"""`oncoresponse assess` on generated patients returns their intended ground truth.

Every generated patient carries a `GroundTruth` written from the generator's intent and its own
rule guard (`service.synthetic.trajectory.verify_course`), never from the engine. Here the patients
go through the path of `oncoresponse assess`: a FHIR Bundle -> `group_bundle_by_patient` ->
`patient_input` -> `engine.assess` (as of a day after everybody's last data), and every clinical
result is compared with the truth:

- RECIST 1.1 (Eisenhauer 2009, Table 1) timepoint responses, both the strict value and the FAQ
  "continued PR" reading (the generator keeps sums away from PR drift, so both equal the truth);
  RECIST 1.1 stops at PD (section 4.4.1), so every later timepoint is PD and marked post-progression.
- Confirmed BOR (RECIST 1.1 Table 3 as admiralonco `derive_param_confirmed_bor`: 28-day
  confirmation, 42-day minimum SD) and unconfirmed BOR.
- iRECIST (Seymour 2017) timepoint responses over the whole course, and iBOR (Table 3).
- Dissociated response (Bernard-Tessier as extended by Guan 2024, contract section 2): first
  timepoint, trigger, overall response at detection, shrinking and progressing lesions.
- PsPD (iRECIST unconfirmed PD followed by shrinkage), HPD (Champiat TGR ratio; needs the
  pre-baseline scan), delayed response (project definition, reference section 1d).
- PFS / iPFS / OS in days from ICI start, with their event flags.
- ResponseGroup (contract section 2), also as the CLI writes it (ResponseGroup Observations).

The two paper cohorts (Guan 2024 Tables 1 and 2) must land in their response groups and show the
dissociated responses at the published first-evaluation categories (Fig. 1c; validation text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from service.adapters.fhir import codes
from service.adapters.fhir.inbound import group_bundle_by_patient, patient_input
from service.cli import app as cli
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalFinding, AtypicalKind, PatientAssessment
from service.synthetic import (
    Cohort,
    GeneratedPatient,
    Trajectory,
    cohort_bundle,
    mixed_cohort,
    nsclc_cohort,
    pan_tumour_cohort,
)

MIXED_SIZE = 500
MIXED_SEED = 3
PAN_SEED = 20241230  # as tests/unit/synthetic: Guan et al. published 30 December 2024
NSCLC_SEED = 80
CLI_PER_TRAJECTORY = 3


@dataclass(frozen=True, slots=True)
class Assessed:
    patient: GeneratedPatient
    assessment: PatientAssessment


def as_of_for(cohort: Cohort) -> date:
    """The day after the latest data of any patient (last contact or death): nothing is cut off."""
    latest = max(
        date.fromisoformat(max(p.truth.endpoints.last_contact_date, p.truth.endpoints.death_date or ""))
        for p in cohort.patients
    )
    return latest + timedelta(days=1)


def assess_via_bundle(cohort: Cohort) -> list[Assessed]:
    """The `oncoresponse assess` path: one collection Bundle, split by patient, mapped, assessed."""
    grouped, issues = group_bundle_by_patient(cohort_bundle(cohort))
    assert issues == []
    as_of = as_of_for(cohort)
    params = AssessmentParameters()
    by_id = {p.patient_id: p for p in cohort.patients}
    assert set(grouped) == set(by_id)
    out = []
    for patient_id, resources in grouped.items():
        mapped = patient_input(patient_id, resources)
        assert mapped.timeline is not None, patient_id
        assert not [i for i in mapped.issues if i.severity == "error"], patient_id
        out.append(Assessed(by_id[patient_id], assess(mapped.timeline, params, as_of=as_of)))
    return out


@pytest.fixture(scope="module")
def mixed() -> Cohort:
    return mixed_cohort(MIXED_SIZE, MIXED_SEED)


@pytest.fixture(scope="module")
def assessed(mixed: Cohort) -> list[Assessed]:
    return assess_via_bundle(mixed)


@pytest.fixture(scope="module")
def pan() -> list[Assessed]:
    return assess_via_bundle(pan_tumour_cohort(PAN_SEED))


@pytest.fixture(scope="module")
def nsclc() -> list[Assessed]:
    return assess_via_bundle(nsclc_cohort(NSCLC_SEED))


def mismatches(
    rows: list[Assessed], got: Callable[[Assessed], object], want: Callable[[Assessed], object]
) -> list[str]:
    out = []
    for row in rows:
        g, w = got(row), want(row)
        if g != w:
            out.append(
                f"{row.patient.patient_id} ({row.patient.truth.trajectory}): engine {g!r}, truth {w!r}"
            )
    return out


def findings(a: PatientAssessment, kind: AtypicalKind) -> list[AtypicalFinding]:
    return [f for f in a.atypical if f.kind is kind]


# --- the mixed cohort: every trajectory -------------------------------------------------------------------
def test_mixed_cohort_covers_every_trajectory_with_at_least_500_patients(assessed: list[Assessed]) -> None:
    counts = Counter(row.patient.truth.trajectory for row in assessed)
    assert len(assessed) >= 500
    assert set(counts) == {t.value for t in Trajectory}
    assert min(counts.values()) >= 50


def test_response_group_is_the_intended_one(assessed: list[Assessed]) -> None:
    bad = mismatches(
        assessed, lambda r: r.assessment.response_group.value, lambda r: r.patient.truth.response_group
    )
    assert bad == []


def test_timepoints_baseline_and_target_sums_are_the_generated_ones(assessed: list[Assessed]) -> None:
    # RECIST 1.1 section 4.3.2: sum of long axes of non-nodal targets and short axes of nodal targets.
    def got(r: Assessed) -> object:
        a = r.assessment
        upto = r.patient.truth.first_pd_index or len(a.timepoints)
        return (
            a.baseline_date,
            [tp.timepoint_date for tp in a.timepoints],
            a.timepoints[0].baseline_sum_mm,
            [tp.sum_mm for tp in a.timepoints[:upto]],
        )

    def want(r: Assessed) -> object:
        t = r.patient.truth
        upto = t.first_pd_index or len(t.timepoint_dates)
        return (
            date.fromisoformat(t.baseline_date),
            [date.fromisoformat(d) for d in t.timepoint_dates],
            Decimal(t.baseline_sum_mm),
            [Decimal(s) for s in t.target_sums_mm[:upto]],
        )

    assert mismatches(assessed, got, want) == []


def test_recist_timepoint_responses_with_pd_carried_forward(assessed: list[Assessed]) -> None:
    # RECIST 1.1 Table 1/2, strict per timepoint and the FAQ "continued PR" reading; evaluation ends at
    # PD, so every later timepoint is PD and marked post-progression (section 4.4.1).
    def upto(r: Assessed) -> int:
        return len(r.patient.truth.recist_timepoints)

    def want(r: Assessed) -> object:
        return list(r.patient.truth.recist_timepoints[: upto(r)])

    strict = mismatches(
        assessed, lambda r: [tp.overall.value for tp in r.assessment.timepoints[: upto(r)]], want
    )
    reported = mismatches(
        assessed, lambda r: [tp.reported.value for tp in r.assessment.timepoints[: upto(r)]], want
    )
    assert strict == []
    assert reported == []
    first_pd = {r.patient.patient_id: r.patient.truth.first_pd_index for r in assessed}
    post = mismatches(
        assessed,
        lambda r: [tp.post_progression for tp in r.assessment.timepoints],
        lambda r: [
            first_pd[r.patient.patient_id] is not None and i > first_pd[r.patient.patient_id]
            for i in range(1, len(r.patient.truth.recist_timepoints) + 1)
        ],
    )
    assert post == []


def test_confirmed_and_unconfirmed_best_overall_response(assessed: list[Assessed]) -> None:
    # RECIST 1.1 section 4.6 / Table 3; admiralonco derive_param_confirmed_bor (28 d, min SD 42 d).
    def got(r: Assessed) -> object:
        a = r.assessment
        assert a.best_response_confirmed is not None
        assert a.best_response is not None
        return (a.best_response_confirmed.response.value, a.best_response.response.value)

    def want(r: Assessed) -> object:
        t = r.patient.truth
        return (t.best_overall_response_confirmed, t.best_overall_response_unconfirmed)

    assert mismatches(assessed, got, want) == []


def test_irecist_timepoint_responses_and_best_response(assessed: list[Assessed]) -> None:
    # iRECIST Table 2 (iUPD, confirmation to iCPD, reset) and Table 3 (iBOR).
    def got(r: Assessed) -> object:
        a = r.assessment
        assert a.immune_best_response is not None
        return ([tp.overall.value for tp in a.immune_timepoints], a.immune_best_response.response.value)

    def want(r: Assessed) -> object:
        t = r.patient.truth
        return (list(t.irecist_timepoints), t.irecist_best_overall_response)

    assert mismatches(assessed, got, want) == []


def test_dissociated_response_timepoint_trigger_and_overall_response(assessed: list[Assessed]) -> None:
    # Bernard-Tessier (Guan 2024 extension; contract section 2), first finding only (Fig. 5 a/b/c).
    def got(r: Assessed) -> object:
        drs = findings(r.assessment, AtypicalKind.DR)
        if not drs:
            return None
        f = drs[0]
        return (
            f.definition,
            f.timepoint_index,
            f.trigger.value if f.trigger else None,
            f.overall_at_detection.value if f.overall_at_detection else None,
            f.shrinking_lesions,
            f.growing_lesions,
        )

    def want(r: Assessed) -> object:
        dr = r.patient.truth.dr
        if dr is None:
            return None
        return (
            "bernard-tessier",
            dr.timepoint_index,
            dr.trigger,
            dr.overall_response_at_detection,
            dr.shrinking_lesions,
            dr.progressing_lesions,
        )

    assert mismatches(assessed, got, want) == []
    assert sum(1 for r in assessed if r.patient.truth.dr is not None) >= 150


def test_pseudoprogression_and_its_timepoint(assessed: list[Assessed]) -> None:
    # iRECIST: an iUPD not confirmed and followed by iSD/iPR/iCR; dated at the iUPD timepoint.
    def got(r: Assessed) -> object:
        return [f.timepoint_index for f in findings(r.assessment, AtypicalKind.PSPD)]

    def want(r: Assessed) -> object:
        t = r.patient.truth
        return [t.pspd_timepoint_index] if t.pspd else []

    assert mismatches(assessed, got, want) == []


def test_hyperprogression_only_with_a_pre_baseline_scan(assessed: list[Assessed]) -> None:
    # Champiat 2017: RECIST PD at the first evaluation and TGR_exp / TGR_ref >= 2, so a pre-baseline scan.
    def got(r: Assessed) -> object:
        return "champiat" in {f.definition for f in findings(r.assessment, AtypicalKind.HPD)}

    assert mismatches(assessed, got, lambda r: r.patient.truth.hpd) == []
    for row in assessed:
        if findings(row.assessment, AtypicalKind.HPD):
            assert row.patient.truth.pre_baseline_date is not None, row.patient.patient_id


def test_delayed_response_flag(assessed: list[Assessed]) -> None:
    # Project definition (reference 1d): first iPR/iCR >= 12 weeks after start, after iSD, no iCPD before.
    def got(r: Assessed) -> object:
        return bool(findings(r.assessment, AtypicalKind.DER))

    assert mismatches(assessed, got, lambda r: r.patient.truth.delayed_response) == []


def test_pfs_ipfs_and_os(assessed: list[Assessed]) -> None:
    # Reference 1f: PFS to the first RECIST PD or death; iPFS to the iUPD later confirmed; OS to death.
    def got(r: Assessed) -> object:
        e = r.assessment.endpoints
        return (e.pfs_days, e.pfs_event, e.ipfs_days, e.ipfs_event, e.os_days, e.os_event)

    def want(r: Assessed) -> object:
        e = r.patient.truth.endpoints
        return (e.pfs_days, e.pfs_event, e.ipfs_days, e.ipfs_event, e.os_days, e.os_event)

    assert mismatches(assessed, got, want) == []


def test_treated_beyond_progression(assessed: list[Assessed], pan: list[Assessed]) -> None:
    # Guan 2024 Fig. 2g: an ICI dose after the first RECIST 1.1 PD; None without a PD. The mixed cohort
    # has no such true-PD patient (they stop at the PD scan) but SD / DR courses with a RECIST PD go on.
    def got(r: Assessed) -> object:
        return r.assessment.treated_beyond_progression

    def want(r: Assessed) -> object:
        return r.patient.truth.treated_beyond_progression

    assert mismatches(assessed, got, want) == []
    assert mismatches(pan, got, want) == []
    true_pd = [r.assessment for r in pan if r.patient.truth.response_group == "PD"]
    assert Counter(a.treated_beyond_progression for a in true_pd) == {True: 12, False: 18}


# --- the command itself ---------------------------------------------------------------------------------
def _observations(bundle: dict[str, Any], code: str) -> Iterator[dict[str, Any]]:
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and any(
            c.get("code") == code for c in resource["code"].get("coding", [])
        ):
            yield resource


def _value(observation: dict[str, Any]) -> str:
    code: str = observation["valueCodeableConcept"]["coding"][0]["code"]
    return code


def _component(observation: dict[str, Any], code: str) -> Any:
    for component in observation.get("component", []):
        if component["code"]["coding"][0]["code"] == code:
            return component.get(
                "valueInteger", component.get("valueBoolean", component.get("valueCodeableConcept"))
            )
    return None


def test_cli_assess_writes_the_intended_response_groups_and_findings(mixed: Cohort, tmp_path: Path) -> None:
    sample: list[GeneratedPatient] = []
    for trajectory in Trajectory:
        sample += [p for p in mixed.patients if p.truth.trajectory == trajectory.value][:CLI_PER_TRAJECTORY]
    small = Cohort("cli-sample", mixed.seed, tuple(sample))
    source, target = tmp_path / "bundle.json", tmp_path / "result.json"
    bundle = cohort_bundle(small)
    source.write_bytes(orjson.dumps(bundle))
    # Results name each patient the way the posted Bundle did: by its entry's fullUrl.
    subject = {
        e["resource"]["id"]: e["fullUrl"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Patient"
    }

    run = CliRunner().invoke(
        cli, ["assess", str(source), "--out", str(target), "--as-of", as_of_for(small).isoformat()]
    )

    assert run.exit_code == 0, run.output
    result = orjson.loads(target.read_bytes())
    groups = {o["subject"]["reference"]: _value(o) for o in _observations(result, codes.CODE_RESPONSE_GROUP)}
    assert groups == {subject[p.patient_id]: p.truth.response_group for p in sample}
    confirmed = {
        o["subject"]["reference"]: _value(o)
        for o in _observations(result, codes.CODE_RECIST11_BOR)
        if _component(o, codes.COMP_CONFIRMATION_REQUIRED) is True
    }
    assert confirmed == {subject[p.patient_id]: p.truth.best_overall_response_confirmed for p in sample}
    dr_found = {
        o["subject"]["reference"]: (
            _component(o, codes.COMP_TIMEPOINT_INDEX),
            _component(o, codes.COMP_DR_TRIGGER)["coding"][0]["code"],
            _component(o, codes.COMP_OVERALL_RESPONSE_AT_DETECTION)["coding"][0]["code"],
        )
        for o in _observations(result, codes.CODE_ATYPICAL_RESPONSE)
        if _value(o) == "DR"
    }
    assert dr_found == {
        subject[p.patient_id]: (
            p.truth.dr.timepoint_index,
            p.truth.dr.trigger,
            p.truth.dr.overall_response_at_detection,
        )
        for p in sample
        if p.truth.dr is not None
    }


# --- the paper cohorts --------------------------------------------------------------------------------------
def _first_evaluation_of_dr(rows: list[Assessed]) -> tuple[Counter[str], Counter[str]]:
    engine = Counter(
        r.assessment.timepoints[0].overall.value for r in rows if findings(r.assessment, AtypicalKind.DR)
    )
    truth = Counter(r.patient.truth.first_evaluation for r in rows if r.patient.truth.dr is not None)
    return engine, truth


def test_pan_tumour_cohort_groups_and_dr_first_evaluations(pan: list[Assessed]) -> None:
    bad = mismatches(
        pan, lambda r: r.assessment.response_group.value, lambda r: r.patient.truth.response_group
    )
    assert bad == []
    # Guan 2024 Table 1: DR 12, PsPD 7, CR/PR 25, SD 103, PD 30.
    assert Counter(r.assessment.response_group.value for r in pan) == {
        "DR": 12,
        "PsPD": 7,
        "CR-PR": 25,
        "SD": 103,
        "PD": 30,
    }
    engine, truth = _first_evaluation_of_dr(pan)
    assert engine == truth == {"PR": 4, "SD": 7, "PD": 1}  # Fig. 1c: DR in 4/29 PR, 7/117 SD, 1/30 PD


def test_nsclc_cohort_groups_and_dr_first_evaluations(nsclc: list[Assessed]) -> None:
    bad = mismatches(
        nsclc, lambda r: r.assessment.response_group.value, lambda r: r.patient.truth.response_group
    )
    assert bad == []
    # Guan 2024 Table 2 (validation cohort): DR 10, CR/PR 19, SD 27, PD 24.
    assert Counter(r.assessment.response_group.value for r in nsclc) == {
        "DR": 10,
        "CR-PR": 19,
        "SD": 27,
        "PD": 24,
    }
    engine, truth = _first_evaluation_of_dr(nsclc)
    assert engine == truth == {"PR": 3, "SD": 6, "PD": 1}  # validation text: DR in 3/23 PR, 6/33 SD, 1/24 PD
