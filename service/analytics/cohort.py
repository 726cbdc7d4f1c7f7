"""The patient analysis table: one row per assessed patient, the covariates of the seed study.

Built from serialised `PatientAssessment`s (the `result_json` documents of the persistence store,
`adapters/persistence/summary.py`), so that analytics never touch a database or FHIR. The table
holds no patient identifier: not the FHIR id, not the birth date (only the age in whole years).

Columns (categories follow Guan et al., Sci Rep 2024, Table 1):

- `group` (ResponseGroup code: DR, PsPD, CR-PR, SD, PD, NE); `response_class`: `atypical` (DR or
  PsPD), `true-response` (CR-PR), `nonresponse` (SD or PD), `NE` (Methods, "Evaluation of efficacy").
- `bor` (unconfirmed RECIST 1.1 best overall response), `bor_confirmed`, `first_evaluation`
  (RECIST 1.1 overall response at the first follow-up timepoint, NonCR-NonPD counted as SD: the
  categories of Fig. 1a/1c), `dr_trigger`, `dr_timepoint` (index of the first DR finding).
- `pfs_days`/`pfs_event`, `ipfs_days`/`ipfs_event`, `os_days`/`os_event` (whole days from start),
  `dcb`; `treatment_start` (datetime64, midnight).
- covariates: `sex`, `age_years`, `age_band` (<60, >=60), `ecog`, `ecog_band` (0-1, >=2), `bmi`,
  `bmi_band` (<18.6, >=18.6), `smoking` (never, previous/current), `tumour_type` (engine code),
  `tumour_group` (NSCLC, SCLC, GC, HCC, Others), `line` and `line_band` (first, later), `ici_class`,
  `strategy` (monotherapy, combination), `pdl1_band` (NA, <1, 1-49, >=50), `nlr_pre`, `dnlr_pre`,
  `nlr_band` (<5, >=5), `lymphocytes_pre`, `ldh_pre`, `radiotherapy` (yes, no), `institution`,
  `local_treatment_after_dr`, `local_treatment_after_pd`, `treated_beyond_progression` (an ICI dose
  after the first RECIST 1.1 PD, Fig. 2g; None without a PD).

Decisions where the sources are silent:
- A missing covariate is `None` (a category of its own is never invented), except PD-L1 ("Not
  available" is a Table 1 category) and radiotherapy: the reader sets `prior_radiotherapy` only when
  a radiotherapy Procedure precedes the start, so no Procedure counts as "No" as in Table 1.
- `as_of` re-censors at an EARLIER date than the assessment's own: patients who started after it are
  dropped, events after it become censorings at it. It cannot extend follow-up beyond the data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from service.domain.age import completed_years

GROUPS = ("DR", "PsPD", "CR-PR", "SD", "PD")
RESPONSE_CLASSES = ("atypical", "true-response", "nonresponse")
FIRST_EVALUATION = ("CR", "PR", "SD", "PD", "NE")
TUMOUR_GROUPS = ("NSCLC", "SCLC", "GC", "HCC", "Others")
ENDPOINTS = ("pfs", "ipfs", "os")

_CLASS_OF_GROUP = {
    "DR": "atypical",
    "PsPD": "atypical",
    "CR-PR": "true-response",
    "SD": "nonresponse",
    "PD": "nonresponse",
    "NE": "NE",
}
_TUMOUR_GROUP = {"NSCLC": "NSCLC", "SCLC": "SCLC", "gastric": "GC", "HCC": "HCC"}
_FIRST_EVALUATION = {"CR": "CR", "PR": "PR", "SD": "SD", "NonCR-NonPD": "SD", "PD": "PD"}

COLUMNS = (
    "group",
    "response_class",
    "atypical",
    "bor",
    "bor_confirmed",
    "first_evaluation",
    "dr_trigger",
    "dr_timepoint",
    "pspd",
    "treatment_start",
    "pfs_days",
    "pfs_event",
    "ipfs_days",
    "ipfs_event",
    "os_days",
    "os_event",
    "dcb",
    "sex",
    "age_years",
    "age_band",
    "ecog",
    "ecog_band",
    "bmi",
    "bmi_band",
    "smoking",
    "tumour_type",
    "tumour_group",
    "line",
    "line_band",
    "ici_class",
    "strategy",
    "pdl1_band",
    "nlr_pre",
    "dnlr_pre",
    "nlr_band",
    "lymphocytes_pre",
    "ldh_pre",
    "radiotherapy",
    "institution",
    "local_treatment_after_dr",
    "local_treatment_after_pd",
    "treated_beyond_progression",
)

#: Categorical columns a cohort can be split by (KM `by`, Table 1 rows, filters).
CATEGORICAL = (
    "group",
    "response_class",
    "first_evaluation",
    "sex",
    "age_band",
    "ecog_band",
    "bmi_band",
    "smoking",
    "tumour_group",
    "line_band",
    "ici_class",
    "strategy",
    "pdl1_band",
    "nlr_band",
    "radiotherapy",
    "institution",
    "local_treatment_after_dr",
    "local_treatment_after_pd",
    "treated_beyond_progression",
)


def _decimal(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(Decimal(str(value)))
    except InvalidOperation:
        return None


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _age_years(profile: Mapping[str, Any], on: date) -> int | None:
    """Age at ICI start: stored as such since result format 2; format 1 kept the birth date."""
    age = profile.get("age_at_treatment_start")
    if isinstance(age, int) and not isinstance(age, bool):
        return age
    birth = _date(profile.get("birth_date"))
    return completed_years(birth, on) if birth is not None else None


def _band(value: float | None, cut: float, low: str, high: str) -> str | None:
    if value is None:
        return None
    return low if value < cut else high


def _pdl1_band(tps: float | None) -> str:
    if tps is None:
        return "NA"
    if tps < 1:
        return "<1"
    return "1-49" if tps < 50 else ">=50"


def _smoking(value: Any) -> str | None:
    if value == "never":
        return "never"
    if value in ("former", "current"):
        return "previous/current"
    return None


def _first_dr(atypical: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    findings = [f for f in atypical if f.get("kind") == "DR"]
    return min(findings, key=lambda f: (f["timepoint_index"], f["timepoint_date"])) if findings else None


def patient_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the analysis table from one serialised `PatientAssessment`."""
    start = date.fromisoformat(result["treatment_start"])
    group = result.get("response_group", "NE")
    profile: Mapping[str, Any] = result.get("profile") or {}
    ends: Mapping[str, Any] = result.get("endpoints") or {}
    timepoints = result.get("timepoints") or []
    atypical = result.get("atypical") or []
    dr = _first_dr(atypical)
    best = result.get("best_response") or {}
    confirmed = result.get("best_response_confirmed") or {}
    age = _age_years(profile, start)
    ecog = profile.get("ecog")
    bmi = _decimal(profile.get("bmi"))
    line = profile.get("line_of_therapy")
    combination = profile.get("combination")
    nlr = _decimal(ends.get("nlr_pre"))
    tumour = profile.get("tumour_type")
    first = _FIRST_EVALUATION.get(timepoints[0]["overall"], "NE") if timepoints else None
    return {
        "group": group,
        "response_class": _CLASS_OF_GROUP.get(group, "NE"),
        "atypical": group in ("DR", "PsPD"),
        "bor": best.get("response"),
        "bor_confirmed": confirmed.get("response"),
        "first_evaluation": first,
        "dr_trigger": dr.get("trigger") if dr else None,
        "dr_timepoint": dr.get("timepoint_index") if dr else None,
        "pspd": any(f.get("kind") == "PsPD" for f in atypical),
        "treatment_start": start,
        "pfs_days": ends.get("pfs_days"),
        "pfs_event": ends.get("pfs_event"),
        "ipfs_days": ends.get("ipfs_days"),
        "ipfs_event": ends.get("ipfs_event"),
        "os_days": ends.get("os_days"),
        "os_event": ends.get("os_event"),
        "dcb": ends.get("dcb"),
        "sex": profile.get("sex"),
        "age_years": age,
        "age_band": _band(age, 60, "<60", ">=60"),
        "ecog": ecog,
        "ecog_band": _band(ecog, 2, "0-1", ">=2"),
        "bmi": bmi,
        "bmi_band": _band(bmi, 18.6, "<18.6", ">=18.6"),
        "smoking": _smoking(profile.get("smoking")),
        "tumour_type": tumour,
        "tumour_group": None if tumour is None else _TUMOUR_GROUP.get(tumour, "Others"),
        "line": line,
        "line_band": None if line is None else ("first" if line == 1 else "later"),
        "ici_class": profile.get("ici_class"),
        "strategy": None if combination is None else ("combination" if combination else "monotherapy"),
        "pdl1_band": _pdl1_band(_decimal(profile.get("pdl1_tps_pct"))),
        "nlr_pre": nlr,
        "dnlr_pre": _decimal(ends.get("dnlr_pre")),
        "nlr_band": _band(nlr, 5, "<5", ">=5"),
        "lymphocytes_pre": _decimal(result.get("lymphocytes_pre")),
        "ldh_pre": _decimal(result.get("ldh_pre")),
        "radiotherapy": "yes" if profile.get("prior_radiotherapy") else "no",
        "institution": profile.get("institution"),
        "local_treatment_after_dr": result.get("local_treatment_after_dr"),
        "local_treatment_after_pd": result.get("local_treatment_after_pd"),
        "treated_beyond_progression": result.get("treated_beyond_progression"),
    }


