"""`GET /stats/subgroups/treatment-beyond-progression`: the seed study's subgroup analysis of true PD
patients treated beyond progression or not (Guan et al., Sci Rep 2024, Fig. 2g: median OS 7.9 versus
4.8 months, p=0.184), with the portal's privacy rules, audit and cache."""

from __future__ import annotations

from dataclasses import replace

from service.api.schemas.stats import SurvivalOut
from service.domain.results import PatientAssessment, Response, ResponseGroup
from tests.unit.api.test_stats_api import Portal, assessment, bearer, portal, token

__all__ = ["portal"]  # the fixture, re-used from the main stats API tests

URL = "/stats/subgroups/treatment-beyond-progression"
# Exact counts (the paper's figures): the audited trusted-analyst scope.
TRUSTED = "stats.read stats.trusted-analyst"


def _pd(pid: str, os_days: int, beyond: bool | None) -> PatientAssessment:
    base = assessment(pid, ResponseGroup.PD, Response.PD, os_days=os_days, os_event=True)
    return replace(base, treated_beyond_progression=beyond)


def _subgroup(n_beyond: int, n_stopped: int) -> list[PatientAssessment]:
    """True PD treated beyond progression: deaths on days 200, 210, ...; stopped: 100, 105, ..."""
    out = [_pd(f"tbp-{i}", 200 + 10 * i, True) for i in range(n_beyond)]
    out += [_pd(f"stop-{i}", 100 + 5 * i, False) for i in range(n_stopped)]
    # Not true PD, yet treated after a RECIST PD: must not enter the subgroup (Fig. 2g is real PD only).
    out += [
        replace(
            assessment(f"sd-tbp-{i}", ResponseGroup.SD, Response.SD, os_days=900, os_event=False),
            treated_beyond_progression=True,
        )
        for i in range(3)
    ]
    return out


async def test_os_by_treatment_beyond_progression_among_true_pd(portal: Portal) -> None:
    assert portal.box.store is not None
    await portal.box.store.record(_subgroup(12, 12), run_id="run-tbp")
    r = await portal.http.get(URL, headers=bearer(token(TRUSTED)))
    assert r.status_code == 200, r.text
    report = SurvivalOut.model_validate(r.json()).report
    curves = {c.group: c for c in report.curves}
    # The fixture's 20 PD patients carry no flag (None): neither arm. The 3 SD patients are excluded.
    assert {g: c.n for g, c in curves.items()} == {"True": 12, "False": 12}
    # Kaplan-Meier without censoring: the median is the 6th of 12 ordered deaths.
    assert curves["True"].median_days == 200 + 10 * 5
    assert curves["False"].median_days == 100 + 5 * 5
    assert report.overall is not None
    assert set(report.overall.groups) == {"True", "False"}
    assert report.overall.p < 0.05  # every stopped patient died before any treated one


async def test_researcher_sees_no_small_arm_and_the_query_is_audited_and_cached(portal: Portal) -> None:
    assert portal.box.store is not None
    await portal.box.store.record(_subgroup(12, 5), run_id="run-tbp-small")
    first = await portal.http.get(URL, headers=bearer(token()))
    assert first.status_code == 200, first.text
    report = first.json()["report"]
    # Privacy: a group of 1-10 is refused with a reason, not drawn, not tested.
    assert [c["group"] for c in report["curves"]] == ["True"]
    assert [x["subject"] for x in report["refused"]] == ["False"]
    assert report["overall"] is None
    # 12 at risk at the 1st death (day 200), 11 at the 2nd, 10 at the 3rd (day 220): the curve stops
    # there; a researcher sees that day on the weekly grid (217 = week 31).
    assert report["curves"][0]["cut_at_day"] == 217
    again = (await portal.http.get(URL, headers=bearer(token()))).json()
    assert (first.json()["cohort"]["cached"], again["cohort"]["cached"]) == (False, True)
    entries = portal.audit()
    assert entries[0].action == "stats.treatment-beyond-progression"
    assert entries[0].principal == "researcher-7"
    assert not any(pid in repr([e.detail for e in entries]) for pid in ("tbp-0", "stop-1"))


async def test_endpoint_is_documented_with_a_stats_operation_id(portal: Portal) -> None:
    doc = portal.app.openapi()
    operation = doc["paths"][URL]["get"]
    assert operation["operationId"] == "stats-treatment-beyond-progression"
