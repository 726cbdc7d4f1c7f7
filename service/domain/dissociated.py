"""Dissociated response (DR): a registry of published definitions.

The literature has no single definition (review: Ther Adv Med Oncol 2022;14:17588359221096877,
PMC9083034, Table 1; reference section 1c). Each definition is registered under a key with a
version string; `AssessmentParameters.dr_definition` picks one (default "bernard-tessier", the
definition of the seed study, Guan et al., Sci Rep 2024).

Project decisions shared by all definitions (reference section 1c, implementation notes):
- Which timepoints: every follow-up timepoint from index 1 up to and including the first iRECIST
  iCPD (all follow-ups when progression was never confirmed); the first timepoint that meets the
  definition is reported. Sato and Tozuka look at the first evaluation (index 1) only, as published.
- Per-lesion change: decrease against the lesion's own baseline, increase against its own nadir
  (smallest of its baseline and earlier evaluable values). "Measured lesion" = any baseline lesion
  with a diameter at baseline and at the timepoint (targets and measured non-targets).
- Trigger precedence when several coincide: target-lesion > non-target-lesion > new-lesion (the
  measured, threshold-based evidence first; then unequivocal non-target progression, which RECIST
  ranks with measured PD; a new lesion last, being the only trigger that needs no comparison).
- `growing_lesions` lists every non-responding piece of evidence at that timepoint (growing
  measured lesions, unequivocally progressing non-targets, new lesions present); `shrinking_lesions`
  the shrinking ones. Both sorted by lesion id.
- A non-target read `increased` (a further increase of a progressed lesion) counts as unequivocal
  progression, as in RECIST 1.1 (`recist`, non-target decision).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from service.domain.lesions import LesionChange, meets_progression, meets_response
from service.domain.model import NonTargetState
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    DrTrigger,
    LesionStatus,
    Response,
    RuleTrace,
    TimepointResult,
    new_atypical_finding,
)
from service.domain.timeline import PATHOLOGICAL_NODE_MM, Category, TimelineView

# Enum members as module constants (see `engine`, "Performance").
_NEW = LesionStatus.NEW
_NEW_TARGET = Category.NEW_TARGET
_NEW_NON_TARGET = Category.NEW_NON_TARGET
_NON_TARGET = Category.NON_TARGET
_TARGET = Category.TARGET
_UNEQUIVOCAL = NonTargetState.UNEQUIVOCAL_PROGRESSION
_INCREASED = NonTargetState.INCREASED

_FIVE_MM = Decimal(5)
_D07, _D12 = Decimal("0.7"), Decimal("1.2")  # 1 - 30 %, 1 + 20 % (Bernard-Tessier thresholds)
_tuple_new = tuple.__new__
_BY_TARGET_LESION = DrTrigger.TARGET_LESION
_BY_NON_TARGET_LESION = DrTrigger.NON_TARGET_LESION
_BY_NEW_LESION = DrTrigger.NEW_LESION


@dataclass(frozen=True, slots=True)
class DrContext:
    """What a DR definition may look at."""

    view: TimelineView
    changes: tuple[tuple[LesionChange, ...], ...]  # element k-1 = follow-up timepoint k
    timepoints: tuple[TimepointResult, ...]  # RECIST 1.1, element k-1 = timepoint k
    horizon: int  # last follow-up index evaluated (inclusive)


@dataclass(frozen=True, slots=True)
class DrDefinition:
    key: str
    version: str
    detect: Callable[[DrContext, str, str], AtypicalFinding | None]
    citation: str


class _Evidence(NamedTuple):
    shrinking: tuple[str, ...]
    growing: tuple[str, ...]  # measured lesions growing (target-lesion trigger)
    non_target: tuple[str, ...]  # unequivocal non-target progression
    new: tuple[str, ...]  # new lesions present


_NO_EVIDENCE = _Evidence((), (), (), ())


def _finding(
    ctx: DrContext, key: str, version: str, index: int, trigger: DrTrigger, ev: _Evidence, rule: str
) -> AtypicalFinding:
    tp = ctx.timepoints[index - 1]
    growing = tuple(sorted({*ev.growing, *ev.non_target, *ev.new}))
    return new_atypical_finding(
        kind=AtypicalKind.DR,
        definition=key,
        definition_version=version,
        timepoint_index=index,
        timepoint_date=tp.timepoint_date,
        trigger=trigger,
        overall_at_detection=tp.overall,
        growing_lesions=growing,
        shrinking_lesions=ev.shrinking,
        trace=RuleTrace.of(
            rule,
            trigger=trigger,
            index=index,
            shrinking=",".join(ev.shrinking),
            growing=",".join(ev.growing),
            non_target=",".join(ev.non_target),
            new=",".join(ev.new),
        ),
        metrics=(
            ("shrinking_count", Decimal(len(ev.shrinking))),
            ("growing_count", Decimal(len(growing))),
        ),
    )


def _trigger(ev: _Evidence) -> DrTrigger | None:
    """Shrinking evidence plus one other lesion's progression; precedence target > NT > new."""
    shrinking, growing, non_target, new = ev
    if not shrinking:
        return None
    if growing and len({*shrinking, *growing}) > 1:
        return _BY_TARGET_LESION
    if non_target and any(i not in shrinking for i in non_target):
        return _BY_NON_TARGET_LESION
    if new:
        return _BY_NEW_LESION
    return None