_INT_COLUMNS = ("pfs_days", "ipfs_days", "os_days", "dr_timepoint", "age_years", "ecog", "line")
_FLOAT_COLUMNS = ("bmi", "nlr_pre", "dnlr_pre", "lymphocytes_pre", "ldh_pre")


def analysis_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The analysis table of serialised assessments (no identifiers; row order carries no meaning)."""
    rows = [patient_row(r) for r in results]
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = pd.array(frame[column], dtype="Int64")
    for column in _FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("pfs_event", "ipfs_event", "os_event", "dcb"):
        frame[column] = pd.array(frame[column], dtype="boolean")
    frame["treatment_start"] = pd.to_datetime(frame["treatment_start"]).astype("datetime64[s]")
    return frame


def _day(value: date) -> np.datetime64:
    return np.datetime64(value.isoformat(), "s")


@dataclass(frozen=True, slots=True)
class CohortFilter:
    """A cohort: every non-empty criterion must hold (values within one criterion are OR-ed).

    Date bounds are inclusive and apply to `treatment_start`; `as_of` re-censors (module docstring).
    """

    tumour_group: tuple[str, ...] = ()
    line_band: tuple[str, ...] = ()
    ici_class: tuple[str, ...] = ()
    strategy: tuple[str, ...] = ()
    sex: tuple[str, ...] = ()
    age_band: tuple[str, ...] = ()
    ecog_band: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    institution: tuple[str, ...] = ()
    start_from: date | None = None
    start_to: date | None = None
    as_of: date | None = None
    exclude_ne: bool = field(default=True)

    def key(self) -> str:
        """Canonical text of the filter (order of values does not matter), for caches and audit."""
        canonical = {
            f.name: (sorted(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in _FILTER_FIELDS
        }
        return json.dumps(canonical, sort_keys=True, default=str, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.key().encode()).hexdigest()[:16]


_FILTER_FIELDS = fields(CohortFilter)


_MULTI = ("tumour_group", "line_band", "ici_class", "strategy", "sex", "age_band", "ecog_band", "group")


def recensor(frame: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Censor every endpoint at `as_of` and drop patients who started after it (module docstring)."""
    out = frame[frame["treatment_start"].to_numpy() <= _day(as_of)].copy()
    starts = out["treatment_start"].to_numpy().astype("datetime64[D]")
    horizon = pd.array((np.datetime64(as_of.isoformat(), "D") - starts).astype(np.int64), dtype="Int64")
    for endpoint in ENDPOINTS:
        days, event = f"{endpoint}_days", f"{endpoint}_event"
        beyond = (out[days] > horizon).fillna(False).to_numpy(dtype=bool)
        out.loc[beyond, days] = horizon[beyond]
        out.loc[beyond, event] = False
    return out


