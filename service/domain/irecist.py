"""iRECIST (Seymour et al., Lancet Oncol 2017;18:e143-e152; recist.eortc.org/irecist FAQ).

Timepoint response (Table 2), as a state machine over follow-up timepoints:

- Target and non-target categories are judged as in RECIST 1.1 (see `recist`), against an iRECIST
  nadir that leaves out NE timepoints and scans too early to confirm (RECIST-tracker vector "NE
  timepoints never enter the nadir series"). New lesions are kept OUT of the target sum: new-lesion
  targets (NLT, see `timeline`) have their own sum, the others are new-lesion non-targets (NLNT).
- iUPD: any RECIST 1.1 PD criterion (target sum >= +20 % and >= +5 mm versus nadir, unequivocal
  non-target progression, a new lesion not seen before, NLT sum >= +20 % and >= +5 mm versus its
  nadir, unequivocal NLNT progression). The categories that caused it are the iUPD's "basis".
- Confirmation (iCPD) at the next assessment >= `icpd_min_days` after the latest iUPD, whatever
  the gap (Seymour 2017: "confirmed at the next assessment"; the 4-8 weeks are a recommendation
  for scheduling that scan, and the FAQ disregards only scans earlier than 4 weeks). A protocol
  may set `icpd_max_days`; the default (None) sets no upper limit. Judged relative to the FIRST
  iUPD of the episode (so increases add up, FAQ "+4 then +2"):
  target sum +>= 5 mm; any further non-target increase (status `increased`); NLT sum +>= 5 mm or
  any NLNT increase (`increased` or `unequivocal-progression`); any additional new lesion; or
  RECIST PD newly met in a category that was not part of the basis. ">= 5 mm" follows the FAQ
  ("5 mm or more") where Table 2 prints ">5 mm" once.
- A scan earlier than `icpd_min_days` after the iUPD stays iUPD and does not enter the state
  machine (FAQ "early confirmation scans"; decision: the symptom-driven exception is not modelled,
  as symptoms are not in the input). When a protocol sets `icpd_max_days`, a scan later than that
  cannot confirm; it still may reset, otherwise it stays iUPD and restarts the window.
- Reset (Seymour 2017, Table 2 and text: iUPD "followed at the next assessment by ... iSD, iPR or
  iCR" resets; FAQ "Assigning response after the appearance of new lesions", scenarios B and F):
  when no confirmation is found and the timepoint is not NE, the iUPD is dropped and the RECIST
  category applies (iCR/iPR/iSD/iNonCR-NonUPD) when the target/non-target categories are not PD,
  no new-lesion progression happened, the baseline target sum is not larger than at the iUPD nor
  than at the latest earlier counted assessment (as for the nadir, NE timepoints and scans too
  early to confirm do not count): a growing baseline disease is never a pseudoprogression; and
  either the basis did not involve new lesions, all new lesions resolved, the response improved
  over the iUPD timepoint's, or the baseline target sum fell further by >= 5 mm
  (`RESET_SHRINKAGE_MM`; scenario B). New lesions shrinking alone never reset (scenario F: an
  unchanged PR with a stable new lesion stays iUPD; the earlier rule also reset when the new-lesion
  target sum fell by 5 mm). Stable new lesions do not block iPR/iSD; iCR needs every new lesion
  gone (otherwise iPR).
- Non-target readings: `increased` = further increase (FAQ "INCLA": confirms a non-target iUPD);
  a repeated `unequivocal-progression` = still progressed, no further change (stays iUPD, FAQ
  "NCLA"); `present` after an unequivocal progression = no longer progressed, so the iUPD may reset
  (project decision; the contract code system has no "no change" code). As RECIST 1.1 reads
  `increased` as non-target PD (`recist`, non-target decision), an `increased` non-target with no
  iUPD open starts one (basis non-target), and one at the confirming assessment of an iUPD of
  another basis confirms it as "RECIST PD newly met" (reason `non-target-newly-pd`).
- After iCPD every later timepoint is iCPD (confirmed progression ends the evaluation).
- Categories (contract IrecistTimepointResponse target-response / non-target-response; the columns
  of Table 2): the target category maps the RECIST 1.1 reading of the targets against the iRECIST
  nadir (CR -> iCR, PR -> iPR, SD -> iSD, PD -> iUPD, NE -> NE); the non-target category maps the
  RECIST 1.1 non-target reading (CR -> iCR, NonCR-NonPD -> iNonCR-NonUPD, PD -> iUPD, NE -> NE).
  Decisions where Table 2 is silent (its category columns stop at iUPD): a category is iCPD at the
  assessment that confirms progression on its own evidence (target: sum +>= 5 mm or RECIST PD newly
  met; non-target: a further increase or PD newly met) and stays iCPD at every later timepoint,
  as the overall response does; a category that did not confirm keeps its own reading. The
  categories are strict per timepoint (no continued iPR: that reading belongs to the overall value,
  as for RECIST 1.1 `TimepointResult.target`).
- Continued iPR (recist.eortc.org FAQ "Managing PR when TP measurements change slightly", reference
  W3 "iPR x5"): after an iPR/iCR, a timepoint that would be iSD stays iPR until an iUPD occurs.
  iRECIST has one value per timepoint, so unlike RECIST 1.1 (`overall` / `reported`) this reading
  is the iRECIST value. After a reset the continuation starts again only with a new iPR/iCR.

iBOR (Table 3): the best timepoint response up to the first iCPD, iCR > iPR > iSD > iNonCR-NonUPD >
iUPD > iCPD > NE, where the iUPDs of the episode that ended in iCPD count as iCPD (Table 3 examples
6 and 7) and iSD/iNonCR-NonUPD count only at >= `min_sd_days` after start (else NE). Table 3
assumes no CR/PR confirmation; none is applied.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

from service.domain.frozen import fast_constructor
from service.domain.lesions import TargetSum, meets_progression
from service.domain.parameters import AssessmentParameters
from service.domain.recist import (
    CategoryReadings,
    TimepointCategories,
    change_from_nadir,
    overall_decision,
    read_categories,
    reappeared_targets,
    target_response,
)
from service.domain.results import (
    BestResponse,
    Criterion,
    ImmuneResponse,
    ImmuneTimepointResult,
    Response,
    RuleTrace,
    TimepointResult,
    lazy_trace,
    new_best_response,
    new_immune_timepoint_result,
)
from service.domain.timeline import TimelineView, Timepoint

# Enum members as module constants (see `engine`, "Performance").
_ICR = ImmuneResponse.ICR
_IPR = ImmuneResponse.IPR
_ISD = ImmuneResponse.ISD
_INON_CR_NON_UPD = ImmuneResponse.INON_CR_NON_UPD
_IUPD = ImmuneResponse.IUPD
_ICPD = ImmuneResponse.ICPD
_INE = ImmuneResponse.NE
_CR = Response.CR
_PR = Response.PR
_SD = Response.SD
_NON_CR_NON_PD = Response.NON_CR_NON_PD
_PD = Response.PD
_NE = Response.NE

TARGET = "target"
NON_TARGET = "non-target"
NEW_LESION = "new-lesion"

RANK: dict[ImmuneResponse, int] = {
    ImmuneResponse.ICR: 0,
    ImmuneResponse.IPR: 1,
    ImmuneResponse.ISD: 2,
    ImmuneResponse.INON_CR_NON_UPD: 3,
    ImmuneResponse.IUPD: 4,
    ImmuneResponse.ICPD: 5,
    ImmuneResponse.NE: 6,
}
_BASE_RANK: dict[Response, int] = {
    Response.PD: 0,
    Response.NON_CR_NON_PD: 1,
    Response.SD: 2,
    Response.PR: 3,
    Response.CR: 4,
}
# Further shrinkage of the baseline target sum that resets a new-lesion iUPD whose category did not
# improve (FAQ scenario B); 5 mm, the size of change iRECIST itself counts (Table 2, "+>= 5 mm").
RESET_SHRINKAGE_MM = Decimal(5)
RESET_RESPONSES = frozenset({ImmuneResponse.ICR, ImmuneResponse.IPR, ImmuneResponse.ISD})
_IRECIST = Criterion.IRECIST
_DAY = itemgetter(0)  # sort key of (date, response) pairs, in C
_tuple_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class IupdEpisode:
    """One unconfirmed progression and how it ended."""

    first_index: int
    first_date: date
    basis: tuple[str, ...]
    outcome: str  # "confirmed" | "reset" | "open"
    outcome_index: int | None
    outcome_response: ImmuneResponse | None


@dataclass(frozen=True, slots=True)
class ImmuneCourse:
    timepoints: tuple[ImmuneTimepointResult, ...]
    episodes: tuple[IupdEpisode, ...]


@dataclass(frozen=True, slots=True)
class _Anchor:
    index: int
    day: date
    basis: frozenset[str]
    base: Response
    target_sum_mm: Decimal | None
    nlt_sum_mm: Decimal | None
    new_ids: frozenset[str]


# Stand-ins for the constructors above (see `frozen`).
_new_episode = fast_constructor(IupdEpisode)
_new_course = fast_constructor(ImmuneCourse)


class _NewLesions(NamedTuple):
    """New-lesion facts at one timepoint."""

    present: tuple[str, ...]
    newly: tuple[str, ...]
    nlt_sum_mm: Decimal | None
    nlt_pd: bool
    nlnt_unequivocal: bool
    nlnt_increase: bool
    not_evaluable: bool
    all_resolved: bool


def _new_lesions(cat: TimepointCategories, known: set[str], nlt_nadir: Decimal | None) -> _NewLesions:
    present = cat.new_present
    nlt_sum = cat.nlt_sum_mm
    nlt_pd = nlt_sum is not None and nlt_nadir is not None and meets_progression(nlt_sum, nlt_nadir)
    not_evaluable = cat.new_not_evaluable
    return _tuple_new(  # _NewLesions(...) without its Python-level __new__, in field order
        _NewLesions,
        (
            present,  # present
            tuple([i for i in present if i not in known]) if present else (),  # newly
            nlt_sum,  # nlt_sum_mm
            nlt_pd,  # nlt_pd
            cat.nlnt_unequivocal,  # nlnt_unequivocal
            cat.nlnt_increase,  # nlnt_increase
            not_evaluable,  # not_evaluable
            not present and not not_evaluable,  # all_resolved
        ),
    )


# `_new_lesions` of a timepoint without new lesions (for a patient without any).
_NO_NEW_LESIONS = _NewLesions((), (), None, False, False, False, False, True)


def _map_base(base: Response, new: _NewLesions) -> ImmuneResponse:
    if base is _CR:
        return _ICR if new.all_resolved or not new.present else _IPR
    return _FROM_BASE.get(base, _INE)


_FROM_BASE = {_PR: _IPR, _SD: _ISD, _NON_CR_NON_PD: _INON_CR_NON_UPD}


def _confirmations(
    anchor: _Anchor,
    current: TargetSum | None,
    target: Response | None,
    non_target: Response | None,
    nt_increase: bool,
    new: _NewLesions,
) -> list[str]:
    reasons: list[str] = []
    basis = anchor.basis
    if (
        TARGET in basis
        and current is not None
        and current.complete
        and anchor.target_sum_mm is not None
        and current.sum_mm - anchor.target_sum_mm >= 5
    ):
        reasons.append("target-sum-further-5mm")
    if NON_TARGET in basis and nt_increase:
        reasons.append("non-target-further-increase")
    if NEW_LESION in basis:
        if (
            new.nlt_sum_mm is not None
            and anchor.nlt_sum_mm is not None
            and new.nlt_sum_mm - anchor.nlt_sum_mm >= 5
        ):
            reasons.append("new-lesion-target-sum-further-5mm")
        if new.nlnt_increase:
            reasons.append("new-lesion-non-target-increase")
    if any(i not in anchor.new_ids for i in new.newly):
        reasons.append("additional-new-lesion")
    if TARGET not in basis and target is _PD:
        reasons.append("target-newly-pd")
    if NON_TARGET not in basis and non_target is _PD:
        reasons.append("non-target-newly-pd")
    if NEW_LESION not in basis and (new.nlt_pd or new.nlnt_unequivocal):
        reasons.append("new-lesion-newly-pd")
    return reasons


def _can_reset(
    base: Response,
    new: _NewLesions,
    anchor: _Anchor,
    current: TargetSum | None,
    previous_sum_mm: Decimal | None,
) -> bool:
    """May this timepoint end the iUPD episode (see the module doc, "Reset")?"""
    if base in (_PD, _NE):
        return False
    if new.nlt_pd or new.nlnt_increase or new.newly:
        return False
    if _baseline_disease_grew(current, anchor.target_sum_mm, previous_sum_mm):
        return False
    if NEW_LESION not in anchor.basis or new.all_resolved:
        return True
    if anchor.base is _PD or _BASE_RANK.get(base, -1) > _BASE_RANK.get(anchor.base, -1):
        return True
    if _BASE_RANK.get(base, -1) != _BASE_RANK.get(anchor.base, -1):
        return False
    # Same category as at the iUPD, new lesions still there: only further shrinkage of the baseline
    # disease resets (FAQ scenarios B and F); new lesions shrinking alone do not.
    return (
        current is not None
        and current.complete
        and anchor.target_sum_mm is not None
        and anchor.target_sum_mm - current.sum_mm >= RESET_SHRINKAGE_MM
    )


def _baseline_disease_grew(
    current: TargetSum | None, iupd_sum_mm: Decimal | None, previous_sum_mm: Decimal | None
) -> bool:
    """The target sum is larger than at the iUPD or at the previous assessment: never a reset."""
    if current is None or not current.complete:
        return False
    now = current.sum_mm
    return (iupd_sum_mm is not None and now > iupd_sum_mm) or (
        previous_sum_mm is not None and now > previous_sum_mm
    )


_TARGET_REASONS = frozenset({"target-sum-further-5mm", "target-newly-pd"})
_NON_TARGET_REASONS = frozenset({"non-target-further-increase", "non-target-newly-pd"})


def _confirmed_categories(reasons: Sequence[str]) -> frozenset[str]:
    """The categories whose own progression an iCPD confirmed (see the module doc, categories)."""
    out: set[str] = set()
    if any(r in _TARGET_REASONS for r in reasons):
        out.add(TARGET)
    if any(r in _NON_TARGET_REASONS for r in reasons):
        out.add(NON_TARGET)
    return frozenset(out)


def _immune_target(target: Response | None) -> ImmuneResponse | None:
    """iRECIST target category (Table 2, target column) from the RECIST 1.1 reading of the targets."""
    if target is None:
        return None
    if target is _PD:
        return _IUPD
    if target is _CR:
        return _ICR
    if target is _PR:
        return _IPR
    if target is _SD:
        return _ISD
    return _INE


def _immune_non_target(non_target: Response | None) -> ImmuneResponse | None:
    """iRECIST non-target category (Table 2, non-target column): iCR, non-iCR/non-iUPD, iUPD, NE."""
    if non_target is None:
        return None
    if non_target is _PD:
        return _IUPD
    if non_target is _CR:
        return _ICR
    if non_target is _NON_CR_NON_PD:
        return _INON_CR_NON_UPD
    return _INE


# Traces are values (frozen, equal by rule and rendered facts). The timepoint traces' facts are a
# few enum, str and int values that recur from timepoint to timepoint and patient to patient, so
# each distinct trace is made once and shared (`typed`: equal values of different types, such as
# 1 and True, which render differently, never share a trace).
@functools.lru_cache(maxsize=None, typed=True)
def _trace(
    rule: str, facts: tuple[Response, Response | None, Response | None, str], **first: object
) -> RuleTrace:
    """The trace of a timepoint decision: `first` facts (rule-specific), then `facts`: the RECIST
    categories (base, target, non-target) and the causes of progression."""
    base, target, non_target, causes = facts
    return RuleTrace.of(rule, **first, base=base, target=target, non_target=non_target, causes=causes)


_CARRIED_FORWARD = RuleTrace.of("irecist/icpd/carried-forward")
_CONTINUED_IPR = RuleTrace.of("irecist/faq/continued-ipr")


# The two functions above as tables, for every possible reading (looked up once per timepoint).
_TARGET_CATEGORY = {r: _immune_target(r) for r in (None, *Response)}
_NON_TARGET_CATEGORY = {r: _immune_non_target(r) for r in (None, *Response)}


def assess_immune(
    view: TimelineView,
    params: AssessmentParameters,
    readings: CategoryReadings | None = None,
    recist: Sequence[TimepointResult] | None = None,
) -> ImmuneCourse:
    """iRECIST timepoint responses and iUPD episodes of every follow-up timepoint.

    `readings` (from `recist.read_categories(view)`) may be passed in to share them with RECIST 1.1,
    and `recist` (the RECIST 1.1 timepoints from the same readings) to reuse their change from the
    nadir wherever the iRECIST nadir is the same (the change depends on nothing else).
    """
    if readings is None:
        readings = read_categories(view)
    baseline_sum = readings.baseline_sum_mm
    nadir = baseline_sum
    nlt_nadir: Decimal | None = None
    known: set[str] = set()
    anchor: _Anchor | None = None
    last_iupd: date | None = None
    confirmed = False
    had_icr = False
    responded = False  # an iPR/iCR since the last iUPD: continued iPR (FAQ, worked case W3)
    previous: Timepoint | None = None
    previous_sum: Decimal | None = None  # the latest complete target sum of a counted timepoint
    results: list[ImmuneTimepointResult] = []
    episodes: list[IupdEpisode] = []
    confirmed_categories: frozenset[str] = frozenset()  # categories whose progression was confirmed
    no_new_lesions = not view.new_lesions  # most patients: the same empty facts at every timepoint
    for k, cat in enumerate(readings.timepoints):
        # Unpacked in one step: cheaper than reading the fields by name.
        tp, targets, from_baseline_pct, non_target, _, nt_increase, _, _, _, _, _ = cat
        traces: list[RuleTrace] = []
        current: TargetSum | None = None
        target: Response | None = None
        if baseline_sum is not None and nadir is not None and targets is not None:
            current = targets
            reappeared = had_icr and reappeared_targets(view, previous, tp)
            target, _ = target_response(baseline_sum, nadir, current, reappeared)
        base, _ = overall_decision(target, non_target, False)
        new = _NO_NEW_LESIONS if no_new_lesions else _new_lesions(cat, known, nlt_nadir)
        causes: list[str] = []  # in sorted order (NEW_LESION < NON_TARGET < TARGET)
        if new.newly or new.nlt_pd or new.nlnt_unequivocal:
            causes.append(NEW_LESION)
        if non_target is _PD:
            causes.append(NON_TARGET)
        if target is _PD:
            causes.append(TARGET)
        # The facts every trace below ends with (see `_trace`).
        facts = (base, target, non_target, ",".join(causes))
        commit = True
        since = (tp.day - last_iupd).days if last_iupd is not None else None
        if confirmed:
            code = _ICPD
            traces.append(_CARRIED_FORWARD)
        elif anchor is not None and since is not None and since < params.icpd_min_days:
            code = _IUPD
            commit = False
            traces.append(_trace("irecist/iupd/too-early-to-confirm", facts, days_since_iupd=since))
        elif anchor is None:
            if causes:
                code = _IUPD
                anchor = _Anchor(
                    index=tp.index,
                    day=tp.day,
                    basis=frozenset(causes),
                    base=base,
                    target_sum_mm=current.sum_mm if current is not None and current.complete else None,
                    nlt_sum_mm=new.nlt_sum_mm,
                    new_ids=frozenset(known | set(new.present)),
                )
                traces.append(_trace("irecist/iupd", facts))
            elif base is _NE or new.not_evaluable:
                code = _INE
                traces.append(_trace("irecist/ne", facts, new_not_evaluable=new.not_evaluable))
            else:
                code = _map_base(base, new)
                traces.append(_trace("irecist/from-recist-categories", facts))
                if code is _ISD and responded:
                    code = _IPR
                    traces.append(_CONTINUED_IPR)
        else:
            max_days = params.icpd_max_days
            in_window = since is None or max_days is None or since <= max_days
            reasons = (
                _confirmations(anchor, current, target, non_target, nt_increase, new) if in_window else []
            )
            if not in_window:
                traces.append(
                    RuleTrace.of(
                        "irecist/confirmation-window-passed",
                        days_since_iupd=since,
                        max_days=max_days,
                    )
                )
            if reasons:
                code = _ICPD
                confirmed = True
                confirmed_categories = _confirmed_categories(reasons)
                traces.append(
                    _trace("irecist/icpd", facts, iupd_index=anchor.index, reasons=",".join(reasons))
                )
                episodes.append(
                    _new_episode(
                        anchor.index, anchor.day, tuple(sorted(anchor.basis)), "confirmed", tp.index, code
                    )
                )
            elif base is _NE or new.not_evaluable:
                code = _INE
                traces.append(_trace("irecist/ne-after-iupd", facts, iupd_index=anchor.index))
            elif _can_reset(base, new, anchor, current, previous_sum):
                code = _map_base(base, new)
                traces.append(_trace("irecist/reset", facts, iupd_index=anchor.index))
                episodes.append(
                    _new_episode(
                        anchor.index, anchor.day, tuple(sorted(anchor.basis)), "reset", tp.index, code
                    )
                )
                anchor = None
                last_iupd = None
            else:
                code = _IUPD
                traces.append(_trace("irecist/iupd-not-confirmed", facts, iupd_index=anchor.index))
        if code is _INE:
            commit = False
        if code is _IPR or code is _ICR:
            responded = True
        elif code is _IUPD or code is _ICPD:
            responded = False
        if code is _IUPD and commit:
            last_iupd = tp.day
        target_category = _ICPD if TARGET in confirmed_categories else _TARGET_CATEGORY[target]
        non_target_category = (
            _ICPD if NON_TARGET in confirmed_categories else _NON_TARGET_CATEGORY[non_target]
        )
        same_nadir = recist[k] if recist is not None else None  # RECIST 1.1 at this timepoint
        if same_nadir is not None and same_nadir.nadir_sum_mm == nadir:
            from_nadir = same_nadir.change_from_nadir_pct
        else:
            from_nadir = change_from_nadir(cat, current, baseline_sum, nadir)
        results.append(
            new_immune_timepoint_result(  # positional, in field order (keywords cost as much again)
                tp.index,  # index
                tp.day,  # timepoint_date
                code,  # overall
                current.sum_mm if current is not None and current.complete else None,  # sum_mm
                baseline_sum,  # baseline_sum_mm
                nadir,  # nadir_sum_mm
                from_baseline_pct,  # change_from_baseline_pct
                from_nadir,  # change_from_nadir_pct
                new.nlt_sum_mm,  # new_lesion_target_sum_mm
                bool(new.present),  # new_lesion
                tuple(traces),  # traces
                tp.refs,  # source_refs
                target_category,  # target
                non_target_category,  # non_target
            )
        )
        if commit:
            if current is not None and current.complete and nadir is not None and current.sum_mm < nadir:
                nadir = current.sum_mm
            if new.nlt_sum_mm is not None and (nlt_nadir is None or new.nlt_sum_mm < nlt_nadir):
                nlt_nadir = new.nlt_sum_mm
            if new.present:
                known.update(new.present)
            had_icr = had_icr or code is _ICR
            previous = tp
            if current is not None and current.complete:
                previous_sum = current.sum_mm
    if anchor is not None and not confirmed:
        episodes.append(
            _new_episode(anchor.index, anchor.day, tuple(sorted(anchor.basis)), "open", None, None)
        )
    return _new_course(tuple(results), tuple(episodes))


ImmuneAssessment = tuple[date, ImmuneResponse]


def immune_best_overall_response(
    assessments: Sequence[ImmuneAssessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """iBOR per iRECIST Table 3 (no confirmation of iCR/iPR)."""
    used: list[ImmuneAssessment] = []
    for a in sorted(assessments, key=_DAY):
        used.append(a)
        if a[1] is _ICPD:
            break
    if not used:
        return None
    values = [r for _, r in used]
    if values[-1] is _ICPD:  # the confirmed episode's iUPDs count as iCPD
        pos = len(values) - 2
        while pos >= 0 and values[pos] in (_IUPD, _INE):
            if values[pos] is _IUPD:
                values[pos] = _ICPD
            pos -= 1
    # The best rank, the earliest on ties: `min` over (rank, day, response) compares in C (ranks
    # are unique per response, so equal rank and day means equal triples and `min` keeps the first).
    candidates: list[tuple[int, date, ImmuneResponse]] = []
    min_sd_days = params.min_sd_days
    for (day, _), response in zip(used, values, strict=True):
        if (response is _ISD or response is _INON_CR_NON_UPD) and (day - start).days < min_sd_days:
            response = _INE
        candidates.append((RANK[response], day, response))
    _, day, response = min(candidates)
    return new_best_response(  # positional, in field order (keywords cost as much again)
        _IRECIST,  # criterion
        response,  # response
        False,  # confirmation_required
        start,  # period_start
        used[-1][0],  # period_end
        day,  # response_date
        lazy_trace("irecist/bor", _bor_facts, (response, day, min_sd_days)),  # trace
    )


def _bor_facts(data: tuple[ImmuneResponse, date, int]) -> tuple[tuple[str, object], ...]:
    """The facts of the iBOR trace (`lazy_trace`: gathered when the trace is first read)."""
    response, day, min_sd_days = data
    return (("response", response), ("date", day), ("min_sd_days", min_sd_days))