def _qualitative(row: Sequence[LesionChange]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    non_target = tuple(
        c.lesion_id
        for c in row
        if c.lesion.category is _NON_TARGET and (c.state is _UNEQUIVOCAL or c.state is _INCREASED)
    )
    new = tuple(c.lesion_id for c in row if c.status is _NEW)
    return non_target, new


def _measured(row: Sequence[LesionChange]) -> list[LesionChange]:
    return [c for c in row if not c.lesion.is_new and c.baseline_mm is not None and c.current_mm is not None]


def _scan(
    ctx: DrContext,
    key: str,
    version: str,
    rule: str,
    evidence: Callable[[Sequence[LesionChange]], _Evidence],
    last: int,
) -> AtypicalFinding | None:
    for index in range(1, min(last, ctx.horizon) + 1):
        ev = evidence(ctx.changes[index - 1])
        trigger = _trigger(ev)
        if trigger is not None:
            return _finding(ctx, key, version, index, trigger, ev, rule)
    return None


def bernard_tessier(ctx: DrContext, key: str, version: str) -> AtypicalFinding | None:
    """Bernard-Tessier et al., Cancer Immunol Immunother 2021;70:221-232 [R], as extended by Guan
    et al. 2024 (the seed study) and written in the FHIR contract section 2.

    At one timepoint at least one measured lesion decreases by MORE than 30 % from its own
    baseline while at least one other lesion increases by MORE than 20 % AND at least 5 mm from its
    own nadir (trigger target-lesion), or a non-target lesion progresses unequivocally (trigger
    non-target-lesion), or a new lesion is present (trigger new-lesion). Strict inequalities:
    exactly -30 % or exactly +20 % do not count (worked case W24).
    """

    def evidence(row: Sequence[LesionChange]) -> _Evidence:
        # One pass over the row; the same tests as `_measured` and `_qualitative`, plus "more than
        # 30 % below its own baseline" and "more than 20 % AND at least 5 mm above its own nadir",
        # with the cross-multiplications solved for the value (exact, as in `lesions.response_to`):
        # 100 (base - current) > 30 base <=> current < 0.7 base; 100 growth > 20 nadir <=>
        # current > 1.2 nadir.
        shrinking: list[str] = []
        growing: list[str] = []
        non_target: list[str] = []
        new: list[str] = []
        # Unpacked in one step: cheaper than reading the LesionChange fields by name.
        for tracked, _, current, base, nadir, state, present, status, _, _ in row:
            category = tracked.category
            if status is _NEW:
                new.append(tracked.lesion.lesion_id)
            if category is _NEW_TARGET or category is _NEW_NON_TARGET:
                continue
            if category is _NON_TARGET and (state is _UNEQUIVOCAL or state is _INCREASED):
                non_target.append(tracked.lesion.lesion_id)
            if current is None or base is None:
                continue
            if base and current < base * _D07:
                shrinking.append(tracked.lesion.lesion_id)
            # A node below 10 mm short axis is normal, not growing (RECIST FAQ "Abnormal lymph node").
            if present and nadir is not None and current - nadir >= _FIVE_MM and current > nadir * _D12:
                growing.append(tracked.lesion.lesion_id)
        if not shrinking:  # no trigger without shrinking evidence (`_trigger`), whatever else grew
            return _NO_EVIDENCE
        return _tuple_new(_Evidence, (tuple(shrinking), tuple(growing), tuple(non_target), tuple(new)))

    return _scan(ctx, key, version, "dr/bernard-tessier", evidence, ctx.horizon)


def _any_change(row: Sequence[LesionChange]) -> _Evidence:
    shrinking: list[str] = []
    growing: list[str] = []
    for c in _measured(row):
        current, base, nadir = c.current_mm, c.baseline_mm, c.nadir_mm
        if current is None or base is None:
            continue
        if current < base:
            shrinking.append(c.lesion_id)
        if c.present and nadir is not None and current > nadir:  # a node < 10 mm is normal
            growing.append(c.lesion_id)
    non_target, new = _qualitative(row)
    return _Evidence(tuple(shrinking), tuple(growing), non_target, new)


def humbert(ctx: DrContext, key: str, version: str) -> AtypicalFinding | None:
    """Humbert & Chardin, Front Oncol 2020;10:566297 (perspective): "coexistence of responding and
    non-responding lesions within the same patient", no thresholds.

    Operationalised: at one timepoint a measured lesion is smaller than at baseline while another is
    larger than its own nadir, or a non-target lesion progresses unequivocally, or a new lesion is
    present (any change counts; worked case W24 "some shrink, some grow").
    """
    return _scan(ctx, key, version, "dr/humbert", _any_change, ctx.horizon)


def tozuka(ctx: DrContext, key: str, version: str) -> AtypicalFinding | None:
    """Tozuka et al., BMC Cancer 2020;20:207 (NSCLC, anti-PD-1/PD-L1): only patients with RECIST
    PD at the first CT; DR = "some shrinking lesions as well as growing or emerging new lesions",
    no numeric thresholds (any decrease versus baseline, any increase versus baseline = nadir at
    the first evaluation, or a new lesion, or unequivocal non-target progression).
    """
    if not ctx.timepoints or ctx.timepoints[0].overall is not Response.PD:
        return None
    return _scan(ctx, key, version, "dr/tozuka", _any_change, 1)


def vaflard_target(ctx: DrContext, key: str, version: str) -> AtypicalFinding | None:
    """Vaflard et al., Drugs R D 2021 (doi 10.1007/s40268-021-00362-3): target-lesion level,
    ">= 1 responding and >= 1 progressive target lesion".

    Per-lesion RECIST-like thresholds (contract LesionResponse): responding = <= -30 % versus its
    baseline (or disappeared), progressive = >= +20 % and >= +5 mm versus its nadir. Baseline target
    lesions only; trigger is always target-lesion.
    """

    def evidence(row: Sequence[LesionChange]) -> _Evidence:
        targets = [c for c in row if c.lesion.category is _TARGET]
        return _Evidence(
            shrinking=tuple(
                c.lesion_id
                for c in targets
                if c.status in (LesionStatus.RESPONDING, LesionStatus.DISAPPEARED)
            ),
            growing=tuple(c.lesion_id for c in targets if c.status is LesionStatus.PROGRESSING),
            non_target=(),
            new=(),
        )

    return _scan(ctx, key, version, "dr/vaflard-target", evidence, ctx.horizon)


def sato_organ(ctx: DrContext, key: str, version: str) -> AtypicalFinding | None:
    """Sato et al., Invest New Drugs 2021 (doi 10.1007/s10637-021-01077-7; NSCLC, nivolumab):
    organ level, RECIST applied per organ at the first evaluation.

    (1) CR/PR in some organs AND PD in others (trigger target-lesion); (2) all organs CR/PR but new
    lesions or unequivocal deterioration of non-measurable lesions (trigger non-target-lesion or
    new-lesion). Organ responses use the target lesions of each organ (all lymph nodes one organ):
    PD = organ sum >= +20 % and >= +5 mm versus its baseline, CR = every target gone (nodes
    < 10 mm), PR = organ sum >= -30 %; an organ with an unmeasured target is not evaluated.
    """
    if ctx.horizon < 1 or not ctx.changes:
        return None
    row = ctx.changes[0]
    organs: dict[str, list[LesionChange]] = {}
    for c in row:
        if c.lesion.category is _TARGET:
            organs.setdefault(c.lesion.organ_key, []).append(c)
    responding: list[str] = []
    progressing: list[str] = []
    all_respond = bool(organs)
    for changes in organs.values():
        if any(c.current_mm is None or c.baseline_mm is None for c in changes):
            all_respond = False
            continue
        base = sum((c.baseline_mm for c in changes if c.baseline_mm is not None), Decimal(0))
        now = sum((c.current_mm for c in changes if c.current_mm is not None), Decimal(0))
        ids = [c.lesion_id for c in changes]
        gone = all(
            (c.current_mm < PATHOLOGICAL_NODE_MM if c.lesion.is_node else c.current_mm == 0)
            for c in changes
            if c.current_mm is not None
        )
        if meets_progression(now, base):
            progressing.extend(ids)
            all_respond = False
        elif gone or meets_response(now, base):
            responding.extend(ids)
        else:
            all_respond = False
    non_target, new = _qualitative(row)
    if responding and progressing:
        ev = _Evidence(tuple(sorted(responding)), tuple(sorted(progressing)), non_target, new)
        return _finding(ctx, key, version, 1, DrTrigger.TARGET_LESION, ev, "dr/sato-organ/mixed-organs")
    if all_respond and (non_target or new):
        ev = _Evidence(tuple(sorted(responding)), (), non_target, new)
        trigger = DrTrigger.NON_TARGET_LESION if non_target else DrTrigger.NEW_LESION
        return _finding(ctx, key, version, 1, trigger, ev, "dr/sato-organ/response-with-new-or-nt")
    return None


REGISTRY: Mapping[str, DrDefinition] = {
    d.key: d
    for d in (
        DrDefinition("bernard-tessier", "1.0", bernard_tessier, "Bernard-Tessier 2021; Guan 2024"),
        DrDefinition("sato-organ", "1.0", sato_organ, "Sato 2021, Invest New Drugs"),
        DrDefinition("tozuka", "1.0", tozuka, "Tozuka 2020, BMC Cancer 20:207"),
        DrDefinition("humbert", "1.0", humbert, "Humbert & Chardin 2020, Front Oncol 10:566297"),
        DrDefinition("vaflard-target", "1.0", vaflard_target, "Vaflard 2021, Drugs R D"),
    )
}
DEFAULT_DEFINITION = "bernard-tessier"


def detect_dissociated_response(ctx: DrContext, definition: str) -> AtypicalFinding | None:
    """Run one registered definition; an unknown key is a configuration bug (KeyError)."""
    d = REGISTRY[definition]
    return d.detect(ctx, d.key, d.version)
