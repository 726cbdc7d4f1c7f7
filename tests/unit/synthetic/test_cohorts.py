"""The paper-shaped cohorts reproduce the seed study's counts exactly.

Source: Guan et al., "Dissociated response and treatment outcome with immune checkpoint blockade in
advanced cancer", Sci Rep 2024 (doi 10.1038/s41598-024-84009-8). Tables typed here from the paper
(group columns), independently of `service.synthetic.covariates`; counts are read back from the FHIR
resources, not from the generator's covariates.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from service.adapters.fhir import codes
from service.synthetic import Cohort, GeneratedPatient
from tests.unit.synthetic.fhir_reading import (
    covariate_categories,
    day_of,
    first_dr,
    is_ici,
    read,
    recist_overall,
)

# Table 1 rows: (characteristic, category): (DR, PsPD, CR/PR, SD, PD)
TABLE_1 = {
    ("sex", "male"): (10, 3, 23, 72, 8),
    ("sex", "female"): (2, 4, 2, 31, 22),
    ("age", "<60"): (4, 2, 8, 50, 11),
    ("age", ">=60"): (8, 5, 17, 53, 19),
    ("smoking", "never"): (6, 5, 10, 55, 16),
    ("smoking", "previous/current"): (6, 2, 15, 48, 14),
    ("ecog", "0-1"): (10, 5, 22, 81, 26),
    ("ecog", ">=2"): (2, 2, 3, 22, 4),
    ("bmi", "<18.6"): (2, 3, 2, 9, 2),
    ("bmi", ">=18.6"): (10, 4, 23, 94, 28),
    ("tumour_type", "NSCLC"): (4, 1, 12, 36, 0),
    ("tumour_type", "SCLC"): (2, 0, 0, 9, 5),
    ("tumour_type", "GC"): (1, 2, 7, 22, 7),
    ("tumour_type", "HCC"): (1, 1, 0, 8, 5),
    ("tumour_type", "Others"): (4, 3, 6, 28, 13),
    ("line", "first"): (6, 3, 14, 44, 12),
    ("line", "later"): (6, 4, 11, 59, 18),
    ("ici_class", "PD-1"): (11, 7, 21, 94, 26),
    ("ici_class", "PD-L1"): (1, 0, 4, 9, 4),
    ("strategy", "monotherapy"): (0, 3, 4, 20, 5),
    ("strategy", "combination"): (12, 4, 21, 83, 25),
    ("pdl1", "NA"): (8, 1, 14, 23, 10),
    ("pdl1", "<1"): (1, 3, 6, 58, 15),
    ("pdl1", "1-49"): (2, 2, 2, 16, 5),
    ("pdl1", ">=50"): (1, 1, 3, 6, 0),
    ("nlr", "<5"): (10, 5, 25, 84, 23),
    ("nlr", ">=5"): (2, 2, 0, 19, 7),
    ("radiotherapy", "no"): (7, 6, 18, 76, 24),
    ("radiotherapy", "yes"): (5, 1, 7, 27, 6),
}
TABLE_1_GROUPS = ("DR", "PsPD", "CR-PR", "SD", "PD")

# Table 2 rows: (DR, CR/PR, SD, PD). PD-L1 NA / >=50 % use the group columns (3+9+6+6, 1+2+1+1); the
# printed All column (19, 10) contradicts them.
TABLE_2 = {
    ("sex", "male"): (8, 17, 17, 12),
    ("sex", "female"): (2, 2, 10, 12),
    ("age", "<60"): (5, 4, 8, 6),
    ("age", ">=60"): (5, 15, 19, 18),
    ("smoking", "never"): (4, 3, 9, 13),
    ("smoking", "previous/current"): (6, 16, 18, 11),
    ("ecog", "0-1"): (10, 18, 27, 23),
    ("ecog", ">=2"): (0, 1, 0, 1),
    ("bmi", "<18.6"): (0, 1, 2, 3),
    ("bmi", ">=18.6"): (10, 18, 25, 21),
    ("histology", "AC"): (6, 8, 15, 16),
    ("histology", "SCC"): (3, 9, 10, 6),
    ("histology", "Others"): (1, 2, 2, 2),
    ("line", "first"): (1, 5, 11, 3),
    ("line", "later"): (9, 14, 16, 21),
    ("ici_class", "PD-1"): (8, 17, 21, 23),
    ("ici_class", "PD-L1"): (2, 2, 6, 1),
    ("strategy", "monotherapy"): (7, 9, 14, 11),
    ("strategy", "combination"): (3, 10, 13, 13),
    ("pdl1", "NA"): (3, 9, 6, 6),
    ("pdl1", "<1"): (3, 4, 7, 6),
    ("pdl1", "1-49"): (3, 4, 13, 11),
    ("pdl1", ">=50"): (1, 2, 1, 1),
    ("nlr", "<5"): (7, 15, 22, 16),
    ("nlr", ">=5"): (3, 4, 5, 8),
    ("radiotherapy", "no"): (5, 16, 22, 24),
    ("radiotherapy", "yes"): (5, 3, 5, 0),
}
TABLE_2_GROUPS = ("DR", "CR-PR", "SD", "PD")


def _table_from_fhir(cohort: Cohort, groups: tuple[str, ...], rows: dict[tuple[str, str], tuple[int, ...]]):
    counts: Counter[tuple[str, str, str]] = Counter()
    for patient in cohort.patients:
        for characteristic, category in covariate_categories(patient.resources).items():
            counts[(patient.truth.response_group, characteristic, category)] += 1
    return {row: tuple(counts[(g, *row)] for g in groups) for row in rows}


def test_pan_tumour_group_sizes_are_table_1_columns(pan: Cohort) -> None:
    assert Counter(p.truth.response_group for p in pan.patients) == {
        "DR": 12,
        "PsPD": 7,
        "CR-PR": 25,
        "SD": 103,
        "PD": 30,
    }


def test_pan_tumour_characteristics_match_table_1_exactly(pan: Cohort) -> None:
    assert _table_from_fhir(pan, TABLE_1_GROUPS, TABLE_1) == TABLE_1


def test_nsclc_group_sizes_are_table_2_columns(nsclc: Cohort) -> None:
    assert Counter(p.truth.response_group for p in nsclc.patients) == {
        "DR": 10,
        "CR-PR": 19,
        "SD": 27,
        "PD": 24,
    }


def test_nsclc_characteristics_match_table_2_exactly(nsclc: Cohort) -> None:
    assert _table_from_fhir(nsclc, TABLE_2_GROUPS, TABLE_2) == TABLE_2


def test_every_nsclc_cohort_condition_maps_to_nsclc(nsclc: Cohort) -> None:
    assert {covariate_categories(p.resources)["tumour_type"] for p in nsclc.patients} == {"NSCLC"}


def _first_evaluation_and_dr(cohort: Cohort) -> tuple[Counter[str], Counter[str]]:
    first: Counter[str] = Counter()
    dr: Counter[str] = Counter()
    for patient in cohort.patients:
        reading = read(patient.resources)
        category = recist_overall(reading)[0]
        first[category] += 1
        if first_dr(reading) is not None:
            dr[category] += 1
    return first, dr


def test_pan_tumour_first_evaluation_and_dr_rates_match_fig_1c(pan: Cohort) -> None:
    # Guan 2024 Fig. 1a/1c: first evaluation CR 1, PR 29, SD 117, PD 30; DR in 4/29, 7/117, 1/30.
    first, dr = _first_evaluation_and_dr(pan)
    assert first == {"CR": 1, "PR": 29, "SD": 117, "PD": 30}
    assert dr == {"PR": 4, "SD": 7, "PD": 1}


def test_nsclc_first_evaluation_dr_rates_match_validation_text(nsclc: Cohort) -> None:
    # Guan 2024, validation cohort: DR in 3/23 PR, 6/33 SD, 1/24 PD at the first evaluation.
    first, dr = _first_evaluation_and_dr(nsclc)
    assert first == {"PR": 23, "SD": 33, "PD": 24}
    assert dr == {"PR": 3, "SD": 6, "PD": 1}


def test_pan_tumour_dr_timepoints_and_triggers_match_fig_1e_1f(pan: Cohort) -> None:
    # Fig. 1f: DR found at TP1 2, TP2 1, TP3 5, TP4 3, TP5 1; text: 75 % new lesions, 25 % target lesions.
    found = [first_dr(read(p.resources)) for p in pan.by_group("DR")]
    assert all(f is not None and len(f[1]) == 1 for f in found)
    assert Counter(f[0] for f in found if f) == {1: 2, 2: 1, 3: 5, 4: 3, 5: 1}
    assert Counter(next(iter(f[1])) for f in found if f) == {"new-lesion": 9, "target-lesion": 3}


def test_only_dr_group_patients_show_a_dissociated_response(pan: Cohort, nsclc: Cohort) -> None:
    for patient in (*pan.patients, *nsclc.patients):
        assert (first_dr(read(patient.resources)) is not None) == (patient.truth.response_group == "DR")


def _local_treatments(cohort: Cohort, group: str) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for patient in cohort.by_group(group):
        start = read(patient.resources).ici_start
        for r in patient.resources:
            if r["resourceType"] != "Procedure":
                continue
            when = r.get("performedDateTime", r.get("performedPeriod", {}).get("start", ""))[:10]
            if when > start.isoformat():
                code = r["code"]["coding"][0]["code"]
                kinds["radiotherapy" if code == codes.RADIOTHERAPY_SNOMED else "thermal-ablation"] += 1
    return kinds


def _ici_days(patient: GeneratedPatient) -> list[date]:
    return [
        day_of(str(r["effectiveDateTime"]))
        for r in patient.resources
        if r["resourceType"] == "MedicationAdministration" and is_ici(r)
    ]


def _pd_scan(patient: GeneratedPatient) -> date:
    first_pd = patient.truth.first_pd_index
    assert first_pd is not None
    return date.fromisoformat(patient.truth.timepoint_dates[first_pd - 1])


def _beyond(patient: GeneratedPatient) -> bool:
    """An ICI dose in the FHIR data strictly after the first RECIST 1.1 PD scan."""
    return any(day > _pd_scan(patient) for day in _ici_days(patient))


@pytest.mark.parametrize(("cohort", "treated", "total"), [("pan", 12, 30), ("nsclc", 10, 24)])
def test_a_documented_share_of_true_pd_is_treated_beyond_progression(
    request: pytest.FixtureRequest, cohort: str, treated: int, total: int
) -> None:
    # Guan 2024 Fig. 2g compares real PD treated beyond progression or not; "all DR but not true PD
    # patients were administered with continuous ICI therapy". Share chosen [P]: 40 % of group PD.
    patients = request.getfixturevalue(cohort).by_group("PD")
    assert len(patients) == total
    assert sum(_beyond(p) for p in patients) == treated
    assert [p.truth.treated_beyond_progression for p in patients] == [_beyond(p) for p in patients]
    for patient in patients:  # the others stop at the PD scan (a dose on that day is not beyond it)
        if not _beyond(patient):
            assert max(_ici_days(patient)) <= _pd_scan(patient)
        else:  # never together with a local treatment, never HPD [P]
            assert not patient.truth.local_treatments
            assert not patient.truth.hpd


def test_local_treatment_after_finding_matches_text(pan: Cohort) -> None:
    # "Four patients in the DR group and 6 in the real PD group received local treatments ... local
    # radiotherapy (2 DR and 4 PD patients) and image-guided thermal ablation (2 DR and 2 PD patients)."
    assert _local_treatments(pan, "DR") == {"radiotherapy": 2, "thermal-ablation": 2}
    assert _local_treatments(pan, "PD") == {"radiotherapy": 4, "thermal-ablation": 2}


def test_follow_up_stays_within_the_papers_range(pan: Cohort) -> None:
    # "The median follow-up was 9.5 months (range 1.3 to 27.6)": nobody is followed beyond 27.6 months.
    longest = max(p.truth.endpoints.os_days for p in pan.patients if not p.truth.endpoints.os_event)
    assert longest <= 27.6 * 30.4375
    assert min(p.truth.endpoints.os_days for p in pan.patients) >= 1.3 * 30.4375


@pytest.mark.parametrize(("group", "pfs_months", "os_months"), [("PD", 1.6, 5.6), ("SD", 8.5, 16.8)])
def test_generating_medians_are_recorded_from_the_paper(
    pan: Cohort, group: str, pfs_months: float, os_months: float
) -> None:
    # Guan 2024 "Prognosis of patients with DR": true PD 1.6 / 5.6 months, true SD 8.5 / 16.8 months.
    patients = [p for p in pan.by_group(group) if not p.truth.hpd]  # HPD has its own (faster) medians
    assert {p.truth.endpoints.generating_pfs_median_months for p in patients} == {pfs_months}
    if group == "SD":
        assert {p.truth.endpoints.generating_os_median_months for p in patients} == {os_months}
    else:  # local treatment 4.8 (Fig. 2f); else 7.9 treated beyond progression, 4.8 not (Fig. 2g)
        assert {p.truth.endpoints.generating_os_median_months for p in patients} == {4.8, 7.9}
        beyond = {p.truth.endpoints.generating_os_median_months for p in patients if _beyond(p)}
        assert beyond == {7.9}
