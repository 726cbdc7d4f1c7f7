"""Each trajectory's generated measurements show its intended pattern, with clear margins.

Checked from the FHIR resources with the independent reader (`fhir_reading`), against the truth side
file. Thresholds: RECIST 1.1 section 4.3 (Eisenhauer 2009); DR: Bernard-Tessier / Guan 2024; PsPD:
iRECIST (Seymour 2017); HPD: Champiat 2017 (TGR ratio >= 2); delayed response: project definition
(first PR/CR >= 12 weeks after start, after SD).
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from service.synthetic import Cohort, Trajectory, TrajectoryOptions, generate_patient
from service.synthetic.trajectory import CourseError
from tests.unit.synthetic.fhir_reading import first_dr, read, recist_overall

SEEDS = range(8)


def _patients(trajectory: Trajectory, **options: object):
    opts = TrajectoryOptions(**options)  # type: ignore[arg-type]
    return [generate_patient(trajectory, seed=s, patient_id=f"t-{s}", options=opts) for s in SEEDS]


def test_truth_recist_matches_an_independent_reading_up_to_first_pd(mixed: Cohort) -> None:
    for patient in mixed.patients:
        derived = recist_overall(read(patient.resources))
        truth = list(patient.truth.recist_timepoints)
        upto = patient.truth.first_pd_index or len(truth)
        assert derived[:upto] == truth[:upto], patient.patient_id


def test_every_trajectory_lands_in_its_response_group(mixed: Cohort) -> None:
    expected = {
        "CR": "CR-PR",
        "PR": "CR-PR",
        "delayed-response": "CR-PR",
        "SD": "SD",
        "PD": "PD",
        "HPD": "PD",
        "PsPD": "PsPD",
        "DR-target": "DR",
        "DR-new-lesion": "DR",
        "DR-non-target": "DR",
    }
    assert {p.truth.trajectory for p in mixed.patients} == set(expected)
    for patient in mixed.patients:
        assert patient.truth.response_group == expected[patient.truth.trajectory]


def test_pr_sums_are_well_below_minus_30_percent() -> None:
    # PR: >= 30 % decrease vs baseline; generated at <= -38 % (margin), confirmed 28+ days later.
    for patient in _patients(Trajectory.PR):
        sums = read(patient.resources).sums()
        assert all(100 * s <= 62 * sums[0] for s in sums[1:3])
        assert patient.truth.best_overall_response_confirmed == "PR"


def test_cr_has_every_target_gone_and_nodes_below_10_mm() -> None:
    for patient in _patients(Trajectory.CR):
        reading = read(patient.resources)
        for sizes in reading.sizes[1:]:
            assert all(sizes[k] < 10 if k in reading.nodes else sizes[k] == 0 for k in reading.targets)
        assert patient.truth.best_overall_response_confirmed == "CR"


def test_sd_sums_stay_clear_of_both_thresholds_until_progression() -> None:
    for patient in _patients(Trajectory.SD):
        sums = read(patient.resources).sums()
        upto = (patient.truth.first_pd_index or len(sums)) - 1
        for i in range(1, upto + 1):
            assert 100 * sums[i] > 78 * sums[0]
            assert 100 * sums[i] < 110 * min(sums[:i])


@pytest.mark.parametrize("mode", ["target", "new-lesion", "non-target"])
def test_true_pd_never_has_a_shrinking_lesion(mode: str) -> None:
    for patient in _patients(Trajectory.PD, pd_mode=mode):
        reading = read(patient.resources)
        assert recist_overall(reading)[0] == "PD"
        for sizes in reading.sizes[1:]:
            assert all(100 * sizes[k] > 78 * reading.sizes[0][k] for k in reading.targets)
        assert first_dr(reading) is None


def test_pd_early_unconfirmed_pr_is_confirmed_bor_pd() -> None:
    # RECIST 1.1 Table 3: PR then PD with the PR before the minimum SD duration (42 d) -> BOR PD.
    for patient in _patients(Trajectory.PD, first_evaluation="PR"):
        reading = read(patient.resources)
        assert (reading.study_dates[1] - reading.ici_start).days < 42
        assert recist_overall(reading)[:2] == ["PR", "PD"]
        assert patient.truth.best_overall_response_unconfirmed == "PR"
        assert patient.truth.best_overall_response_confirmed == "PD"


@pytest.mark.parametrize(
    ("trajectory", "trigger"),
    [
        (Trajectory.DR_TARGET, "target-lesion"),
        (Trajectory.DR_NEW_LESION, "new-lesion"),
        (Trajectory.DR_NON_TARGET, "non-target-lesion"),
    ],
)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dr_appears_first_at_its_timepoint_by_exactly_one_trigger(
    trajectory: Trajectory, trigger: str, k: int
) -> None:
    for fe in ("PR", "SD"):
        if k == 1 and trajectory is not Trajectory.DR_TARGET:
            fe = "PD"
        for patient in _patients(trajectory, dr_timepoint=k, first_evaluation=fe):
            found = first_dr(read(patient.resources))
            assert found == (k, {trigger})
            assert patient.truth.dr is not None
            assert (patient.truth.dr.timepoint_index, patient.truth.dr.trigger) == (k, trigger)
            assert patient.truth.first_evaluation == fe
            at_detection = patient.truth.dr.overall_response_at_detection
            # Fig. 5: target-lesion DR is PR or SD overall (a/b); new / non-target lesion DR is PD (c).
            assert at_detection == (fe if trajectory is Trajectory.DR_TARGET else "PD")


def test_pspd_is_unconfirmed_iupd_followed_by_shrinkage_without_dr() -> None:
    for patient in _patients(Trajectory.PSPD):
        reading = read(patient.resources)
        assert recist_overall(reading)[:3] == ["SD", "PD", "SD"]
        assert patient.truth.irecist_timepoints[:3] == ("iSD", "iUPD", "iSD")
        assert (reading.study_dates[3] - reading.study_dates[2]).days <= 56  # inside the 4-8 week window
        assert first_dr(reading) is None
        assert patient.truth.response_group == "PsPD"
        assert patient.truth.best_overall_response_confirmed == "SD"


def _tgr(d0: Decimal, d1: Decimal, days: int) -> float:
    # Ferte / Champiat tumour growth rate, % volume per month.
    months = days / 30.4375
    return 100 * (math.exp(3 * math.log(float(d1 / d0)) / months) - 1)


def test_hpd_has_a_pre_baseline_scan_and_explosive_growth() -> None:
    for patient in _patients(Trajectory.HPD):
        reading = read(patient.resources)
        assert reading.pre_baseline is not None
        assert 0 < (reading.study_dates[0] - reading.pre_baseline).days <= 84
        pre = sum(reading.pre_sizes[k] for k in reading.targets)
        base, first = reading.sums()[0], reading.sums()[1]
        ref = _tgr(pre, base, (reading.study_dates[0] - reading.pre_baseline).days)
        exp = _tgr(base, first, (reading.study_dates[1] - reading.study_dates[0]).days)
        assert recist_overall(reading)[0] == "PD"
        assert exp >= 2 * ref  # Champiat 2017
        assert exp - ref > 50  # Ferrara 2018
        assert patient.truth.hpd


def test_delayed_response_first_responds_after_12_weeks_following_sd() -> None:
    for patient in _patients(Trajectory.DELAYED_RESPONSE):
        reading = read(patient.resources)
        overall = recist_overall(reading)
        first_pr = overall.index("PR")
        assert overall[:first_pr] == ["SD"] * first_pr
        assert first_pr >= 1
        assert (reading.study_dates[first_pr + 1] - reading.ici_start).days >= 84
        assert patient.truth.best_overall_response_confirmed == "PR"
        assert patient.truth.delayed_response


def test_impossible_variants_are_rejected() -> None:
    with pytest.raises(ValueError, match="PD at the first evaluation"):
        generate_patient(
            Trajectory.DR_NEW_LESION,
            seed=1,
            patient_id="x",
            options=TrajectoryOptions(dr_timepoint=1, first_evaluation="SD"),
        )
    with pytest.raises(ValueError, match="PR or SD"):
        generate_patient(
            Trajectory.DR_TARGET, seed=1, patient_id="x", options=TrajectoryOptions(first_evaluation="PD")
        )
    with pytest.raises(ValueError, match="FHIR id"):
        generate_patient(Trajectory.SD, seed=1, patient_id="bad id")
    assert issubclass(CourseError, RuntimeError)
