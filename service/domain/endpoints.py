"""Outcome endpoints in whole days from treatment start (reference section 1f).

- PFS: to the first RECIST 1.1 PD timepoint (strict overall response) or death, whichever is
  first; else censored at the last follow-up assessment. No follow-up assessment and no death =>
  None (not evaluable).
- iPFS: to the first iUPD that was later confirmed (iCPD), or death; else censored at the last
  follow-up assessment (iRECIST FAQ "Duration of i-response": iPFS dates at the confirmed iUPD).
- OS: to death, else censored at `last_contact`, else at `as_of`; never beyond `as_of`.
- DCB (Rizvi 2015 convention): CR, PR, SD or NonCR-NonPD as best (unconfirmed) response AND
  progression-free for more than `dcb_days` (`pfs_days > dcb_days`, event or not). False when
  progression or death happened within `dcb_days`; None when censored before that.
- NLR = neutrophils / lymphocytes; dNLR = neutrophils / (leukocytes - neutrophils). Values pair
  results taken on the same day; lymphocytes may come as % of leukocytes (then lymphocytes =
  % / 100 x leukocytes). Pre-treatment = the latest such day in the 28 days before start (start day
  included, as blood is drawn before the first infusion); post-treatment = the first day after.
  Rounded to 0.01. Events after `as_of` are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from service.domain.irecist import IupdEpisode
from service.domain.model import LabKind, LabResult, PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.results import BestResponse, Endpoints, Response, TimepointResult, new_endpoints

PRE_TREATMENT_LAB_DAYS = 28
_HUNDREDTH = Decimal("0.01")
# Enum members as module constants (see `engine`, "Performance").
_PD = Response.PD
_BENEFIT = (Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD)
_NEUTROPHILS = LabKind.NEUTROPHILS
_LYMPHOCYTES = LabKind.LYMPHOCYTES
_LYMPHOCYTES_PCT = LabKind.LYMPHOCYTES_PCT
_LEUKOCYTES = LabKind.LEUKOCYTES


def _event_or_censor(
    start: date, event_day: date | None, death: date | None, last_assessment: date | None
) -> tuple[int | None, bool | None]:
    if event_day is not None and (death is None or event_day <= death):  # the earlier of the two
        return (event_day - start).days, True
    if death is not None:
        return (death - start).days, True
    if last_assessment is None:
        return None, None
    return max(0, (last_assessment - start).days), False


def _labs_by_day(labs: Sequence[LabResult], as_of: date) -> dict[date, dict[LabKind, Decimal]]:
    """Lab values by day and kind (up to `as_of`). Of several results of one kind on one day the
    largest value counts (the last of them in input order on ties): the outcome of assigning them
    in (day, kind, value) order, found in one pass without sorting. The callers never depend on
    the order of the dicts."""
    by_day: dict[date, dict[LabKind, Decimal]] = {}
    for lab in labs:
        day = lab.taken_on
        if day > as_of:
            continue
        values = by_day.get(day)
        if values is None:
            by_day[day] = {lab.kind: lab.value}
            continue
        kind = lab.kind
        current = values.get(kind)
        if current is None or lab.value >= current:
            values[kind] = lab.value
    return by_day


def _lymphocytes(values: dict[LabKind, Decimal]) -> Decimal | None:
    if _LYMPHOCYTES in values:
        return values[_LYMPHOCYTES]
    if _LYMPHOCYTES_PCT in values and _LEUKOCYTES in values:
        return values[_LYMPHOCYTES_PCT] * values[_LEUKOCYTES] / 100
    return None


def nlr(values: dict[LabKind, Decimal]) -> Decimal | None:
    neutrophils = values.get(_NEUTROPHILS)
    lymphocytes = _lymphocytes(values)
    if neutrophils is None or lymphocytes is None or lymphocytes <= 0:
        return None
    return (neutrophils / lymphocytes).quantize(_HUNDREDTH, ROUND_HALF_EVEN)


def dnlr(values: dict[LabKind, Decimal]) -> Decimal | None:
    neutrophils = values.get(_NEUTROPHILS)
    leukocytes = values.get(_LEUKOCYTES)
    if neutrophils is None or leukocytes is None or leukocytes - neutrophils <= 0:
        return None
    return (neutrophils / (leukocytes - neutrophils)).quantize(_HUNDREDTH, ROUND_HALF_EVEN)


def _pick_ratio(
    by_day: dict[date, dict[LabKind, Decimal]],
    days: Sequence[date],
    ratio: Callable[[dict[LabKind, Decimal]], Decimal | None],
) -> Decimal | None:
    for day in days:
        value = ratio(by_day[day])
        if value is not None:
            return value
    return None


def compute_endpoints(
    timeline: PatientTimeline,
    params: AssessmentParameters,
    *,
    as_of: date,
    timepoints: Sequence[TimepointResult],
    episodes: Sequence[IupdEpisode],
    best: BestResponse | None,
    labs_by_day: dict[date, dict[LabKind, Decimal]] | None = None,
) -> Endpoints:
    """`labs_by_day`: `_labs_by_day(timeline.labs, as_of)` when the caller already has it."""
    start = timeline.treatment_start
    death = timeline.death_date if timeline.death_date is not None and timeline.death_date <= as_of else None
    last_assessment = timepoints[-1].timepoint_date if timepoints else None
    first_pd = next((t.timepoint_date for t in timepoints if t.overall is _PD), None)
    pfs_days, pfs_event = _event_or_censor(start, first_pd, death, last_assessment)
    confirmed = next((e.first_date for e in episodes if e.outcome == "confirmed"), None)
    ipfs_days, ipfs_event = _event_or_censor(start, confirmed, death, last_assessment)
    if death is not None:
        os_days, os_event = (death - start).days, True
    else:
        censor = min(timeline.last_contact, as_of) if timeline.last_contact is not None else as_of
        os_days, os_event = max(0, (censor - start).days), False
    dcb: bool | None = None
    if pfs_days is not None:
        if pfs_days > params.dcb_days:
            dcb = best is not None and best.response in _BENEFIT
        elif pfs_event:
            dcb = False
    by_day = _labs_by_day(timeline.labs, as_of) if labs_by_day is None else labs_by_day
    window_start = start - timedelta(days=PRE_TREATMENT_LAB_DAYS)
    pre_days = sorted((d for d in by_day if window_start <= d <= start), reverse=True)
    post_days = sorted(d for d in by_day if d > start)
    return new_endpoints(  # positional, in field order (keywords cost as much again)
        pfs_days,  # pfs_days
        pfs_event,  # pfs_event
        ipfs_days,  # ipfs_days
        ipfs_event,  # ipfs_event
        os_days,  # os_days
        os_event,  # os_event
        dcb,  # dcb
        _pick_ratio(by_day, pre_days, nlr),  # nlr_pre
        _pick_ratio(by_day, pre_days, dnlr),  # dnlr_pre
        _pick_ratio(by_day, post_days, nlr),  # nlr_post
        _pick_ratio(by_day, post_days, dnlr),  # dnlr_post
    )


def no_baseline_endpoints(
    timeline: PatientTimeline, params: AssessmentParameters, *, as_of: date
) -> Endpoints:
    """Without a baseline only OS (and PFS/iPFS if the patient died) and the blood ratios remain."""
    return compute_endpoints(timeline, params, as_of=as_of, timepoints=(), episodes=(), best=None)
