"""Builders of small, fixed analysis inputs: serialised assessments shaped like `result_json`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import pandas as pd

from service.analytics.cohort import analysis_table


def result(
    *,
    group: str = "SD",
    first: str | None = "SD",
    start: str = "2021-01-15",
    pfs: tuple[int, bool] | None = (200, True),
    os_: tuple[int, bool] | None = (400, False),
    ipfs: tuple[int, bool] | None = None,
    dcb: bool | None = None,
    birth: str | None = "1960-06-01",
    sex: str | None = "male",
    tumour: str | None = "NSCLC",
    ecog: int | None = 1,
    bmi: str | None = "22.5",
    smoking: str | None = "never",
    line: int | None = 1,
    ici_class: str | None = "PD-1",
    combination: bool | None = True,
    pdl1: str | None = None,
    nlr: str | None = "3.10",
    dnlr: str | None = "2.00",
    lymphocytes: str | None = "1.5",
    ldh: str | None = "210",
    radiotherapy: bool | None = None,
    institution: str | None = "Hospital A",
    dr: tuple[int, str] | None = None,
    pspd: bool = False,
    bor: str | None = None,
    local_after_dr: bool | None = None,
    local_after_pd: bool | None = None,
) -> dict[str, Any]:
    """One serialised `PatientAssessment` with only the fields the analysis table reads."""
    atypical: list[dict[str, Any]] = []
    if dr is not None:
        atypical.append(
            {"kind": "DR", "timepoint_index": dr[0], "timepoint_date": "2021-06-01", "trigger": dr[1]}
        )
    if pspd:
        atypical.append(
            {"kind": "PsPD", "timepoint_index": 2, "timepoint_date": "2021-05-01", "trigger": None}
        )
    best = bor or {"CR-PR": "PR", "SD": "SD", "PD": "PD"}.get(group, first or "NE")
    ipfs = ipfs or pfs
    return {
        "format": 1,
        "patient_id": "never-read",
        "treatment_start": start,
        "response_group": group,
        "timepoints": [] if first is None else [{"index": 1, "overall": first}],
        "atypical": atypical,
        "best_response": {"response": best},
        "best_response_confirmed": {"response": best},
        "endpoints": {
            "pfs_days": None if pfs is None else pfs[0],
            "pfs_event": None if pfs is None else pfs[1],
            "ipfs_days": None if ipfs is None else ipfs[0],
            "ipfs_event": None if ipfs is None else ipfs[1],
            "os_days": None if os_ is None else os_[0],
            "os_event": None if os_ is None else os_[1],
            "dcb": dcb,
            "nlr_pre": nlr,
            "dnlr_pre": dnlr,
        },
        "profile": {
            "sex": sex,
            "birth_date": birth,
            "tumour_type": tumour,
            "ici_drug": "pembrolizumab",
            "ici_class": ici_class,
            "combination": combination,
            "line_of_therapy": line,
            "ecog": ecog,
            "bmi": bmi,
            "smoking": smoking,
            "pdl1_tps_pct": pdl1,
            "prior_radiotherapy": radiotherapy,
            "institution": institution,
        },
        "local_treatment_after_dr": local_after_dr,
        "local_treatment_after_pd": local_after_pd,
        "lymphocytes_pre": lymphocytes,
        "ldh_pre": ldh,
    }


def table(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return analysis_table(list(results))


# Guan 2024 Fig. 1c / Results: first-evaluation categories CR 1, PR 29, SD 117, PD 30 (177 patients);
# DR in 4 of the PR, 7 of the SD and 1 of the PD patients; PsPD 7 (all SD at first evaluation).
def seed_study_response_results() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rows += [result(group="CR-PR", first="CR", bor="CR")]
    rows += [result(group="DR", first="PR", dr=(3, "new-lesion")) for _ in range(4)]
    rows += [result(group="CR-PR", first="PR") for _ in range(24)]
    rows += [result(group="PD", first="PR", bor="PD")]
    rows += [result(group="DR", first="SD", dr=(3, "new-lesion")) for _ in range(7)]
    rows += [result(group="PsPD", first="SD", pspd=True) for _ in range(7)]
    rows += [result(group="SD", first="SD") for _ in range(103)]
    rows += [result(group="DR", first="PD", dr=(1, "target-lesion"))]
    rows += [result(group="PD", first="PD") for _ in range(29)]
    return rows


AS_OF = date(2023, 1, 1)
