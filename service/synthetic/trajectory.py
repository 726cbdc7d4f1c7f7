"""Lesion courses for each response trajectory, with clear margins and a built-in guard.

A trajectory script decides, per follow-up timepoint, every lesion's size (tenths of a millimetre,
integers, so that sums are exact), every non-target status and the new lesions, together with the
RECIST 1.1 and iRECIST timepoint responses it intends. `verify_course` then re-derives the RECIST 1.1
target and overall responses (Eisenhauer 2009, section 4.3 and Table 1) and the dissociated-response
triggers (Bernard-Tessier as extended by Guan 2024; contract section 2) twice: once with thresholds
moved towards "respond/progress" and once moved away. Both readings must agree with each other and
with the intended labels, so no generated value lies near a threshold:

- PR needs the sum <= 62 % of baseline (threshold 70 %); "not PR" needs > 78 %.
- PD needs >= 135 % of the nadir and >= +10 mm (thresholds 120 %, 5 mm); "not PD" < 110 % or < +2 mm.
- A lesion "shrinks" for DR at <= 62 % of its baseline, is "not shrinking" above 78 %; it "grows" at
  >= 135 % of its own nadir and >= +8 mm, is "not growing" below 110 % or below +2 mm.
- CR: non-nodal targets 0 mm and nodes' short axis <= 8 mm (threshold < 10 mm).

A course that fails the guard is redrawn (rejection sampling with the same seeded generator), so a
wrong script shows up as `CourseError`, never as silently wrong ground truth.

Decisions where the sources are silent [P]:
- Complete responders never progress radiologically in the generated data (a relapse after CR would
  formally be a DR: disappeared lesions "shrank > 30 %" while a new lesion appears).
- Progression after a response (PR, delayed response, PsPD) regrows every lesion to >= 85 % of its
  baseline, so no lesion is still "shrunk > 30 %" when others grow (no accidental DR).
- After a DR by new lesion or non-target progression, the course stays unchanged (iRECIST FAQ
  scenario F: stays iUPD) until a later generalised progression (additional new lesion: iCPD).
- The scan after an iUPD is 35-49 days later (inside the iRECIST 4-8 week confirmation window).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# Lesion roles and statuses (values of OR/CodeSystem/lesion-role and OR/CodeSystem/non-target-status).
TARGET = "target"
NON_TARGET = "non-target"
NEW_TARGET = "new-target"
NEW_NON_TARGET = "new-non-target"
ABSENT = "absent"
PRESENT = "present"
INCREASED = "increased"
UNEQUIVOCAL = "unequivocal-progression"
TOO_SMALL = "too-small"
DISAPPEARED = "disappeared"
TOO_SMALL_TENTHS = 50  # RECIST 1.1: "too small to measure" counts as 5 mm

NODE = "lymph-node"  # codes.ORGANS key whose SNOMED code is codes.SNOMED_LYMPH_NODE


class Trajectory(StrEnum):
    """Response pattern a generated patient is built to show."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    DR_TARGET = "DR-target"
    DR_NON_TARGET = "DR-non-target"
    DR_NEW_LESION = "DR-new-lesion"
    PSPD = "PsPD"
    HPD = "HPD"
    DELAYED_RESPONSE = "delayed-response"


DR_TRAJECTORIES = frozenset({Trajectory.DR_TARGET, Trajectory.DR_NON_TARGET, Trajectory.DR_NEW_LESION})
DR_TRIGGER_BY_TRAJECTORY: Mapping[Trajectory, str] = {
    Trajectory.DR_TARGET: "target-lesion",
    Trajectory.DR_NON_TARGET: "non-target-lesion",
    Trajectory.DR_NEW_LESION: "new-lesion",
}


class CourseError(RuntimeError):
    """A trajectory script produced a course that does not show its intended pattern (a bug)."""


@dataclass(frozen=True, slots=True)
class TrajectoryOptions:
    """Variants of a trajectory (all optional; `None` = drawn from the seed).

    - `dr_timepoint`: DR_*: index of the first DR timepoint (1 = first evaluation).
    - `first_evaluation`: DR_*: RECIST 1.1 response at timepoint 1 (`PR`, `SD`; `PD` only with a DR at
      timepoint 1 by new lesion / non-target). PD: `PR` gives the "unconfirmed PR at day ~28, then PD"
      variant (confirmed BOR PD, first evaluation PR).
    - `dr_organ`: organ (codes.ORGANS key) of the growing target, new lesion or progressing
      non-target lesion.
    - `pd_mode`: PD / SD progression: `target`, `new-lesion` or `non-target`.
    - `progression_index`: for trajectories with a free late progression, the timepoint at which it
      is shown (set by the survival model; `None` = no progression while followed).
    """

    dr_timepoint: int | None = None
    first_evaluation: str | None = None
    dr_organ: str | None = None
    pd_mode: str | None = None
    progression_index: int | None = None


