"""Treatment beyond progression for true PD (Guan et al., Sci Rep 2024, "Subsequent treatment for
patients with DR" and Fig. 2g: real PD patients treated beyond progression, median OS 7.9 vs 4.8
months, p=0.184). Research field of `PatientAssessment`; the response rules ignore it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from service.domain.engine import assess
from service.domain.model import PatientTimeline
from service.domain.results import Response

from .builders import AS_OF, START, TimelineBuilder, single_target


def _doses(timeline: PatientTimeline, *days: int) -> PatientTimeline:
    return replace(timeline, ici_administration_dates=tuple(TimelineBuilder().day(d) for d in days))


# Target 50 -> 40 (nadir, day 56) -> 60 on day 112: +20 mm and +50 % over the nadir, RECIST 1.1 PD
# (section 4.3.1: >= 20 % and >= 5 mm absolute increase over the smallest sum).
PD_ON_DAY_112 = single_target(50, 40, 60)


def test_fixture_has_its_first_recist_pd_on_day_112() -> None:
    result = assess(PD_ON_DAY_112, as_of=AS_OF)
    first_pd = next(t.timepoint_date for t in result.timepoints if t.overall is Response.PD)
    assert first_pd == TimelineBuilder().day(112)


def test_a_dose_after_the_pd_scan_is_treatment_beyond_progression() -> None:
    # Guan 2024 Fig. 2g: ICI continued after the PD was documented.
    result = assess(_doses(PD_ON_DAY_112, 0, 21, 42, 63, 84, 105, 126), as_of=AS_OF)
    assert result.treated_beyond_progression is True


def test_a_dose_on_the_pd_scan_day_is_not_beyond_it() -> None:
    # Strictly after [P]: the dose of the scan day was given before the scan was read.
    result = assess(_doses(PD_ON_DAY_112, 0, 21, 42, 63, 84, 105, 112), as_of=AS_OF)
    assert result.treated_beyond_progression is False


def test_stopping_at_pd_is_not_treatment_beyond_progression() -> None:
    result = assess(_doses(PD_ON_DAY_112, 0, 21, 42, 63, 84, 105), as_of=AS_OF)
    assert result.treated_beyond_progression is False


def test_a_dose_after_as_of_is_not_seen() -> None:
    # Events after `as_of` are ignored (engine contract); day 126 is after an as_of of day 120.
    result = assess(_doses(PD_ON_DAY_112, 0, 105, 126), as_of=TimelineBuilder().day(120))
    assert result.treated_beyond_progression is False


def test_without_recist_pd_the_subgroup_does_not_apply() -> None:
    # 50 -> 45 -> 45: stable disease, no PD timepoint, so neither yes nor no.
    result = assess(_doses(single_target(50, 45, 45), 0, 21, 200), as_of=AS_OF)
    assert result.treated_beyond_progression is None


def test_without_baseline_the_subgroup_does_not_apply() -> None:
    timeline = replace(TimelineBuilder().build(), ici_administration_dates=(START, date(2024, 6, 1)))
    assert assess(timeline, as_of=AS_OF).treated_beyond_progression is None
