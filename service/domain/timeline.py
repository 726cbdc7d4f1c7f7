"""Timepoints, baseline, lesion categories: the shape of one patient's course before any rule runs.

Implements the reading rules of the FHIR contract section 1 and RECIST 1.1 (Eisenhauer 2009):

- Scans within `timepoint_window_days` of the earliest scan of a group form one timepoint, dated
  by that earliest scan (contract section 1). Scans after `as_of` are ignored.
- Baseline = the latest timepoint on or before treatment start and at most `baseline_window_days`
  before it. The latest earlier timepoint at most `pre_baseline_window_days` before the baseline
  is the pre-baseline scan (used by hyperprogression only).
- Lesion values (RECIST 1.1 section 4.2 and Schwartz 2009 for nodes): long axis for non-nodal
  lesions, short axis for lymph nodes; "too small to measure" = `too_small_mm` (5 mm), "disappeared"
  = 0 mm; several measurements of one lesion on one timepoint are fragments and are added.
- Lesion categories: a lesion seen at baseline keeps its declared role; a lesion first seen after
  baseline is NEW whatever its role says (contract section 1). Missing baseline roles are assigned
  by RECIST 1.1 section 3.3 (largest measurable first: non-nodal LD >= 10 mm, node SA >= 15 mm;
  at most 5 targets, at most 2 per organ, all lymph nodes one organ); declared targets count
  towards the limits. New lesions are split into new-lesion targets (NLT: measurable, at most 5,
  at most 2 per organ) and new-lesion non-targets (NLNT) as in iRECIST (Seymour 2017).
- Equivocal new lymph node (recist.eortc.org FAQ "New lymph node lesions", worked case W16): a new
  node first seen with a short axis of 10 to < 15 mm counts as new only when the next evaluable
  reading still shows it (SA >= 10 mm); it is then dated back to its first sighting. Until that
  next reading exists the node does not count and a DataIssue `equivocal-new-lesion` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import NamedTuple

from service.domain.frozen import fast_constructor
from service.domain.model import (
    Lesion,
    LesionMeasurement,
    LesionRole,
    MeasurementFlag,
    NonTargetState,
    PatientTimeline,
    Scan,
)
from service.domain.parameters import AssessmentParameters
from service.domain.results import DataIssue, RuleTrace, lazy_trace

NODE_ORGAN = "lymph-node"
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
MEASURABLE_NON_NODAL_MM = Decimal(10)
MEASURABLE_NODE_MM = Decimal(15)
PATHOLOGICAL_NODE_MM = Decimal(10)

_STATE_RANK: Mapping[NonTargetState, int] = {
    NonTargetState.ABSENT: 0,
    NonTargetState.PRESENT: 1,
    NonTargetState.INCREASED: 2,
    NonTargetState.UNEQUIVOCAL_PROGRESSION: 3,
}
_ZERO_MM = Decimal(0)
# Enum members read per lesion and timepoint, as module constants (see `engine`, "Performance").
_ABSENT = NonTargetState.ABSENT
_DISAPPEARED = MeasurementFlag.DISAPPEARED
_TOO_SMALL = MeasurementFlag.TOO_SMALL
_TARGET_ROLE = LesionRole.TARGET
_NON_TARGET_ROLE = LesionRole.NON_TARGET
_tuple_new = tuple.__new__
# Sort keys in C (a lambda is a Python call per element).
_LESION_ID = attrgetter("lesion_id")
_STUDY_DATE = attrgetter("study_date")
_TRACKED_ID = attrgetter("lesion.lesion_id")


class Category(StrEnum):
    """What a lesion is for the rules (RECIST 1.1 section 3.3; iRECIST NLT/NLNT)."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NEW_TARGET = "new-target"
    NEW_NON_TARGET = "new-non-target"


_TARGET = Category.TARGET
_NON_TARGET = Category.NON_TARGET


class Reading(NamedTuple):
    """What was recorded for one lesion at one timepoint.

    `value_mm` is the RECIST diameter (long axis, or short axis for a node), fragments added; None
    when no usable diameter was recorded. `state` is the qualitative non-target status, if any.
    A NamedTuple (immutable, and cheap to build: there is one per lesion and timepoint).
    """

    value_mm: Decimal | None
    state: NonTargetState | None
    refs: tuple[str, ...] = ()

    @property
    def evaluable(self) -> bool:
        return self.value_mm is not None or self.state is not None

    def present(self, is_node: bool) -> bool | None:
        """Is the lesion there? None when nothing usable was recorded.

        A node is present (pathological) at a short axis >= 10 mm (RECIST 1.1 section 4.3.1).
        """
        value = self.value_mm
        if value is not None:
            if is_node:
                return value >= PATHOLOGICAL_NODE_MM
            return value > _ZERO_MM
        state = self.state
        if state is not None:
            return state is not _ABSENT
        return None