@dataclass(frozen=True, slots=True)
class PlannedLesion:
    """One lesion. `size0` is the first measured size in tenths of a mm (short axis for nodes)."""

    key: str
    organ: str
    role: str
    is_node: bool
    size0: int  # 0 when not measured (non-target)
    long_pct: int = 100  # nodes: long axis = short axis * long_pct / 100
    first_seen: int = 0  # 0 = baseline (and pre-baseline), k = follow-up timepoint k

    @property
    def measured(self) -> bool:
        return self.role in (TARGET, NEW_TARGET)


@dataclass(frozen=True, slots=True)
class TimepointPlan:
    """What one scan shows. `index` -1 = pre-baseline, 0 = baseline, k >= 1 = follow-up k."""

    index: int
    sizes: Mapping[str, int]  # measured lesions: tenths of mm (0 = disappeared)
    statuses: Mapping[str, str]  # non-measured lesions: non-target-status code
    recist: str | None = None
    irecist: str | None = None

    def effective(self, key: str) -> int:
        value = self.sizes[key]
        return TOO_SMALL_TENTHS if 0 < value < TOO_SMALL_TENTHS else value


@dataclass(frozen=True, slots=True)
class Course:
    """The lesions and scans of one patient, plus the findings the script intends."""

    trajectory: Trajectory
    lesions: tuple[PlannedLesion, ...]
    timepoints: tuple[TimepointPlan, ...]  # pre-baseline (optional), baseline, follow-ups
    dr_timepoint: int | None = None
    dr_trigger: str | None = None
    pspd_timepoint: int | None = None
    hpd: bool = False
    delayed_response: bool = False
    early_first_evaluation: bool = False  # PD variant: timepoint 1 at day ~28
    confirmation_after: frozenset[int] = field(default_factory=frozenset)  # TPs followed by a 35-49 d scan

    @property
    def follow_ups(self) -> tuple[TimepointPlan, ...]:
        return tuple(tp for tp in self.timepoints if tp.index >= 1)

    @property
    def baseline(self) -> TimepointPlan:
        return next(tp for tp in self.timepoints if tp.index == 0)

    @property
    def pre_baseline(self) -> TimepointPlan | None:
        return next((tp for tp in self.timepoints if tp.index == -1), None)

    def lesion(self, key: str) -> PlannedLesion:
        return next(lesion for lesion in self.lesions if lesion.key == key)


# --- organs per tumour type (targets, non-targets) ---------------------------------------------
TARGET_ORGANS: Mapping[str, tuple[str, ...]] = {
    "NSCLC": ("lung", NODE, "liver", "adrenal", "lung"),
    "SCLC": ("lung", NODE, "liver", "adrenal"),
    "gastric": ("liver", NODE, "peritoneum", "stomach"),
    "HCC": ("liver", "lung", NODE),
    "ovarian": ("peritoneum", "liver", NODE, "ovary"),
    "pancreatic": ("pancreas", "liver", NODE, "peritoneum"),
    "other": ("liver", "lung", NODE, "soft-tissue", "kidney"),
}
NON_TARGET_ORGANS: Mapping[str, tuple[str, ...]] = {
    "NSCLC": ("bone", "pleura", "brain", NODE),
    "SCLC": ("bone", "brain", NODE),
    "gastric": ("peritoneum", NODE, "bone"),
    "HCC": ("bone", NODE, "peritoneum"),
    "ovarian": ("peritoneum", "pleura", NODE),
    "pancreatic": ("peritoneum", NODE, "bone"),
    "other": ("bone", "skin", NODE, "pleura"),
}
MEASURABLE_DR_ORGANS = ("liver", NODE, "lung", "adrenal")


