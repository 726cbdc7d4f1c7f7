"""Tunable parameters of the response engine, with their sources.

Defaults follow RECIST 1.1 (Eisenhauer 2009), iRECIST (Seymour 2017) and the seed study
(Guan et al., Sci Rep 2024). `service.config.Settings` maps environment variables onto these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AssessmentParameters:
    # Contract section 1: studies within this many days form one timepoint.
    timepoint_window_days: int = 7
    # Contract section 1: baseline = latest timepoint on/before ICI start, at most this many days before.
    baseline_window_days: int = 28
    # Contract section 1: a timepoint before baseline within 12 weeks is the pre-baseline scan (HPD).
    pre_baseline_window_days: int = 84
    # RECIST 1.1 section 4.6 / admiralonco `ref_confirm`: CR/PR re-documented >= 28 days later.
    confirmation_min_days: int = 28
    # RECIST 1.1 section 4.6: SD must be met at least once >= a protocol minimum (6-8 weeks) after start.
    min_sd_days: int = 42
    # admiralonco `max_nr_ne`: NE timepoints tolerated between a response and its confirmation.
    max_ne_between: int = 1
    # admiralonco `accept_sd`: one SD tolerated inside a PR confirmation period.
    accept_sd: bool = False
    # iRECIST (Seymour 2017; FAQ "early confirmation scans"): the NEXT assessment after an iUPD confirms
    # it or not; a scan earlier than 4 weeks (28 days) after the iUPD is disregarded for confirmation.
    icpd_min_days: int = 28
    # Latest confirming scan in days after the iUPD; None = no limit (default): the paper recommends
    # 4-8 weeks but nothing voids a later next assessment (docs/rules/irecist.md, "Confirmation window").
    icpd_max_days: int | None = None
    # Dissociated response definition (registry key); the seed study uses Bernard-Tessier.
    dr_definition: str = "bernard-tessier"
    # ResponseGroup precedence (contract section 2): DR before PsPD by default.
    dr_before_pspd: bool = True
    # DCB: CR/PR/SD lasting longer than 6 months (Rizvi 2015 convention).
    dcb_days: int = 183
    # Delayed response (project-defined): first response >= this many days after start, after SD.
    delayed_response_min_days: int = 84
    # Too-small-to-measure default (RECIST 1.1 guideline): 5 mm.
    too_small_mm: int = 5
    # ResponseGroup (contract section 2) from the CONFIRMED RECIST 1.1 best overall response: RECIST 1.1
    # section 4.6 requires confirmation outside randomised trials, and the seed study is single-arm.
    # Agreed with the synthetic-data engineer; False uses the unconfirmed best overall response.
    response_group_uses_confirmed_bor: bool = True