NOT_READ = Reading(None, None)


@dataclass(frozen=True, slots=True)
class Timepoint:
    """One assessment: scans grouped within the timepoint window, dated by the earliest.

    `index`: 0 = baseline, 1 = first evaluation after baseline, ...; -1 = pre-baseline scan.
    """

    index: int
    day: date
    readings: Mapping[str, Reading]
    refs: tuple[str, ...]

    def reading(self, lesion_id: str) -> Reading:
        return self.readings.get(lesion_id, NOT_READ)


@dataclass(frozen=True, slots=True)
class TrackedLesion:
    """A lesion with the category the rules use."""

    lesion: Lesion
    category: Category
    organ_key: str
    first_seen_index: int  # 0 for baseline disease, else the follow-up index of the first sighting
    counted_from: int | None  # new lesions: first index at which they count as new (None: never)
    auto_selected: bool

    @property
    def lesion_id(self) -> str:
        return self.lesion.lesion_id

    @property
    def is_node(self) -> bool:
        return self.lesion.is_lymph_node

    @property
    def is_new(self) -> bool:
        return self.category in (Category.NEW_TARGET, Category.NEW_NON_TARGET)


@dataclass(frozen=True, slots=True)
class TimelineView:
    """The patient's course as the rules see it (baseline found)."""

    treatment_start: date
    baseline: Timepoint
    pre_baseline: Timepoint | None
    follow_ups: tuple[Timepoint, ...]  # index 1..n in date order
    targets: tuple[TrackedLesion, ...]
    non_targets: tuple[TrackedLesion, ...]
    new_lesions: tuple[TrackedLesion, ...]
    issues: tuple[DataIssue, ...]
    traces: tuple[RuleTrace, ...]

    @property
    def baseline_lesions(self) -> tuple[TrackedLesion, ...]:
        return self.targets + self.non_targets

    @property
    def all_lesions(self) -> tuple[TrackedLesion, ...]:
        return self.targets + self.non_targets + self.new_lesions

    @property
    def auto_selected_targets(self) -> tuple[str, ...]:
        return tuple(t.lesion_id for t in self.targets if t.auto_selected)


@dataclass(frozen=True, slots=True)
class NoBaseline:
    """No usable baseline: the reason as a DataIssue, plus what else was found."""

    issues: tuple[DataIssue, ...]
    trace: RuleTrace


# Stand-ins for the constructors above (see `frozen`): one Timepoint per timepoint and one
# TrackedLesion per lesion of every patient.
_new_timepoint = fast_constructor(Timepoint)
_new_tracked = fast_constructor(TrackedLesion)
_new_view = fast_constructor(TimelineView)


def organ_key(lesion: Lesion) -> str:
    """All lymph nodes together count as one organ (RECIST 1.1 Q&A "Nodes are one organ")."""
    return NODE_ORGAN if lesion.is_lymph_node else lesion.organ


def is_measurable(value_mm: Decimal | None, is_node: bool) -> bool:
    """RECIST 1.1 section 3.1 (CT, slice <= 5 mm): non-nodal LD >= 10 mm, node SA >= 15 mm."""
    if value_mm is None:
        return False
    return value_mm >= (MEASURABLE_NODE_MM if is_node else MEASURABLE_NON_NODAL_MM)


def group_timepoints(scans: Iterable[Scan], window_days: int, as_of: date) -> list[list[Scan]]:
    """Group scans (on or before `as_of`) into timepoints anchored on each group's earliest scan."""
    ordered = sorted([s for s in scans if s.study_date <= as_of], key=_STUDY_DATE)
    groups: list[list[Scan]] = []
    for scan in ordered:
        if groups and (scan.study_date - groups[-1][0].study_date).days <= window_days:
            groups[-1].append(scan)
        else:
            groups.append([scan])
    return groups


def _measurement_value(m: LesionMeasurement, is_node: bool, too_small_mm: Decimal) -> Decimal | None:
    flag = m.flag
    if flag is None:
        return m.short_axis_mm if is_node else m.long_axis_mm
    if flag is _DISAPPEARED:
        return _ZERO_MM
    if flag is _TOO_SMALL:
        return too_small_mm
    return m.short_axis_mm if is_node else m.long_axis_mm