@dataclass(slots=True)
class _Draft:
    """Mutable working state of a script: lesions and rows of sizes / statuses."""

    rng: random.Random
    lesions: list[PlannedLesion] = field(default_factory=list)
    rows: list[tuple[dict[str, int], dict[str, str], str | None, str | None]] = field(default_factory=list)

    # lesions ------------------------------------------------------------------------------------
    def add_target(self, organ: str, lo: int, hi: int) -> str:
        key = f"L{len(self.lesions) + 1}"
        node = organ == NODE
        if node:  # nodal targets: short axis >= 15 mm (RECIST 1.1), bulky nodes capped at 30 mm
            lo = min(max(lo, 160), 260)
            hi = max(lo + 10, min(hi, 300))
        size = self.rng.randint(lo, hi)
        long_pct = self.rng.randint(120, 160) if node else 100
        self.lesions.append(PlannedLesion(key, organ, TARGET, node, size, long_pct))
        return key

    def add_non_target(self, organ: str) -> str:
        key = f"L{len(self.lesions) + 1}"
        self.lesions.append(PlannedLesion(key, organ, NON_TARGET, organ == NODE, 0))
        return key

    def add_new(self, organ: str, first_seen: int, *, measured: bool) -> str:
        key = f"L{len(self.lesions) + 1}"
        node = organ == NODE
        if measured:
            size = self.rng.randint(160, 220) if node else self.rng.randint(120, 220)
            lesion = PlannedLesion(
                key, organ, NEW_TARGET, node, size, self.rng.randint(120, 150) if node else 100, first_seen
            )
        else:
            lesion = PlannedLesion(key, organ, NEW_NON_TARGET, node, 0, 100, first_seen)
        self.lesions.append(lesion)
        return key

    def targets(self) -> list[PlannedLesion]:
        return [lesion for lesion in self.lesions if lesion.role == TARGET]

    def non_targets(self) -> list[PlannedLesion]:
        return [lesion for lesion in self.lesions if lesion.role == NON_TARGET]

    # rows -----------------------------------------------------------------------------------------
    def baseline_row(self) -> None:
        sizes = {t.key: t.size0 for t in self.targets()}
        statuses = {n.key: PRESENT for n in self.non_targets()}
        self.rows.append((sizes, statuses, None, None))

    def last(self) -> tuple[dict[str, int], dict[str, str]]:
        sizes, statuses, _, _ = self.rows[-1]
        return dict(sizes), dict(statuses)

    def size_at(self, key: str, level: float) -> int:
        return max(0, round(self.lesion(key).size0 * level))

    def lesion(self, key: str) -> PlannedLesion:
        return next(lesion for lesion in self.lesions if lesion.key == key)

    def nadir(self, key: str) -> int:
        return min(row[0][key] for row in self.rows if key in row[0])

    def row(self, sizes: dict[str, int], statuses: dict[str, str], recist: str, irecist: str) -> None:
        self.rows.append((sizes, statuses, recist, irecist))

    def jitter(self, spread: float = 0.015) -> float:
        return 1.0 + self.rng.uniform(-spread, spread)


def _uniform_level(d: _Draft, keys: list[str], level: float, spread: float = 0.03) -> dict[str, int]:
    return {k: d.size_at(k, level * d.jitter(spread)) for k in keys}


def _stable_from(d: _Draft, sizes: Mapping[str, int], keys: list[str]) -> dict[str, int]:
    """Unchanged within +-0.5 mm (so that iRECIST sees "no change": iUPD stays iUPD)."""
    return {k: max(0, sizes[k] + d.rng.randint(-5, 5)) if sizes[k] > 0 else 0 for k in keys}


# --- lesion sets --------------------------------------------------------------------------------
def _target_organs(d: _Draft, tumour_type: str, n: int, *, avoid: tuple[str, ...] = ()) -> list[str]:
    pool = [o for o in (*TARGET_ORGANS[tumour_type], "liver", "lung", NODE) if o not in avoid]
    used = [t.organ for t in d.targets()]
    organs: list[str] = []
    while len(organs) < n:
        organ = d.rng.choice(pool)
        if (used + organs).count(organ) < 2:  # RECIST 1.1: <= 2 targets per organ (nodes = one organ)
            organs.append(organ)
    return organs


def _non_targets(d: _Draft, tumour_type: str, n: int) -> None:
    for _ in range(n):
        d.add_non_target(d.rng.choice(NON_TARGET_ORGANS[tumour_type]))


def _standard_lesions(d: _Draft, tumour_type: str, *, min_targets: int = 2, min_nt: int = 0) -> None:
    n_targets = d.rng.randint(min_targets, 5)
    while True:  # a sum >= 45 mm keeps every mm margin comfortable
        d.lesions.clear()
        for organ in _target_organs(d, tumour_type, n_targets):
            d.add_target(organ, 150, 520)
        if sum(t.size0 for t in d.targets()) >= 450:
            break
    _non_targets(d, tumour_type, d.rng.randint(min_nt, 3))


# --- the scripts ---------------------------------------------------------------------------------
ScriptFn = Callable[[_Draft, str, TrajectoryOptions, int], Course]


def _progress_after_response(d: _Draft, index_from: int, n: int) -> None:
    """Uniform regrowth of every lesion to >= 85 % of baseline (PD / iUPD), then iCPD (+25 %)."""
    keys = [t.key for t in d.targets()]
    if index_from > n:
        return
    _, statuses = d.last()
    grown = {k: max(d.size_at(k, 0.85 * d.jitter(0.02)), round(d.nadir(k) * 1.5)) for k in keys}
    d.row(grown, statuses, "PD", "iUPD")
    if index_from + 1 <= n:
        d.row({k: round(v * 1.25) for k, v in grown.items()}, statuses, "PD", "iCPD")


