"""iRECIST (Seymour et al., Lancet Oncol 2017;18:e143-e152; recist.eortc.org/irecist FAQ).

Timepoint response (Table 2), as a state machine over follow-up timepoints:

- Target and non-target categories are judged as in RECIST 1.1 (see `recist`), against an iRECIST
  nadir that leaves out NE timepoints and scans too early to confirm (RECIST-tracker vector "NE
  timepoints never enter the nadir series"). New lesions are kept OUT of the target sum: new-lesion
  targets (NLT, see `timeline`) have their own sum, the others are new-lesion non-targets (NLNT).
- iUPD: any RECIST 1.1 PD criterion (target sum >= +20 % and >= +5 mm versus nadir, unequivocal
  non-target progression, a new lesion not seen before, NLT sum >= +20 % and >= +5 mm versus its
  nadir, unequivocal NLNT progression). The categories that caused it are the iUPD's "basis".
- Confirmation (iCPD) at the next assessment >= `icpd_min_days` and <= `icpd_max_days` after the
  latest iUPD, relative to the FIRST iUPD of the episode (so increases add up, FAQ "+4 then +2"):
  target sum +>= 5 mm; any further non-target increase (status `increased`); NLT sum +>= 5 mm or
  any NLNT increase (`increased` or `unequivocal-progression`); any additional new lesion; or
  RECIST PD newly met in a category that was not part of the basis. ">= 5 mm" follows the FAQ
  ("5 mm or more") where Table 2 prints ">5 mm" once.
- A scan earlier than `icpd_min_days` after the iUPD stays iUPD and does not enter the state
  machine (FAQ "early confirmation scans"; decision: the symptom-driven exception is not modelled,
  as symptoms are not in the input). A scan later than `icpd_max_days` cannot confirm (decision:
  the window is a hard limit); it still may reset, otherwise it stays iUPD and restarts the window.
- Reset: when no confirmation is found and the timepoint is not NE, the iUPD is dropped and the
  RECIST category applies (iCR/iPR/iSD/iNonCR-NonUPD) when the target/non-target categories are not
  PD, no new-lesion progression happened, and either the basis did not involve new lesions, all
  new lesions resolved, the response improved over the iUPD timepoint's, or a sum fell >= 5 mm
  (FAQ scenarios B and F: an unchanged PR with a stable new lesion stays iUPD). Stable new lesions
  do not block iPR/iSD; iCR needs every new lesion gone (otherwise iPR).
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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

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
RESET_RESPONSES = frozenset({ImmuneResponse.ICR, ImmuneResponse.IPR, ImmuneResponse.ISD})


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
    return _NewLesions(
        present=present,
        newly=tuple(i for i in present if i not in known),
        nlt_sum_mm=nlt_sum,
        nlt_pd=nlt_pd,
        nlnt_unequivocal=cat.nlnt_unequivocal,
        nlnt_increase=cat.nlnt_increase,
        not_evaluable=cat.new_not_evaluable,
        all_resolved=not present and not cat.new_not_evaluable,
    )


def _map_base(base: Response, new: _NewLesions) -> ImmuneResponse:
    if base is _CR:
        return _ICR if new.all_resolved or not new.present else _IPR
    return {
        _PR: _IPR,
        _SD: _ISD,
        _NON_CR_NON_PD: _INON_CR_NON_UPD,
    }.get(base, _INE)


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


def _can_reset(base: Response, new: _NewLesions, anchor: _Anchor, current: TargetSum | None) -> bool:
    if base in (_PD, _NE):
        return False
    if new.nlt_pd or new.nlnt_increase or new.newly:
        return False
    if NEW_LESION not in anchor.basis or new.all_resolved:
        return True
    if anchor.base is _PD or _BASE_RANK.get(base, -1) > _BASE_RANK.get(anchor.base, -1):
        return True
    if _BASE_RANK.get(base, -1) != _BASE_RANK.get(anchor.base, -1):
        return False
    target_fell = (
        current is not None
        and current.complete
        and anchor.target_sum_mm is not None
        and anchor.target_sum_mm - current.sum_mm >= 5
    )
    nlt_fell = (
        new.nlt_sum_mm is not None
        and anchor.nlt_sum_mm is not None
        and anchor.nlt_sum_mm - new.nlt_sum_mm >= 5
    )
    return target_fell or nlt_fell


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


def assess_immune(
    view: TimelineView, params: AssessmentParameters, readings: CategoryReadings | None = None
) -> ImmuneCourse:
    """iRECIST timepoint responses and iUPD episodes of every follow-up timepoint.

    `readings` (from `recist.read_categories(view)`) may be passed in to share them with RECIST 1.1.
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
    responded = False  # an iPR/iCR since the last iUPD: continued iPR (FAQ, reference W3)
    previous: Timepoint | None = None
    results: list[ImmuneTimepointResult] = []
    episodes: list[IupdEpisode] = []
    confirmed_categories: frozenset[str] = frozenset()  # categories whose progression was confirmed
    for cat in readings.timepoints:
        tp = cat.tp
        traces: list[RuleTrace] = []
        current: TargetSum | None = None
        target: Response | None = None
        if baseline_sum is not None and nadir is not None and cat.targets is not None:
            current = cat.targets
            reappeared = had_icr and reappeared_targets(view, previous, tp)
            target, _ = target_response(baseline_sum, nadir, current, reappeared)
        non_target = cat.non_target
        nt_increase = cat.non_target_increase
        base, _ = overall_decision(target, non_target, False)
        new = _new_lesions(cat, known, nlt_nadir)
        causes: set[str] = set()
        if target is _PD:
            causes.add(TARGET)
        if non_target is _PD:
            causes.add(NON_TARGET)
        if new.newly or new.nlt_pd or new.nlnt_unequivocal:
            causes.add(NEW_LESION)
        facts = {"base": base, "target": target, "non_target": non_target, "causes": ",".join(sorted(causes))}
        commit = True
        since = (tp.day - last_iupd).days if last_iupd is not None else None
        if confirmed:
            code = _ICPD
            traces.append(RuleTrace.of("irecist/icpd/carried-forward"))
        elif anchor is not None and since is not None and since < params.icpd_min_days:
            code = _IUPD
            commit = False
            traces.append(RuleTrace.of("irecist/iupd/too-early-to-confirm", days_since_iupd=since, **facts))
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
                traces.append(RuleTrace.of("irecist/iupd", **facts))
            elif base is _NE or new.not_evaluable:
                code = _INE
                traces.append(RuleTrace.of("irecist/ne", new_not_evaluable=new.not_evaluable, **facts))
            else:
                code = _map_base(base, new)
                traces.append(RuleTrace.of("irecist/from-recist-categories", **facts))
                if code is _ISD and responded:
                    code = _IPR
                    traces.append(RuleTrace.of("irecist/faq/continued-ipr"))
        else:
            in_window = since is None or since <= params.icpd_max_days
            reasons = (
                _confirmations(anchor, current, target, non_target, nt_increase, new) if in_window else []
            )
            if not in_window:
                traces.append(
                    RuleTrace.of(
                        "irecist/confirmation-window-passed",
                        days_since_iupd=since,
                        max_days=params.icpd_max_days,
                    )
                )
            if reasons:
                code = _ICPD
                confirmed = True
                confirmed_categories = _confirmed_categories(reasons)
                traces.append(
                    RuleTrace.of("irecist/icpd", iupd_index=anchor.index, reasons=",".join(reasons), **facts)
                )
                episodes.append(
                    IupdEpisode(
                        anchor.index, anchor.day, tuple(sorted(anchor.basis)), "confirmed", tp.index, code
                    )
                )
            elif base is _NE or new.not_evaluable:
                code = _INE
                traces.append(RuleTrace.of("irecist/ne-after-iupd", iupd_index=anchor.index, **facts))
            elif _can_reset(base, new, anchor, current):
                code = _map_base(base, new)
                traces.append(RuleTrace.of("irecist/reset", iupd_index=anchor.index, **facts))
                episodes.append(
                    IupdEpisode(
                        anchor.index, anchor.day, tuple(sorted(anchor.basis)), "reset", tp.index, code
                    )
                )
                anchor = None
                last_iupd = None
            else:
                code = _IUPD
                traces.append(RuleTrace.of("irecist/iupd-not-confirmed", iupd_index=anchor.index, **facts))
        if code is _INE:
            commit = False
        if code in (_IPR, _ICR):
            responded = True
        elif code in (_IUPD, _ICPD):
            responded = False
        if code is _IUPD and commit:
            last_iupd = tp.day
        results.append(
            ImmuneTimepointResult(
                index=tp.index,
                timepoint_date=tp.day,
                overall=code,
                sum_mm=current.sum_mm if current is not None and current.complete else None,
                baseline_sum_mm=baseline_sum,
                nadir_sum_mm=nadir,
                change_from_baseline_pct=cat.change_from_baseline_pct,
                change_from_nadir_pct=change_from_nadir(cat, current, baseline_sum, nadir),
                new_lesion_target_sum_mm=new.nlt_sum_mm,
                new_lesion=bool(new.present),
                traces=tuple(traces),
                source_refs=tp.refs,
                target=_ICPD if TARGET in confirmed_categories else _immune_target(target),
                non_target=_ICPD if NON_TARGET in confirmed_categories else _immune_non_target(non_target),
            )
        )
        if commit:
            if current is not None and current.complete and nadir is not None and current.sum_mm < nadir:
                nadir = current.sum_mm
            if new.nlt_sum_mm is not None and (nlt_nadir is None or new.nlt_sum_mm < nlt_nadir):
                nlt_nadir = new.nlt_sum_mm
            known.update(new.present)
            had_icr = had_icr or code is _ICR
            previous = tp
    if anchor is not None and not confirmed:
        episodes.append(
            IupdEpisode(anchor.index, anchor.day, tuple(sorted(anchor.basis)), "open", None, None)
        )
    return ImmuneCourse(tuple(results), tuple(episodes))


ImmuneAssessment = tuple[date, ImmuneResponse]


def immune_best_overall_response(
    assessments: Sequence[ImmuneAssessment], start: date, params: AssessmentParameters
) -> BestResponse | None:
    """iBOR per iRECIST Table 3 (no confirmation of iCR/iPR)."""
    used: list[ImmuneAssessment] = []
    for a in sorted(assessments, key=lambda x: x[0]):
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
    candidates: list[tuple[ImmuneResponse, date]] = []
    for (day, _), response in zip(used, values, strict=True):
        early = (day - start).days < params.min_sd_days
        if response in (_ISD, _INON_CR_NON_UPD) and early:
            candidates.append((_INE, day))
        else:
            candidates.append((response, day))
    response, day = min(candidates, key=lambda c: (RANK[c[0]], c[1]))
    return BestResponse(
        criterion=Criterion.IRECIST,
        response=response,
        confirmation_required=False,
        period_start=start,
        period_end=used[-1][0],
        response_date=day,
        trace=RuleTrace.of("irecist/bor", response=response, date=day, min_sd_days=params.min_sd_days),
    )