def _read_group(
    scans: Sequence[Scan],
    index: int,
    lesions: Mapping[str, Lesion],
    too_small_mm: Decimal,
    issues: list[DataIssue],
) -> Timepoint:
    # A lesion's Reading is made at its first measurement or status and replaced in the rare cases
    # that add to it (fragments, a diameter and a status, several references), so the usual lesion
    # costs one tuple and no bookkeeping (`_tuple_new`: Reading(...) without its Python __new__).
    readings: dict[str, Reading] = {}
    status_only: set[str] = set()  # lesions read so far by a status, not (yet) by a measurement
    lesion_of = lesions.get
    for scan in scans:
        for m in scan.measurements:
            lid = m.lesion_id
            lesion = lesion_of(lid)
            if lesion is None:
                issues.append(
                    DataIssue("warning", "unknown-lesion", "measurement of an undeclared lesion", m.ref)
                )
                continue
            node = lesion.is_lymph_node
            if m.flag is None:  # the usual case of `_measurement_value`, written out
                value = m.short_axis_mm if node else m.long_axis_mm
            else:
                value = _measurement_value(m, node, too_small_mm)
            if value is None:
                axis = "short axis" if node else "long axis"
                issues.append(DataIssue("warning", "missing-axis", f"measurement without {axis}", m.ref))
            ref = m.ref
            if lid not in readings:
                readings[lid] = _tuple_new(Reading, (value, None, (ref,) if ref else ()))
                continue
            previous, state, refs = readings[lid]
            if lid in status_only:
                status_only.discard(lid)
            else:  # fragments add up; one unusable fragment makes the lesion not measured
                value = None if previous is None or value is None else previous + value
            readings[lid] = _tuple_new(Reading, (value, state, _with_ref(refs, ref)))
        for a in scan.non_target:
            lid = a.lesion_id
            if lid not in lesions:
                issues.append(DataIssue("warning", "unknown-lesion", "status of an undeclared lesion", a.ref))
                continue
            ref = a.ref
            if lid not in readings:
                readings[lid] = _tuple_new(Reading, (None, a.state, (ref,) if ref else ()))
                status_only.add(lid)
                continue
            value, current, refs = readings[lid]
            state = a.state if current is None or _STATE_RANK[a.state] > _STATE_RANK[current] else current
            readings[lid] = _tuple_new(Reading, (value, state, _with_ref(refs, ref)))
    if len(scans) == 1:
        only = scans[0].ref
        scan_refs: tuple[str, ...] = (only,) if only else ()
    else:
        scan_refs = tuple(sorted({s.ref for s in scans if s.ref}))
    return _new_timepoint(index, scans[0].study_date, readings, scan_refs)


def _with_ref(refs: tuple[str, ...], ref: str | None) -> tuple[str, ...]:
    """`refs` (distinct, sorted) with `ref` added, if any."""
    if not ref:
        return refs
    return tuple(sorted({*refs, ref}))


def build_view(
    timeline: PatientTimeline, params: AssessmentParameters, *, as_of: date
) -> TimelineView | NoBaseline:
    """Group scans, pick baseline and pre-baseline, and categorise every lesion."""
    issues: list[DataIssue] = []
    traces: list[RuleTrace] = []
    lesions: dict[str, Lesion] = {}
    for lesion in sorted(timeline.lesions, key=_LESION_ID):
        if lesion.lesion_id in lesions:
            issues.append(
                DataIssue("warning", "duplicate-lesion", "lesion declared twice; first kept", lesion.ref)
            )
            continue
        lesions[lesion.lesion_id] = lesion
    too_small = Decimal(params.too_small_mm)
    groups = group_timepoints(timeline.scans, params.timepoint_window_days, as_of)
    start = timeline.treatment_start
    baseline_pos: int | None = None
    for pos, group in enumerate(groups):
        day = group[0].study_date
        if day <= start and (start - day).days <= params.baseline_window_days:
            baseline_pos = pos
    if baseline_pos is None:
        issue = DataIssue(
            "error",
            "no-baseline",
            f"no imaging timepoint within {params.baseline_window_days} days before treatment start",
        )
        return NoBaseline(
            _unique_sorted((*issues, issue)),
            RuleTrace.of(
                "timeline/no-baseline", window_days=params.baseline_window_days, timepoints=len(groups)
            ),
        )
    baseline = _read_group(groups[baseline_pos], 0, lesions, too_small, issues)
    pre_baseline: Timepoint | None = None
    if baseline_pos > 0:  # the latest earlier timepoint, if within the pre-baseline window
        earlier = groups[baseline_pos - 1]
        if (baseline.day - earlier[0].study_date).days <= params.pre_baseline_window_days:
            pre_baseline = _read_group(earlier, -1, lesions, too_small, issues)
    follow_ups = tuple(
        [
            _read_group(group, n, lesions, too_small, issues)
            for n, group in enumerate(groups[baseline_pos + 1 :], start=1)
        ]
    )
    traces.append(
        lazy_trace(
            "timeline/baseline",
            _baseline_facts,
            (baseline.day, pre_baseline.day if pre_baseline else None, len(follow_ups), params),
        )
    )
    targets, non_targets = _baseline_categories(lesions, baseline, issues, traces)
    new_lesions = _new_lesion_categories(lesions, baseline, follow_ups, issues, traces)
    return _new_view(  # positional, in field order (keywords cost as much again)
        start,  # treatment_start
        baseline,  # baseline
        pre_baseline,  # pre_baseline
        follow_ups,  # follow_ups
        targets,  # targets
        non_targets,  # non_targets
        new_lesions,  # new_lesions
        _unique_sorted(issues) if issues else (),  # issues
        tuple(traces),  # traces
    )