def _script_cr(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    d.baseline_row()
    keys = [t.key for t in d.targets()]
    nodes = {k: d.rng.randint(55, 72) for k in keys if d.lesion(k).is_node}
    statuses = {nt.key: ABSENT for nt in d.non_targets()}
    for _ in range(n):
        sizes = {k: (nodes[k] + d.rng.randint(-3, 3) if k in nodes else 0) for k in keys}
        d.row(sizes, dict(statuses), "CR", "iCR")
    return _course(d, Trajectory.CR)


def _script_pr(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    d.baseline_row()
    keys = [t.key for t in d.targets()]
    prog = opts.progression_index
    level1 = d.rng.uniform(0.46, 0.54)
    level2 = level1 - d.rng.uniform(0.04, 0.10)
    profile = {k: d.jitter(0.04) for k in keys}
    vanishing = None
    if prog is None and d.rng.random() < 0.7:
        small = sorted((t for t in d.targets() if not t.is_node), key=lambda t: t.size0)[:1]
        vanishing = small[0].key if small else None
    for i in range(1, n + 1):
        if prog is not None and i >= prog:
            _progress_after_response(d, i, n)
            break
        _, statuses = d.last()
        level = level1 if i == 1 else level2
        sizes = {k: d.size_at(k, level * profile[k] * d.jitter(0.01)) for k in keys}
        if vanishing is not None and i >= 2:
            sizes[vanishing] = d.rng.randint(25, 45)  # present but too small: reported as 5 mm
        d.row(sizes, statuses, "PR", "iPR")
    return _course(d, Trajectory.PR)


def _sd_rows(d: _Draft, first: int, last: int, level: float) -> float:
    keys = [t.key for t in d.targets()]
    for _ in range(first, last + 1):
        _, statuses = d.last()
        d.row(_uniform_level(d, keys, level, 0.03), statuses, "SD", "iSD")
        level = min(level, max(0.90, level + d.rng.uniform(-0.03, 0.02)))
    return level


def _progress_all_grow(d: _Draft, index: int, n: int, mode: str, tt: str) -> None:
    """True progression: every lesion grows (>= +40 % from its nadir) or a new lesion / NT progression,
    and nothing shrinks; then iCPD at the confirmation scan."""
    keys = [t.key for t in d.targets()]
    sizes, statuses = d.last()
    if mode == "target":
        grown = {k: round(d.nadir(k) * d.rng.uniform(1.42, 1.6)) for k in keys}
    else:
        grown = _stable_from(d, sizes, keys)
    new_key = None
    if mode == "new-lesion":
        new_key = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), index, measured=d.rng.random() < 0.6)
        if d.lesion(new_key).measured:
            grown[new_key] = d.lesion(new_key).size0
        else:
            statuses[new_key] = PRESENT
    if mode == "non-target":
        nts = d.non_targets()
        if not nts:
            raise CourseError("non-target progression needs a non-target lesion")
        statuses[nts[0].key] = UNEQUIVOCAL
    d.row(grown, statuses, "PD", "iUPD")
    if index + 1 <= n:
        confirm = dict(grown)
        statuses2 = dict(statuses)
        if mode == "target":
            confirm = {k: round(v * 1.25) for k, v in grown.items()}
        elif mode == "new-lesion":
            extra = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), index + 1, measured=False)
            statuses2[extra] = PRESENT
        else:
            statuses2[d.non_targets()[0].key] = INCREASED
        d.row(confirm, statuses2, "PD", "iCPD")


def _script_sd(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    d.baseline_row()
    prog = opts.progression_index
    level = d.rng.uniform(0.90, 1.0)
    last_sd = n if prog is None else min(n, prog - 1)
    _sd_rows(d, 1, last_sd, level)
    if prog is not None and prog <= n:
        mode = opts.pd_mode or ("new-lesion" if d.rng.random() < 0.3 else "target")
        if mode == "new-lesion":  # a new lesion with the targets also growing: unmistakable PD
            mode = "target"
            _progress_all_grow(d, prog, n, mode, tt)
            new_key = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), prog, measured=False)
            for row in d.rows[prog:]:
                row[1][new_key] = PRESENT
        else:
            _progress_all_grow(d, prog, n, mode, tt)
    return _course(d, Trajectory.SD)


def _script_pd(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    mode = opts.pd_mode or d.rng.choices(["target", "new-lesion", "non-target"], [6, 3, 1])[0]
    _standard_lesions(d, tt, min_nt=1 if mode == "non-target" else 0)
    d.baseline_row()
    keys = [t.key for t in d.targets()]
    if opts.first_evaluation == "PR":
        # Unconfirmed PR at day ~28, PD at the next scan: confirmed BOR PD (PR < 42 days, no SD).
        _, statuses = d.last()
        d.row(_uniform_level(d, keys, d.rng.uniform(0.48, 0.55)), statuses, "PR", "iPR")
        grown = {k: max(d.size_at(k, d.rng.uniform(0.92, 1.0)), round(d.nadir(k) * 1.6)) for k in keys}
        d.row(grown, dict(statuses), "PD", "iUPD")
        if n >= 3:
            d.row({k: round(v * 1.25) for k, v in grown.items()}, dict(statuses), "PD", "iCPD")
        return _course(d, Trajectory.PD, early_first_evaluation=True, confirmation_after=frozenset({2}))
    # With a new lesion or NT progression the targets stay put: nothing shrinks, so true PD, not DR.
    _progress_all_grow(d, 1, n, mode, tt)
    return _course(d, Trajectory.PD, confirmation_after=frozenset({1}))


def _script_hpd(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    keys = [t.key for t in d.targets()]
    pre = {k: round(d.lesion(k).size0 / d.rng.uniform(1.05, 1.12)) for k in keys}
    d.rows.append((pre, {nt.key: PRESENT for nt in d.non_targets()}, None, None))
    d.baseline_row()
    _, statuses = d.last()
    grown = {k: round(d.lesion(k).size0 * d.rng.uniform(1.9, 2.3)) for k in keys}
    for _ in range(2):  # >= 2 new lesions in an involved organ (Lo Russo / Matos)
        key = d.add_new(d.lesions[0].organ, 1, measured=True)
        grown[key] = d.lesion(key).size0
    d.row(grown, statuses, "PD", "iUPD")
    if n >= 2:
        extra = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), 2, measured=False)
        statuses2 = dict(statuses)
        statuses2[extra] = PRESENT
        d.row({k: round(v * 1.2) for k, v in grown.items()}, statuses2, "PD", "iCPD")
    return _course(d, Trajectory.HPD, hpd=True, confirmation_after=frozenset({1}))


