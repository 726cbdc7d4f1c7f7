"""The patient analysis table: Table 1 categories (Guan 2024), censoring at `as_of`, filters."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date

import pytest

from service.analytics.cohort import CohortFilter, apply_filter, patient_row, survival_frame

from .frames import result, table


def test_age_is_whole_years_at_treatment_start_not_today() -> None:
    # Born 1961-03-02, starts 2021-03-01: the 60th birthday is one day later, so the age is 59 (<60).
    row = patient_row(result(birth="1961-03-02", start="2021-03-01"))
    assert row["age_years"] == 59
    assert row["age_band"] == "<60"
    assert patient_row(result(birth="1961-03-01", start="2021-03-01"))["age_band"] == ">=60"


@pytest.mark.parametrize(
    ("column", "kwargs", "expected"),
    [
        # Table 1 cut points: BMI < 18.6 vs >= 18.6; NLR < 5 vs >= 5; ECOG 0-1 vs >= 2.
        ("bmi_band", {"bmi": "18.59"}, "<18.6"),
        ("bmi_band", {"bmi": "18.6"}, ">=18.6"),
        ("nlr_band", {"nlr": "4.99"}, "<5"),
        ("nlr_band", {"nlr": "5.00"}, ">=5"),
        ("ecog_band", {"ecog": 1}, "0-1"),
        ("ecog_band", {"ecog": 2}, ">=2"),
        # Table 1 PD-L1: Not available, < 1 %, 1-49 %, >= 50 %.
        ("pdl1_band", {"pdl1": None}, "NA"),
        ("pdl1_band", {"pdl1": "0.5"}, "<1"),
        ("pdl1_band", {"pdl1": "1"}, "1-49"),
        ("pdl1_band", {"pdl1": "49.9"}, "1-49"),
        ("pdl1_band", {"pdl1": "50"}, ">=50"),
        # Table 1 smoking: never vs previous/current.
        ("smoking", {"smoking": "former"}, "previous/current"),
        ("smoking", {"smoking": "current"}, "previous/current"),
        ("smoking", {"smoking": "unknown"}, None),
        # Table 1 tumour type: NSCLC, SCLC, GC, HCC, Others (ovarian, pancreatic, other).
        ("tumour_group", {"tumour": "gastric"}, "GC"),
        ("tumour_group", {"tumour": "ovarian"}, "Others"),
        ("tumour_group", {"tumour": "pancreatic"}, "Others"),
        ("line_band", {"line": 1}, "first"),
        ("line_band", {"line": 3}, "later"),
        ("strategy", {"combination": False}, "monotherapy"),
        # No radiotherapy Procedure before start is "No" in Table 1 (the reader never sets False).
        ("radiotherapy", {"radiotherapy": None}, "no"),
        ("radiotherapy", {"radiotherapy": True}, "yes"),
    ],
)
def test_table1_categories(column: str, kwargs: dict[str, object], expected: str | None) -> None:
    assert patient_row(result(**kwargs))[column] == expected  # type: ignore[arg-type]


def test_first_evaluation_counts_noncr_nonpd_as_sd_and_groups_map_to_response_classes() -> None:
    # Guan 2024 Methods: atypical = DR or PsPD; true response = CR/PR; nonresponse = true SD or true PD.
    assert patient_row(result(first="NonCR-NonPD"))["first_evaluation"] == "SD"
    assert patient_row(result(group="PsPD"))["response_class"] == "atypical"
    assert patient_row(result(group="CR-PR"))["response_class"] == "true-response"
    assert patient_row(result(group="PD"))["response_class"] == "nonresponse"


def test_first_dr_finding_gives_trigger_and_timepoint() -> None:
    row = patient_row(result(group="DR", dr=(4, "new-lesion")))
    assert (row["dr_trigger"], row["dr_timepoint"]) == ("new-lesion", 4)


def test_table_holds_no_patient_identifier_nor_birth_date() -> None:
    frame = table([result()])
    assert not {"patient_id", "birth_date", "fhir_patient_id"} & set(frame.columns)
    assert "never-read" not in frame.astype(str).to_numpy().ravel().tolist()


def test_as_of_censors_events_after_it_and_drops_later_starters() -> None:
    frame = table(
        [
            result(start="2022-01-01", pfs=(300, True), os_=(500, True)),  # both events after 2022-06-30
            result(start="2022-01-01", pfs=(100, True), os_=(150, False)),  # both before
            result(start="2022-08-01", pfs=(10, True)),  # started after as_of
        ]
    )
    cut = apply_filter(frame, CohortFilter(as_of=date(2022, 6, 30)))
    assert len(cut) == 2
    horizon = (date(2022, 6, 30) - date(2022, 1, 1)).days
    first = cut.iloc[0]
    assert (first["pfs_days"], bool(first["pfs_event"])) == (horizon, False)
    assert (first["os_days"], bool(first["os_event"])) == (horizon, False)
    second = cut.iloc[1]
    assert (second["pfs_days"], bool(second["pfs_event"])) == (100, True)


def test_filters_combine_with_and_values_with_or_and_ne_is_left_out() -> None:
    frame = table(
        [
            result(tumour="NSCLC", line=1),
            result(tumour="gastric", line=1),
            result(tumour="HCC", line=2),
            result(tumour="NSCLC", line=2, group="NE", first=None),
        ]
    )
    chosen = apply_filter(frame, CohortFilter(tumour_group=("NSCLC", "GC"), line_band=("first",)))
    assert sorted(chosen["tumour_group"]) == ["GC", "NSCLC"]
    assert len(apply_filter(frame, CohortFilter())) == 3


def test_filter_key_ignores_value_order() -> None:
    assert CohortFilter(sex=("male", "female")).key() == CohortFilter(sex=("female", "male")).key()
    assert CohortFilter(sex=("male",)).key() != CohortFilter(sex=("female",)).key()


def test_filter_key_names_every_criterion_so_no_two_cohorts_share_a_cache_entry() -> None:
    key = json.loads(CohortFilter(as_of=date(2024, 1, 31), exclude_ne=False).key())
    assert set(key) == {f.name for f in fields(CohortFilter)}
    assert key["as_of"] == "2024-01-31"
    assert key["exclude_ne"] is False
    assert CohortFilter(start_to=date(2024, 1, 31)).key() != CohortFilter(as_of=date(2024, 1, 31)).key()


def test_survival_frame_is_whole_days_with_0_1_events_and_skips_missing() -> None:
    frame = table([result(pfs=(30, True)), result(pfs=(45, False)), result(pfs=None)])
    tidy = survival_frame(frame, "pfs", "group")
    assert tidy["duration_days"].tolist() == [30, 45]
    assert tidy["event"].tolist() == [1, 0]
    assert set(tidy.columns) == {"duration_days", "event", "group"}


@pytest.mark.parametrize("flag", [True, False, None])
def test_treated_beyond_progression_is_read_and_splits_survival(flag: bool | None) -> None:
    # Guan 2024 Fig. 2g splits true PD by treatment beyond progression; None (no RECIST PD) is no arm.
    document = {**result(group="PD", first="PD"), "treated_beyond_progression": flag}
    assert patient_row(document)["treated_beyond_progression"] is flag
    tidy = survival_frame(table([document]), "os", by="treated_beyond_progression")
    assert list(tidy["group"]) == ([] if flag is None else [str(flag)])