def _baseline_facts(
    data: tuple[date, date | None, int, AssessmentParameters],
) -> tuple[tuple[str, object], ...]:
    """The facts of the baseline trace (`lazy_trace`: gathered when the trace is first read)."""
    baseline_day, pre_baseline_day, follow_ups, params = data
    return (
        ("baseline", baseline_day),
        ("pre_baseline", pre_baseline_day),
        ("follow_ups", follow_ups),
        ("window_days", params.timepoint_window_days),
    )


def _unique_sorted(issues: Iterable[DataIssue]) -> tuple[DataIssue, ...]:
    """Issues in a stable order whatever the input order (one per code, resource and message)."""
    return tuple(sorted(set(issues), key=lambda i: (i.code, i.ref or "", i.message, i.severity)))


def _baseline_categories(
    lesions: Mapping[str, Lesion],
    baseline: Timepoint,
    issues: list[DataIssue],
    traces: list[RuleTrace],
) -> tuple[tuple[TrackedLesion, ...], tuple[TrackedLesion, ...]]:
    """Declared roles first; missing roles by RECIST 1.1 section 3.3 (largest measurable first)."""
    targets: list[TrackedLesion] = []
    non_targets: list[TrackedLesion] = []
    candidates: list[Lesion] = []
    reading_of = baseline.readings.get
    for lid, lesion in lesions.items():  # sorted by id
        reading = reading_of(lid)
        if reading is None:
            continue  # not recorded: not baseline disease
        value, state, _ = reading
        # Baseline disease is recorded as existing: a diameter > 0, or a status other than absent.
        if not (value > _ZERO_MM if value is not None else state is not None and state is not _ABSENT):
            continue
        role = lesion.role
        key = NODE_ORGAN if lesion.is_lymph_node else lesion.organ  # `organ_key`, written out
        if role is _TARGET_ROLE:
            if value is None:
                issues.append(
                    DataIssue(
                        "warning",
                        "target-not-measured",
                        "declared target without a baseline diameter; followed as non-target",
                        lesion.ref,
                    )
                )
                non_targets.append(_new_tracked(lesion, _NON_TARGET, key, 0, None, False))
                continue
            if not is_measurable(value, lesion.is_lymph_node):
                issues.append(
                    DataIssue(
                        "information",
                        "target-not-measurable",
                        "declared target below the RECIST 1.1 measurability size; kept as declared",
                        lesion.ref,
                    )
                )
            targets.append(_new_tracked(lesion, _TARGET, key, 0, None, False))
        elif role is _NON_TARGET_ROLE:
            non_targets.append(_new_tracked(lesion, _NON_TARGET, key, 0, None, False))
        else:
            candidates.append(lesion)
    per_organ: dict[str, int] = {}
    for t in targets:
        per_organ[t.organ_key] = per_organ.get(t.organ_key, 0) + 1
    total = len(targets)

    def size(lesion: Lesion) -> Decimal:
        return baseline.reading(lesion.lesion_id).value_mm or Decimal(0)

    for lesion in sorted(candidates, key=lambda x: (-size(x), x.lesion_id)):
        key = organ_key(lesion)
        value = baseline.reading(lesion.lesion_id).value_mm
        if (
            is_measurable(value, lesion.is_lymph_node)
            and total < MAX_TARGETS
            and per_organ.get(key, 0) < MAX_TARGETS_PER_ORGAN
        ):
            total += 1
            per_organ[key] = per_organ.get(key, 0) + 1
            targets.append(_new_tracked(lesion, Category.TARGET, key, 0, None, True))
            traces.append(
                RuleTrace.of("recist1.1/target-selection/auto-target", lesion=lesion.lesion_id, mm=value)
            )
        else:
            non_targets.append(_new_tracked(lesion, Category.NON_TARGET, key, 0, None, True))
            traces.append(
                RuleTrace.of("recist1.1/target-selection/auto-non-target", lesion=lesion.lesion_id, mm=value)
            )
    targets.sort(key=_TRACKED_ID)
    non_targets.sort(key=_TRACKED_ID)
    return tuple(targets), tuple(non_targets)