def _script_pspd(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    d.baseline_row()
    keys = [t.key for t in d.targets()]
    _sd_rows(d, 1, 1, d.rng.uniform(0.90, 0.98))
    _, statuses = d.last()
    d.row({k: round(d.nadir(k) * d.rng.uniform(1.42, 1.55)) for k in keys}, statuses, "PD", "iUPD")
    d.row(_uniform_level(d, keys, d.rng.uniform(0.86, 0.90), 0.02), dict(statuses), "SD", "iSD")
    prog = opts.progression_index
    for i in range(4, n + 1):
        if prog is not None and i >= prog:
            _progress_after_response(d, i, n)
            break
        d.row(_uniform_level(d, keys, d.rng.uniform(0.48, 0.54), 0.03), dict(statuses), "PR", "iPR")
    return _course(d, Trajectory.PSPD, pspd_timepoint=2, confirmation_after=frozenset({2}))


def _script_delayed(d: _Draft, tt: str, opts: TrajectoryOptions, n: int) -> Course:
    _standard_lesions(d, tt)
    d.baseline_row()
    keys = [t.key for t in d.targets()]
    _, statuses = d.last()
    d.row(_uniform_level(d, keys, d.rng.uniform(0.93, 0.98), 0.02), dict(statuses), "SD", "iSD")
    d.row(_uniform_level(d, keys, d.rng.uniform(0.88, 0.90), 0.02), dict(statuses), "SD", "iSD")
    d.row(_uniform_level(d, keys, d.rng.uniform(0.50, 0.54), 0.03), dict(statuses), "PR", "iPR")
    prog = opts.progression_index
    for i in range(4, n + 1):
        if prog is not None and i >= prog:
            _progress_after_response(d, i, n)
            break
        d.row(_uniform_level(d, keys, d.rng.uniform(0.42, 0.48), 0.03), dict(statuses), "PR", "iPR")
    return _course(d, Trajectory.DELAYED_RESPONSE, delayed_response=True)


def _dr_lesions(d: _Draft, tt: str, opts: TrajectoryOptions, *, grower: bool) -> tuple[list[str], str | None]:
    """Responders (large) plus, for a target-trigger DR, one small growing target in `dr_organ`."""
    grow_key = None
    organ = opts.dr_organ if opts.dr_organ in MEASURABLE_DR_ORGANS else d.rng.choice(MEASURABLE_DR_ORGANS)
    if grower:
        grow_key = d.add_target(organ, 150, 180)
    # PR at the first evaluation: every other target responds; otherwise one responder among stable disease.
    n_resp = d.rng.randint(2, 3) if opts.first_evaluation == "PR" else 1
    avoid = (organ,) if grower else ()
    for o in _target_organs(d, tt, n_resp, avoid=avoid):
        d.add_target(o, 300, 520)
    responders = [t.key for t in d.targets() if t.key != grow_key]
    return responders, grow_key


def _dr_levels(d: _Draft, first_evaluation: str, k: int) -> list[float]:
    """Responders' level per timepoint 1..k.

    PR first: the sum stays <= 62 % of baseline; the responders shrink slowly and then clearly at the
    DR timepoint, which offsets the growing target in the sum (overall PR, not PD). SD first: one
    responder among stable lesions, mild at first and <= 50 % of its baseline at the DR timepoint.
    """
    if first_evaluation == "PR":
        if k == 1:
            return [d.rng.uniform(0.30, 0.36)]
        levels = [d.rng.uniform(0.48, 0.53)]
        for _ in range(2, k):
            levels.append(levels[-1] - d.rng.uniform(0.03, 0.06))
        levels.append(levels[-1] - d.rng.uniform(0.11, 0.15))
        return levels
    if k == 1:
        return [d.rng.uniform(0.40, 0.48)]
    levels = [d.rng.uniform(0.70, 0.76)]
    for _ in range(2, k):
        levels.append(max(0.55, levels[-1] - d.rng.uniform(0.04, 0.08)))
    levels.append(min(levels[-1] - 0.1, d.rng.uniform(0.40, 0.50)))
    return levels


def _script_dr(d: _Draft, tt: str, opts: TrajectoryOptions, n: int, trajectory: Trajectory) -> Course:
    k = opts.dr_timepoint or 1
    fe = opts.first_evaluation or "SD"
    target_trigger = trajectory is Trajectory.DR_TARGET
    responders, grow_key = _dr_lesions(d, tt, opts, grower=target_trigger)
    if fe != "PR":  # stable disease dilutes the responder's shrinkage in the sum (overall SD)
        for o in _target_organs(d, tt, d.rng.randint(2, 3)):
            d.add_target(o, 400, 560)
    if trajectory is Trajectory.DR_NON_TARGET:
        d.add_non_target(opts.dr_organ or d.rng.choice(NON_TARGET_ORGANS[tt]))
    _non_targets(d, tt, d.rng.randint(0, 2))
    d.baseline_row()
    stable = [t.key for t in d.targets() if t.key not in responders and t.key != grow_key]
    levels = _dr_levels(d, fe, k)
    overall_before = fe
    for i in range(1, k + 1):
        sizes, statuses = d.last()
        new_sizes = {r: d.size_at(r, levels[i - 1] * d.jitter(0.02)) for r in responders}
        new_sizes.update({s: d.size_at(s, d.rng.uniform(0.97, 1.02)) for s in stable})
        if grow_key is not None:
            new_sizes[grow_key] = (
                round(d.nadir(grow_key) * d.rng.uniform(1.65, 1.85))
                if i == k
                else d.size_at(grow_key, d.rng.uniform(0.97, 1.01))
            )
        recist, irecist = overall_before, "i" + overall_before
        if i == k:
            if trajectory is Trajectory.DR_NEW_LESION:
                organ = opts.dr_organ or d.rng.choice(MEASURABLE_DR_ORGANS)
                measured = organ not in ("bone", "brain", "pleura")
                key = d.add_new(organ, k, measured=measured)
                if measured:
                    new_sizes[key] = d.lesion(key).size0
                else:
                    statuses[key] = PRESENT
                recist, irecist = "PD", "iUPD"
            elif trajectory is Trajectory.DR_NON_TARGET:
                statuses[d.non_targets()[0].key] = UNEQUIVOCAL
                recist, irecist = "PD", "iUPD"
        d.row(new_sizes, statuses, recist, irecist)
    prog = opts.progression_index
    after_iupd = trajectory is not Trajectory.DR_TARGET
    # "Unchanged" is judged against the DR timepoint itself, not the previous scan: a +-0.5 mm random
    # walk drifted >= 5 mm over a dozen scans, which the engine reads as further shrinkage after the
    # iUPD (FAQ scenario B: iPR, a reset and so a pseudoprogression) instead of scenario F (stays iUPD).
    # Ground-truth check.
    at_dr = dict(d.rows[k][0])
    i = k + 1
    while i <= n:
        _, statuses = d.last()
        sizes = dict(at_dr)
        if prog is not None and i >= prog:
            # Generalised progression later on: an additional new lesion (iCPD after an iUPD).
            extra = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), i, measured=False)
            statuses[extra] = PRESENT
            if after_iupd:
                d.row(_stable_from(d, sizes, list(sizes)), statuses, "PD", "iCPD")
                break
            d.row(_stable_from(d, sizes, list(sizes)), statuses, "PD", "iUPD")
            if i + 1 <= n:
                extra2 = d.add_new(d.rng.choice(TARGET_ORGANS[tt]), i + 1, measured=False)
                statuses2 = dict(statuses)
                statuses2[extra2] = PRESENT
                d.row(_stable_from(d, sizes, list(sizes)), statuses2, "PD", "iCPD")
            break
        d.row(_stable_from(d, sizes, list(sizes)), statuses, d.rows[-1][2] or "SD", d.rows[-1][3] or "iSD")
        i += 1
    confirmation = frozenset({k}) if after_iupd else frozenset()
    return _course(
        d,
        trajectory,
        dr_timepoint=k,
        dr_trigger=DR_TRIGGER_BY_TRAJECTORY[trajectory],
        confirmation_after=confirmation,
    )


