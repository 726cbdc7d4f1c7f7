"""Ground truth carried beside (never inside) the generated FHIR data.

Rules agreed with the engine engineer (see also the module docstring of `trajectory`):
- `recist_timepoints[i-1]` is the RECIST 1.1 Table 1 response at follow-up i (1 = first evaluation),
  read strictly per timepoint: nadir = smallest earlier sum (baseline included), a lesion not seen at
  baseline = new lesion, a non-target in `unequivocal-progression`/`increased` = non-target PD. Every
  value after the first PD is PD (RECIST 1.1 section 4.4.1 has no response after progression; the
  engine marks those timepoints post-progression, docs/rules/recist-1.1.md). The generator keeps
  sums away from "continued PR" drift, so strict = reported.
- Confirmed BOR: RECIST 1.1 Table 3 as operationalised by admiralonco `derive_param_confirmed_bor`
  (confirmation >= 28 days, no NE/SD in between, minimum SD duration 42 days from treatment start).
- Unconfirmed BOR: best of CR > PR > SD (>= 42 days) > PD > NE up to the first PD.
- iRECIST BOR (Seymour 2017 Table 3): best of iCR > iPR > iSD (>= 42 days); else iCPD if confirmed;
  else iUPD; else NE.
- ResponseGroup (contract section 2): DR, else PsPD, else from the confirmed BOR.
- Delayed response (project definition, reference section 1d [P]): derived from the iRECIST labels,
  not only set for the delayed-response trajectory, so a PsPD course that goes on to iPR >= 12 weeks
  after start (iSD, iUPD, iSD, iPR) is one too (ground-truth check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.synthetic.covariates import Covariates

TRUTH_SCHEMA_VERSION = "1"
CONFIRM_DAYS = 28
MIN_SD_DAYS = 42
DELAYED_RESPONSE_MIN_DAYS = 84  # 12 weeks (engine parameter `delayed_response_min_days`)


def confirmed_bor(responses: Sequence[str], days: Sequence[int]) -> str:
    """RECIST 1.1 confirmed best overall response (admiralonco semantics, no NE tolerance needed)."""
    upto = _until_first_pd(responses)
    for wanted, allowed in (("CR", {"CR"}), ("PR", {"CR", "PR"})):
        for i in range(upto):
            if responses[i] not in allowed:
                continue
            for j in range(i + 1, upto):
                if responses[j] not in allowed:
                    break
                if days[j] - days[i] >= CONFIRM_DAYS:
                    return wanted
    if any(responses[i] in ("CR", "PR", "SD", "NonCR-NonPD") and days[i] >= MIN_SD_DAYS for i in range(upto)):
        return "SD"
    if "PD" in responses:
        return "PD"
    return "NE"


def unconfirmed_bor(responses: Sequence[str], days: Sequence[int]) -> str:
    upto = _until_first_pd(responses)
    seen = responses[:upto]
    if "CR" in seen:
        return "CR"
    if "PR" in seen:
        return "PR"
    if any(seen[i] == "SD" and days[i] >= MIN_SD_DAYS for i in range(upto)):
        return "SD"
    return "PD" if "PD" in responses else "NE"


def irecist_bor(responses: Sequence[str], days: Sequence[int]) -> str:
    end = responses.index("iCPD") + 1 if "iCPD" in responses else len(responses)
    seen = responses[:end]
    for best in ("iCR", "iPR"):
        if best in seen:
            return best
    if any(seen[i] == "iSD" and days[i] >= MIN_SD_DAYS for i in range(end)):
        return "iSD"
    for worst in ("iCPD", "iUPD"):
        if worst in seen:
            return worst
    return "NE"


def delayed_response(responses: Sequence[str], days: Sequence[int]) -> bool:
    """Project-defined delayed response (reference section 1d [P]).

    The first iPR/iCR of the course comes >= 12 weeks after ICI start, after at least one iSD, with no
    confirmed progression (iCPD) before it. An unconfirmed iUPD in between (pseudoprogression) does
    not prevent it: the reference excludes only "intervening confirmed PD".
    """
    seen_isd = False
    for response, day in zip(responses, days, strict=True):
        if response == "iCPD":
            return False
        if response == "iSD":
            seen_isd = True
        if response in ("iPR", "iCR"):
            return seen_isd and day >= DELAYED_RESPONSE_MIN_DAYS
    return False


def _until_first_pd(responses: Sequence[str]) -> int:
    return responses.index("PD") + 1 if "PD" in responses else len(responses)


def response_group(*, dr: bool, pspd: bool, confirmed: str) -> str:
    if dr:
        return "DR"
    if pspd:
        return "PsPD"
    return {"CR": "CR-PR", "PR": "CR-PR", "SD": "SD", "NonCR-NonPD": "SD", "PD": "PD"}.get(confirmed, "NE")


@dataclass(frozen=True, slots=True)
class DrTruth:
    """The first dissociated response (Bernard-Tessier, Guan 2024 extension)."""

    trigger: str  # target-lesion | non-target-lesion | new-lesion
    timepoint_index: int
    timepoint_date: str
    overall_response_at_detection: str  # RECIST 1.1 overall at that timepoint
    shrinking_lesions: tuple[str, ...]  # BodyStructure identifier values, > 30 % below baseline
    progressing_lesions: tuple[str, ...]  # growing target / new lesion / progressing non-target


@dataclass(frozen=True, slots=True)
class LocalTreatmentTruth:
    kind: str  # radiotherapy | thermal-ablation
    date: str
    after_finding: str  # DR | PD
    lesion: str | None  # BodyStructure identifier value treated


@dataclass(frozen=True, slots=True)
class EndpointTruth:
    """Outcomes in whole days from ICI start (day 0).

    PFS: first RECIST 1.1 PD timepoint or death, else censored at the last scan. iPFS: the iUPD that
    a later iCPD confirms, or death, else censored at the last scan. OS: death, else censored at last
    contact.
    """

    pfs_days: int
    pfs_event: bool
    ipfs_days: int
    ipfs_event: bool
    os_days: int
    os_event: bool
    last_contact_date: str
    death_date: str | None
    last_scan_date: str
    drawn_progression_day: int | None  # survival-model draw (None: fixed by the pattern / none)
    generating_pfs_median_months: float
    generating_os_median_months: float


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Everything a generated patient was built to show. `to_json()` gives the side-file content."""

    patient_id: str
    cohort: str | None
    trajectory: str
    response_group: str
    treatment_start: str
    baseline_date: str
    pre_baseline_date: str | None
    timepoint_dates: tuple[str, ...]
    recist_timepoints: tuple[str, ...]
    irecist_timepoints: tuple[str, ...]
    baseline_sum_mm: str
    target_sums_mm: tuple[str, ...]
    first_evaluation: str
    first_pd_index: int | None
    best_overall_response_confirmed: str
    best_overall_response_unconfirmed: str
    irecist_best_overall_response: str
    dr: DrTruth | None
    pspd: bool
    pspd_timepoint_index: int | None
    hpd: bool
    delayed_response: bool
    local_treatments: tuple[LocalTreatmentTruth, ...]
    endpoints: EndpointTruth
    covariates: Covariates
    lesions: tuple[dict[str, Any], ...]  # identifier, organ, role, lymph_node, first_seen_index
    # An ICI dose given strictly after the first RECIST 1.1 PD timepoint date (Guan 2024, Fig. 2g:
    # treatment beyond progression); None without a RECIST 1.1 PD timepoint.
    treated_beyond_progression: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": TRUTH_SCHEMA_VERSION,
            "patient_id": self.patient_id,
            "cohort": self.cohort,
            "trajectory": self.trajectory,
            "response_group": self.response_group,
            "treatment_start": self.treatment_start,
            "baseline_date": self.baseline_date,
            "pre_baseline_date": self.pre_baseline_date,
            "timepoint_dates": list(self.timepoint_dates),
            "recist_timepoints": list(self.recist_timepoints),
            "irecist_timepoints": list(self.irecist_timepoints),
            "baseline_sum_mm": self.baseline_sum_mm,
            "target_sums_mm": list(self.target_sums_mm),
            "first_evaluation": self.first_evaluation,
            "first_pd_index": self.first_pd_index,
            "best_overall_response_confirmed": self.best_overall_response_confirmed,
            "best_overall_response_unconfirmed": self.best_overall_response_unconfirmed,
            "irecist_best_overall_response": self.irecist_best_overall_response,
            "dr": None
            if self.dr is None
            else {
                "trigger": self.dr.trigger,
                "timepoint_index": self.dr.timepoint_index,
                "timepoint_date": self.dr.timepoint_date,
                "overall_response_at_detection": self.dr.overall_response_at_detection,
                "shrinking_lesions": list(self.dr.shrinking_lesions),
                "progressing_lesions": list(self.dr.progressing_lesions),
            },
            "pspd": self.pspd,
            "pspd_timepoint_index": self.pspd_timepoint_index,
            "hpd": self.hpd,
            "delayed_response": self.delayed_response,
            "local_treatments": [
                {"kind": t.kind, "date": t.date, "after_finding": t.after_finding, "lesion": t.lesion}
                for t in self.local_treatments
            ],
            "endpoints": {
                "pfs_days": self.endpoints.pfs_days,
                "pfs_event": self.endpoints.pfs_event,
                "ipfs_days": self.endpoints.ipfs_days,
                "ipfs_event": self.endpoints.ipfs_event,
                "os_days": self.endpoints.os_days,
                "os_event": self.endpoints.os_event,
                "last_contact_date": self.endpoints.last_contact_date,
                "death_date": self.endpoints.death_date,
                "last_scan_date": self.endpoints.last_scan_date,
                "drawn_progression_day": self.endpoints.drawn_progression_day,
                "generating_pfs_median_months": self.endpoints.generating_pfs_median_months,
                "generating_os_median_months": self.endpoints.generating_os_median_months,
            },
            "covariates": self.covariates.to_json(),
            "lesions": [dict(lesion) for lesion in self.lesions],
            "treated_beyond_progression": self.treated_beyond_progression,
        }