def _counted_from(
    lesion: Lesion, sightings: Sequence[tuple[int, Reading]], follow_ups: Sequence[Timepoint]
) -> tuple[int | None, bool]:
    """First index at which a new lesion counts, and whether an equivocal sighting is still open."""
    node = lesion.is_lymph_node
    pos = 0
    while pos < len(sightings):
        index, reading = sightings[pos]
        equivocal = node and reading.value_mm is not None and reading.value_mm < MEASURABLE_NODE_MM
        if not equivocal:
            return index, False
        # Equivocal new node: look at the next evaluable reading.
        confirmation: bool | None = None
        for tp in follow_ups[index:]:  # follow_ups[index] is index + 1
            nxt = tp.reading(lesion.lesion_id)
            present = nxt.present(node)
            if present is not None:
                confirmation = present
                break
        if confirmation is None:
            return None, True
        if confirmation:
            return index, False
        pos += 1
    return None, False


def _new_lesion_categories(
    lesions: Mapping[str, Lesion],
    baseline: Timepoint,
    follow_ups: Sequence[Timepoint],
    issues: list[DataIssue],
    traces: list[RuleTrace],
) -> tuple[TrackedLesion, ...]:
    """Lesions first seen after baseline are new (contract section 1); NLT vs NLNT per iRECIST."""
    sightings: dict[str, list[tuple[int, Reading]]] = {}
    # Baseline disease, as in `_baseline_categories`: a diameter > 0, or a status other than absent.
    at_baseline = {
        lid
        for lid, (value, state, _) in baseline.readings.items()
        if (value > _ZERO_MM if value is not None else state is not None and state is not _ABSENT)
    }
    for tp in follow_ups:
        for lid, reading in tp.readings.items():
            if lid in at_baseline:  # most readings: skipped before any call
                continue
            lesion = lesions.get(lid)
            if lesion is not None and reading.present(lesion.is_lymph_node):
                sightings.setdefault(lid, []).append((tp.index, reading))
    if not sightings:
        return ()
    found: list[tuple[int, Decimal, str]] = []
    for lid, seen in sightings.items():
        first_index, first_reading = seen[0]
        found.append((first_index, -(first_reading.value_mm or Decimal(0)), lid))
    found.sort()
    result: list[TrackedLesion] = []
    per_organ: dict[str, int] = {}
    total = 0
    for first_index, neg_size, lid in found:
        lesion = lesions[lid]
        key = organ_key(lesion)
        counted_from, open_equivocal = _counted_from(lesion, sightings[lid], follow_ups)
        if open_equivocal:
            issues.append(
                DataIssue(
                    "information",
                    "equivocal-new-lesion",
                    "new lymph node with short axis 10 to <15 mm awaits the next assessment",
                    lesion.ref,
                )
            )
        if counted_from is None:
            traces.append(
                RuleTrace.of("recist1.1/new-lesion/equivocal-node", lesion=lid, first_index=first_index)
            )
        declared = lesion.role
        if declared is LesionRole.NEW_TARGET:
            nlt = True
        elif declared in (LesionRole.NEW_NON_TARGET, LesionRole.NON_TARGET):
            nlt = False
        else:
            nlt = (
                is_measurable(-neg_size, lesion.is_lymph_node)
                and total < MAX_TARGETS
                and per_organ.get(key, 0) < MAX_TARGETS_PER_ORGAN
            )
        if nlt:
            total += 1
            per_organ[key] = per_organ.get(key, 0) + 1
        category = Category.NEW_TARGET if nlt else Category.NEW_NON_TARGET
        result.append(
            _new_tracked(lesion, category, key, first_index, counted_from, declared not in _NEW_ROLES)
        )
    result.sort(key=lambda t: t.lesion_id)
    return tuple(result)


_NEW_ROLES = (LesionRole.NEW_TARGET, LesionRole.NEW_NON_TARGET)