SCRIPTS: Mapping[Trajectory, ScriptFn] = {
    Trajectory.CR: _script_cr,
    Trajectory.PR: _script_pr,
    Trajectory.SD: _script_sd,
    Trajectory.PD: _script_pd,
    Trajectory.HPD: _script_hpd,
    Trajectory.PSPD: _script_pspd,
    Trajectory.DELAYED_RESPONSE: _script_delayed,
    Trajectory.DR_TARGET: lambda d, tt, o, n: _script_dr(d, tt, o, n, Trajectory.DR_TARGET),
    Trajectory.DR_NEW_LESION: lambda d, tt, o, n: _script_dr(d, tt, o, n, Trajectory.DR_NEW_LESION),
    Trajectory.DR_NON_TARGET: lambda d, tt, o, n: _script_dr(d, tt, o, n, Trajectory.DR_NON_TARGET),
}


def _course(d: _Draft, trajectory: Trajectory, **flags: object) -> Course:
    first_index = -1 if trajectory is Trajectory.HPD else 0
    tps = tuple(
        TimepointPlan(first_index + i, sizes, statuses, recist, irecist)
        for i, (sizes, statuses, recist, irecist) in enumerate(d.rows)
    )
    return Course(trajectory, tuple(d.lesions), tps, **flags)  # type: ignore[arg-type]