def apply_filter(frame: pd.DataFrame, cohort: CohortFilter) -> pd.DataFrame:
    """The rows of `frame` in `cohort`, re-censored at `cohort.as_of` when given."""
    mask = np.ones(len(frame), dtype=bool)
    for name in _MULTI:
        wanted = getattr(cohort, name)
        if wanted:
            mask &= frame[name].isin(list(wanted)).to_numpy(dtype=bool)
    if cohort.institution:
        mask &= frame["institution"].isin(list(cohort.institution)).to_numpy(dtype=bool)
    if cohort.start_from is not None:
        mask &= frame["treatment_start"].to_numpy() >= _day(cohort.start_from)
    if cohort.start_to is not None:
        mask &= frame["treatment_start"].to_numpy() <= _day(cohort.start_to)
    if cohort.exclude_ne:
        mask &= (frame["group"] != "NE").to_numpy(dtype=bool)
    out = frame[mask]
    return recensor(out, cohort.as_of) if cohort.as_of is not None else out.copy()


def survival_frame(frame: pd.DataFrame, endpoint: str, by: str | None = None) -> pd.DataFrame:
    """The tidy frame of STYLE section 9: `duration_days`, `event` (0/1), `group` (str or absent),
    and `record_key` when the analysis table has it (cell keys of the portal's perturbation).

    Patients without a value for the endpoint (or for `by`) are left out.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    columns = [f"{endpoint}_days", f"{endpoint}_event"] + ([by] if by else [])
    part = frame[columns].dropna()
    out = pd.DataFrame(
        {
            "duration_days": part[f"{endpoint}_days"].astype("int64").to_numpy(),
            "event": part[f"{endpoint}_event"].astype(bool).astype("int64").to_numpy(),
        }
    )
    if by:
        out["group"] = part[by].astype(str).to_numpy()
    if "record_key" in frame:
        out["record_key"] = frame.loc[part.index, "record_key"].astype("int64").to_numpy()
    return out
