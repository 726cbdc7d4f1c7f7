"""the 177-patient synthetic cohort shaped like the seed study, end to end.

FHIR resources of every generated patient -> `adapters.fhir.inbound` -> `domain.engine.assess` ->
the SQL store -> `/stats/*` over HTTP, with an approved-study token (minimum cell size 1, so that
the paper's small cells are shown). Expected values are the paper's (Guan et al., Sci Rep 2024,
Table 1 and Fig. 1c) and the generator's ground truth (`GroundTruth.endpoints`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import numpy as np
import pytest

from service.adapters.fhir.inbound import patient_input
from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.api.auth import StatsConfig
from service.bootstrap import Container
from service.config import Settings
from service.domain.engine import assess
from service.synthetic import pan_tumour_cohort

from .jwts import public_pem
from .test_stats_api import ISSUER, RSA_KEY, bearer, token

SEED = 1
GROUPS = ("DR", "PsPD", "CR-PR", "SD", "PD")

# Guan 2024 Table 1: (variable, category) -> (All, DR, PsPD, CR/PR, SD, PD), counts as printed.
TABLE1: dict[tuple[str, str], tuple[int, ...]] = {
    ("sex", "male"): (116, 10, 3, 23, 72, 8),
    ("sex", "female"): (61, 2, 4, 2, 31, 22),
    ("age_band", "<60"): (75, 4, 2, 8, 50, 11),
    ("age_band", ">=60"): (102, 8, 5, 17, 53, 19),
    ("smoking", "never"): (92, 6, 5, 10, 55, 16),
    ("smoking", "previous/current"): (85, 6, 2, 15, 48, 14),
    ("ecog_band", "0-1"): (144, 10, 5, 22, 81, 26),
    ("ecog_band", ">=2"): (33, 2, 2, 3, 22, 4),
    ("bmi_band", "<18.6"): (18, 2, 3, 2, 9, 2),
    ("bmi_band", ">=18.6"): (159, 10, 4, 23, 94, 28),
    ("tumour_group", "NSCLC"): (53, 4, 1, 12, 36, 0),
    ("tumour_group", "SCLC"): (16, 2, 0, 0, 9, 5),
    ("tumour_group", "GC"): (39, 1, 2, 7, 22, 7),
    ("tumour_group", "HCC"): (15, 1, 1, 0, 8, 5),
    ("tumour_group", "Others"): (54, 4, 3, 6, 28, 13),
    ("line_band", "first"): (79, 6, 3, 14, 44, 12),
    ("line_band", "later"): (98, 6, 4, 11, 59, 18),
    ("ici_class", "PD-1"): (159, 11, 7, 21, 94, 26),
    ("ici_class", "PD-L1"): (18, 1, 0, 4, 9, 4),
    ("strategy", "monotherapy"): (32, 0, 3, 4, 20, 5),
    ("strategy", "combination"): (145, 12, 4, 21, 83, 25),
    ("pdl1_band", "NA"): (56, 8, 1, 14, 23, 10),
    ("pdl1_band", "<1"): (83, 1, 3, 6, 58, 15),
    ("pdl1_band", "1-49"): (27, 2, 2, 2, 16, 5),
    ("pdl1_band", ">=50"): (11, 1, 1, 3, 6, 0),
    ("nlr_band", "<5"): (147, 10, 5, 25, 84, 23),
    ("nlr_band", ">=5"): (30, 2, 2, 0, 19, 7),
    ("radiotherapy", "no"): (131, 7, 6, 18, 76, 24),
    ("radiotherapy", "yes"): (46, 5, 1, 7, 27, 6),
}
# Percentages printed in Table 1 that do not follow from its own counts (typos in the paper):
# (variable, category, column) -> printed value. Every other percentage must match exactly.
PAPER_PERCENT_TYPOS = {
    ("age_band", "<60", "DR"): 30.0,  # 4/12 = 33.3
    ("age_band", ">=60", "DR"): 60.0,  # 8/12 = 66.7
    ("age_band", ">=60", "SD"): 52.5,  # 53/103 = 51.5
    ("tumour_group", "NSCLC", "all"): 30.0,  # 53/177 = 29.9
    ("tumour_group", "SCLC", "SD"): 8.6,  # 9/103 = 8.7
}


def _half_up(count: int, of: int) -> float:
    return float((Decimal(100 * count) / Decimal(of)).quantize(Decimal("0.1"), ROUND_HALF_UP))


@dataclass
class Acceptance:
    http: httpx.AsyncClient
    truths: list[dict[str, Any]]


@pytest.fixture(scope="module")
def assessed() -> tuple[list[Any], list[dict[str, Any]]]:
    cohort = pan_tumour_cohort(SEED)
    truths = [p.truth.to_json() for p in cohort.patients]
    as_of = max(date.fromisoformat(t["endpoints"]["last_contact_date"]) for t in truths) + timedelta(days=30)
    assessments = []
    for generated in cohort.patients:
        read = patient_input(generated.patient_id, generated.resources)
        assert read.timeline is not None, generated.patient_id
        assessments.append(assess(read.timeline, as_of=as_of))
    return assessments, truths


@pytest.fixture
async def acceptance(
    app_settings: Settings, assessed: tuple[list[Any], list[dict[str, Any]]]
) -> AsyncIterator[Acceptance]:
    assessments, truths = assessed
    migrate(app_settings.database_url)
    async with Container(app_settings) as box:
        app = create_app(app_settings, container=box)
        app.state.stats_config = StatsConfig(jwt_public_key_pem=public_pem(RSA_KEY), jwt_issuer=ISSUER)
        assert box.store is not None
        await box.store.record(assessments, run_id="acceptance")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Acceptance(http, truths)


# Exact counts (the paper's figures): the audited trusted-analyst scope.
TRUSTED = "stats.read stats.trusted-analyst"


async def test_table1_counts_and_percentages_as_in_the_paper(acceptance: Acceptance) -> None:
    r = await acceptance.http.get("/stats/baseline", headers=bearer(token(TRUSTED)))
    assert r.status_code == 200
    report = r.json()["report"]
    assert report["groups"] == list(GROUPS)
    assert report["group_sizes"] == [12, 7, 25, 103, 30]  # Table 1 header
    assert report["n"] == 177
    rows = {(row["variable"], row["category"]): row for row in report["rows"]}
    for key, expected in TABLE1.items():
        row = rows[key]
        assert [row["total"], *row["counts"]] == list(expected), key
        sizes = (177, 12, 7, 25, 103, 30)
        for column, count, size, percent in zip(
            ("all", *GROUPS), expected, sizes, [row["total_percent"], *row["percents"]], strict=True
        ):
            assert percent == _half_up(count, size), (key, column)
            printed = PAPER_PERCENT_TYPOS.get((*key, column))
            if printed is not None:
                assert percent != printed  # the paper's misprint, not ours
    tests = {t["variable"]: t for t in report["tests"]}
    assert set(tests) == {variable for variable, _ in TABLE1}
    # Sex differs sharply across the groups (CR/PR 92 % male, PD 27 % male): Fisher-Freeman-Halton
    # on the 2 x 5 block is exact and far below 0.05; radiotherapy (58-86 % "no") is not.
    assert tests["sex"]["test"] == "fisher-freeman-halton-exact"
    assert tests["sex"]["p"] < 0.001
    assert tests["radiotherapy"]["p"] > 0.05


async def test_dr_by_first_evaluation_category_as_in_fig_1c(acceptance: Acceptance) -> None:
    r = await acceptance.http.get("/stats/response", headers=bearer(token(TRUSTED)))
    report = r.json()["report"]
    found = {p["name"]: (p["numerator"], p["denominator"]) for p in report["dr_by_first_evaluation"]}
    assert (found["PR"], found["SD"], found["PD"]) == ((4, 29), (7, 117), (1, 30))
    rates = {p["name"]: p for p in report["rates"]}
    assert (rates["dr"]["numerator"], rates["pspd"]["numerator"]) == (12, 7)  # 6.8 % and 4.0 %
    assert rates["orr_first_evaluation"]["numerator"] == 30  # ORR 17.0 % (Fig. 1a)
    assert rates["dcr_first_evaluation"]["numerator"] == 147  # DCR 83.1 %
    timepoints = {c["label"]: c["count"] for c in report["dr_by_timepoint"]}
    assert timepoints == {"1": 2, "2": 1, "3": 5, "4": 3, "5": 1}  # Fig. 1f
    triggers = {c["label"]: c["count"] for c in report["dr_by_trigger"]}
    assert (triggers["new-lesion"], triggers["target-lesion"]) == (9, 3)  # 75 % / 25 %


def _truth_median(truths: list[dict[str, Any]], endpoint: str, keep: set[str]) -> float | None:
    from lifelines import KaplanMeierFitter

    chosen = [t["endpoints"] for t in truths if t["response_group"] in keep]
    kmf = KaplanMeierFitter().fit(
        np.array([e[f"{endpoint}_days"] for e in chosen]), np.array([e[f"{endpoint}_event"] for e in chosen])
    )
    median = float(kmf.median_survival_time_)
    return median if np.isfinite(median) else None


@pytest.mark.parametrize("endpoint", ["pfs", "os"])
async def test_km_medians_within_15_percent_of_the_generated_truth(
    acceptance: Acceptance, endpoint: str
) -> None:
    classes = {"atypical": {"DR", "PsPD"}, "nonresponse": {"SD", "PD"}, "true-response": {"CR-PR"}}
    for by, members in (("group", {g: {g} for g in GROUPS}), ("response_class", classes)):
        r = await acceptance.http.get(
            f"/stats/survival?endpoint={endpoint}&by={by}", headers=bearer(token(TRUSTED))
        )
        assert r.status_code == 200
        curves = {c["group"]: c for c in r.json()["report"]["curves"]}
        assert set(curves) == set(members)
        compared = 0
        for name, keep in members.items():
            truth = _truth_median(acceptance.truths, endpoint, keep)
            got = curves[name]["median_days"]
            if truth is None:
                assert got is None, (endpoint, name)
                continue
            assert got is not None, (endpoint, name)
            assert abs(got - truth) <= 0.15 * truth, (endpoint, name, got, truth)
            compared += 1
        assert compared >= 1