def required_timepoints(trajectory: Trajectory, options: TrajectoryOptions) -> int:
    """Follow-up timepoints the pattern needs before anything else may happen (death, censoring)."""
    if trajectory in DR_TRAJECTORIES:
        return options.dr_timepoint or 1
    return {
        Trajectory.CR: 2,  # CR confirmed >= 28 days later
        Trajectory.PR: 2,
        Trajectory.SD: 1,
        Trajectory.PD: 2 if options.first_evaluation == "PR" else 1,
        Trajectory.HPD: 1,
        Trajectory.PSPD: 3,  # SD, iUPD, iSD
        Trajectory.DELAYED_RESPONSE: 4,  # SD, SD, PR, PR
    }[trajectory]


def has_free_progression(trajectory: Trajectory) -> bool:
    """Trajectories whose (late) progression time comes from the survival model."""
    return trajectory not in (Trajectory.CR, Trajectory.PD, Trajectory.HPD)


def plan_course(
    trajectory: Trajectory,
    options: TrajectoryOptions,
    rng: random.Random,
    *,
    tumour_type: str,
    n_timepoints: int,
) -> Course:
    """Draw a course with `n_timepoints` follow-ups that passes `verify_course` (redrawn if not)."""
    if n_timepoints < required_timepoints(trajectory, options):
        raise CourseError(f"{trajectory} needs {required_timepoints(trajectory, options)} follow-ups")
    last_error = ""
    for _ in range(200):
        draft = _Draft(rng)
        course = SCRIPTS[trajectory](draft, tumour_type, options, n_timepoints)
        problem = verify_course(course)
        if problem is None:
            return course
        last_error = problem
    raise CourseError(f"{trajectory}: no course within margins ({last_error})")


# --- the guard ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Thresholds:
    pr_pct: int  # sum <= pr_pct % of baseline -> PR
    pd_pct: int  # sum >= pd_pct % of nadir ...
    pd_mm10: int  # ... and >= this many tenths more -> PD
    shrink_pct: int
    grow_pct: int
    grow_mm10: int
    cr_node_mm10: int


STRICT = _Thresholds(62, 135, 100, 62, 135, 80, 80)
LOOSE = _Thresholds(78, 110, 20, 78, 110, 20, 119)


def _target_response(course: Course, tp: TimepointPlan, nadir: int, th: _Thresholds) -> str:
    targets = [lesion for lesion in course.lesions if lesion.role == TARGET]
    if all((tp.sizes[t.key] <= th.cr_node_mm10) if t.is_node else tp.sizes[t.key] == 0 for t in targets):
        return "CR"
    total = sum(tp.effective(t.key) for t in targets)
    base = sum(course.baseline.sizes[t.key] for t in targets)
    if 100 * total >= th.pd_pct * nadir and total - nadir >= th.pd_mm10:
        return "PD"
    if 100 * total <= th.pr_pct * base:
        return "PR"
    return "SD"


def _overall(target: str, tp: TimepointPlan, course: Course) -> str:
    nt_keys = [lesion.key for lesion in course.lesions if lesion.role == NON_TARGET]
    new_present = any(lesion.first_seen >= 1 and lesion.first_seen <= tp.index for lesion in course.lesions)
    nt_pd = any(tp.statuses.get(k) in (UNEQUIVOCAL, INCREASED) for k in nt_keys)
    if target == "PD" or nt_pd or new_present:
        return "PD"
    if target == "CR":
        return "CR" if all(tp.statuses.get(k) == ABSENT for k in nt_keys) else "PR"
    return target


def dr_triggers(
    course: Course, position: int, th: _Thresholds = STRICT
) -> tuple[frozenset[str], set[str], set[str]]:
    """Bernard-Tessier triggers at follow-up `position` (index into `course.follow_ups`).

    Returns (triggers, shrinking lesion keys, growing/new/progressing lesion keys).
    """
    follow = course.follow_ups
    tp = follow[position]
    history = [course.baseline, *follow[:position]]
    targets = [lesion for lesion in course.lesions if lesion.role == TARGET]
    shrinking = {t.key for t in targets if 100 * tp.effective(t.key) <= th.shrink_pct * t.size0}
    growing: set[str] = set()
    for t in targets:
        nadir = min(h.effective(t.key) for h in history)
        now = tp.effective(t.key)
        if 100 * now >= th.grow_pct * nadir and now - nadir >= th.grow_mm10:
            growing.add(t.key)
    new = {lesion.key for lesion in course.lesions if 1 <= lesion.first_seen <= tp.index}
    nt_up = {
        lesion.key
        for lesion in course.lesions
        if lesion.role == NON_TARGET and tp.statuses.get(lesion.key) in (UNEQUIVOCAL, INCREASED)
    }
    triggers: set[str] = set()
    evidence: set[str] = set()
    if shrinking:
        if growing - shrinking:
            triggers.add("target-lesion")
            evidence |= growing
        if new:
            triggers.add("new-lesion")
            evidence |= new
        if nt_up:
            triggers.add("non-target-lesion")
            evidence |= nt_up
    return frozenset(triggers), shrinking if triggers else set(), evidence


def strict_recist(course: Course) -> list[str]:
    """RECIST 1.1 Table 1 per follow-up timepoint (nadir = smallest earlier sum, baseline included)."""
    targets = [lesion for lesion in course.lesions if lesion.role == TARGET]
    sums = [sum(course.baseline.effective(t.key) for t in targets)]
    out = []
    for tp in course.follow_ups:
        target = _target_response(course, tp, min(sums), STRICT)
        out.append(_overall(target, tp, course))
        sums.append(sum(tp.effective(t.key) for t in targets))
    return out


def verify_course(course: Course) -> str | None:
    """None when the course shows exactly its intended pattern with clear margins, else the problem."""
    targets = [lesion for lesion in course.lesions if lesion.role == TARGET]
    if not 2 <= len(targets) <= 5:
        return "2-5 target lesions"
    per_organ: dict[str, int] = {}
    for t in targets:
        per_organ[t.organ] = per_organ.get(t.organ, 0) + 1
        if (t.is_node and t.size0 < 150) or (not t.is_node and t.size0 < 100):
            return "target not measurable at baseline"
    if max(per_organ.values()) > 2:
        return "more than 2 targets in one organ"
    sums = [sum(course.baseline.effective(t.key) for t in targets)]
    first_dr: tuple[int, frozenset[str]] | None = None
    for position, tp in enumerate(course.follow_ups):
        strict = _target_response(course, tp, min(sums), STRICT)
        loose = _target_response(course, tp, min(sums), LOOSE)
        if strict != loose:
            return f"TP{tp.index}: target response near a threshold ({strict}/{loose})"
        if _overall(strict, tp, course) != tp.recist:
            return f"TP{tp.index}: overall {_overall(strict, tp, course)} but intended {tp.recist}"
        sums.append(sum(tp.effective(t.key) for t in targets))
        trig_strict = dr_triggers(course, position, STRICT)[0]
        trig_loose = dr_triggers(course, position, LOOSE)[0]
        if trig_strict != trig_loose:
            return f"TP{tp.index}: DR trigger near a threshold"
        if trig_strict and first_dr is None:
            first_dr = (tp.index, trig_strict)
    if course.dr_timepoint is None:
        if first_dr is not None:
            return f"unintended DR at TP{first_dr[0]}"
    elif first_dr is None or first_dr[0] != course.dr_timepoint or first_dr[1] != {course.dr_trigger}:
        return f"DR expected at TP{course.dr_timepoint} by {course.dr_trigger}, found {first_dr}"
    return _verify_irecist_steps(course)


def _verify_irecist_steps(course: Course) -> str | None:
    """iRECIST: an iUPD that stays iUPD shows no change (target and new-lesion-target sums within
    +-2 mm of the iUPD timepoint, no further new lesion: FAQ scenario F, not B); an iCPD shows a clear
    further step."""
    follow = course.follow_ups
    targets = [lesion.key for lesion in course.lesions if lesion.role == TARGET]
    anchor: TimepointPlan | None = None
    for tp in follow:
        if tp.irecist == "iUPD":
            if anchor is None:
                anchor = tp
                continue
            grow = sum(tp.effective(k) for k in targets) - sum(anchor.effective(k) for k in targets)
            nlt = [
                lesion.key
                for lesion in course.lesions
                if lesion.role == NEW_TARGET and lesion.key in anchor.sizes
            ]
            nlt_change = sum(tp.effective(k) for k in nlt) - sum(anchor.effective(k) for k in nlt)
            new_now = {lesion.key for lesion in course.lesions if 1 <= lesion.first_seen <= tp.index}
            new_then = {lesion.key for lesion in course.lesions if 1 <= lesion.first_seen <= anchor.index}
            if abs(grow) >= 20 or abs(nlt_change) >= 20 or new_now != new_then:
                return f"TP{tp.index}: iUPD should have been unchanged"
        elif tp.irecist == "iCPD":
            if anchor is None:
                return f"TP{tp.index}: iCPD without iUPD"
            grow = sum(tp.effective(k) for k in targets) - sum(anchor.effective(k) for k in targets)
            more_new = any(lesion.first_seen == tp.index for lesion in course.lesions)
            nt_more = any(s == INCREASED for s in tp.statuses.values())
            if grow < 80 and not more_new and not nt_more:
                return f"TP{tp.index}: iCPD without a clear further step"
            return None
        elif tp.irecist in ("iSD", "iPR", "iCR"):
            anchor = None
    return None
