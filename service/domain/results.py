"""Outputs of the response engine.

Every result carries `RuleTrace`s naming the rule that produced it, so that the FHIR output
and the API can say why. Enum values are the codes of the contract's code systems
(`docs/fhir-contract.md` section 2), which are also the standard abbreviations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Protocol, TypeVar, cast

from service.domain.frozen import fast_constructor
from service.domain.model import ClinicalProfile


class Response(StrEnum):
    """RECIST 1.1 response (`OR/CodeSystem/recist-response`)."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    NON_CR_NON_PD = "NonCR-NonPD"
    PD = "PD"
    NE = "NE"


class ImmuneResponse(StrEnum):
    """iRECIST response (`OR/CodeSystem/irecist-response`)."""

    ICR = "iCR"
    IPR = "iPR"
    ISD = "iSD"
    INON_CR_NON_UPD = "iNonCR-NonUPD"
    IUPD = "iUPD"
    ICPD = "iCPD"
    NE = "NE"


class LesionStatus(StrEnum):
    """Lesion-level response (`OR/CodeSystem/lesion-response`)."""

    RESPONDING = "responding"
    PROGRESSING = "progressing"
    STABLE = "stable"
    DISAPPEARED = "disappeared"
    NEW = "new"
    NOT_EVALUABLE = "not-evaluable"


class AtypicalKind(StrEnum):
    """`OR/CodeSystem/atypical-response`."""

    DR = "DR"
    PSPD = "PsPD"
    HPD = "HPD"
    DER = "DeR"


class DrTrigger(StrEnum):
    TARGET_LESION = "target-lesion"
    NON_TARGET_LESION = "non-target-lesion"
    NEW_LESION = "new-lesion"


class ResponseGroup(StrEnum):
    """Patient-level group of the seed study (`OR/CodeSystem/response-group`)."""

    DR = "DR"
    PSPD = "PsPD"
    CR_PR = "CR-PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


class Criterion(StrEnum):
    RECIST11 = "recist1.1"
    IRECIST = "irecist"


@dataclass(frozen=True, init=False)
class RuleTrace:
    """Which rule produced a result, and the facts it looked at.

    `rule` is a stable slash-separated id such as ``recist1.1/target/pd``; `facts` are
    ``(name, value)`` pairs rendered as strings so that traces compare and hash exactly.

    `RuleTrace.of(rule, **facts)` keeps the raw values and renders them with `str()` on the first
    read of `facts` (most traces are never read: the FHIR output uses `rule` only), so building a
    trace costs no formatting. The values must be immutable (Decimal, date, int, bool, str, enums,
    None): the rendering is then the same whenever it happens. Equality, hashing, `repr` and
    `dataclasses.fields` see exactly the two fields `rule` and `facts`, rendered.

    `lazy_trace(rule, facts_of, data)` is the same trace as `RuleTrace.of(rule, **dict(facts_of(data)))`,
    with `facts_of` run on the first read too: for the traces built once per lesion and timepoint,
    whose facts are already held in an immutable value (`data`) that need not be copied.
    """

    # Explicit slots: `facts` stays unset until first read (then `__getattr__` renders it once)
    # from `_facts_of(_raw)`: the keyword arguments' dict and `dict.items` (`of`), or what was given
    # to `lazy_trace`.
    __slots__ = ("_facts_of", "_raw", "facts", "rule")
    rule: str
    facts: tuple[tuple[str, str], ...]

    def __init__(self, rule: str, facts: tuple[tuple[str, str], ...] = ()) -> None:
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "facts", facts)

    # `RuleTrace.of(rule, **facts)`, the lazy constructor (see above). It is the builder class
    # `_TraceOf`, set below: calling it makes the trace directly, one call instead of two.
    of: ClassVar[_TraceFactory]

    def __getattr__(self, name: str) -> tuple[tuple[str, str], ...]:
        # Only reached when normal lookup fails: here, the unset `facts` slot of a lazy trace.
        if name != "facts":
            raise AttributeError(name)
        facts_of: Callable[[object], Iterable[tuple[str, object]]]
        facts_of = object.__getattribute__(self, "_facts_of")
        rendered = tuple((k, str(v)) for k, v in facts_of(object.__getattribute__(self, "_raw")))
        _set_slot(self, "facts", rendered)
        return rendered

    def __reduce__(self) -> tuple[type[RuleTrace], tuple[str, tuple[tuple[str, str], ...]]]:
        # copy/pickle through the constructor (the frozen __setattr__ refuses slot-by-slot state).
        return (RuleTrace, (self.rule, self.facts))


_set_slot = object.__setattr__


_Data = TypeVar("_Data")


class _TraceFactory(Protocol):
    def __call__(self, rule: str, /, **facts: object) -> RuleTrace: ...


# The builders of lazy RuleTraces use the twin-class technique of `frozen` (the same slots, plain
# stores, then relabelled as RuleTrace): a trace is made for almost every result of the engine.
class _TraceOf:
    """`RuleTrace.of(rule, **facts)`."""

    __slots__ = ("_facts_of", "_raw", "facts", "rule")

    def __init__(self, rule: str, /, **facts: object) -> None:
        self.rule = rule
        self._facts_of = _ITEMS
        self._raw = facts  # a fresh dict per call (keyword arguments), never shared
        self.__class__ = RuleTrace  # type: ignore[assignment]


_ITEMS = dict.items


RuleTrace.of = cast(_TraceFactory, _TraceOf)


class _LazyTrace:
    """`lazy_trace(rule, facts_of, data)`."""

    __slots__ = ("_facts_of", "_raw", "facts", "rule")

    def __init__(self, rule: str, facts_of: object, data: object, /) -> None:
        self.rule = rule
        self._facts_of = facts_of
        self._raw = data
        self.__class__ = RuleTrace  # type: ignore[assignment]


class _LazyTraceFactory(Protocol):
    def __call__(
        self, rule: str, facts_of: Callable[[_Data], Iterable[tuple[str, object]]], data: _Data, /
    ) -> RuleTrace: ...


# `lazy_trace(rule, facts_of, data)` == `RuleTrace.of(rule, **dict(facts_of(data)))` (see
# RuleTrace), without a call in between. `data` must be immutable, `facts_of` pure.
lazy_trace = cast(_LazyTraceFactory, _LazyTrace)


@dataclass(frozen=True, slots=True)
class DataIssue:
    """Something in the input that could not be used (reported as an OperationOutcome issue)."""

    severity: str  # "error" | "warning" | "information"
    code: str  # kebab-case slug, e.g. "no-baseline"
    message: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LesionResult:
    """Response of one lesion at one timepoint (contract LesionResponse)."""

    lesion_id: str
    timepoint_index: int
    timepoint_date: date
    status: LesionStatus
    diameter_mm: Decimal | None
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    is_target: bool
    trace: RuleTrace
    lesion_ref: str | None = None
    source_refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimepointResult:
    """RECIST 1.1 overall response at one follow-up timepoint (index 1 = first evaluation).

    `overall` is the strict per-timepoint value of Tables 1/2; `reported` applies the FAQ's
    "continued PR" reading (a PR stays PR until PD criteria are met). RECIST 1.1 has no response
    after progression: from the first PD on, `overall` and `reported` are PD and
    `post_progression` is True at every later timepoint (`target`/`non_target` keep what that scan
    showed; see `recist`, "After progression").
    """

    index: int
    timepoint_date: date
    target: Response | None
    non_target: Response | None
    new_lesion: bool
    overall: Response
    reported: Response
    sum_mm: Decimal | None
    baseline_sum_mm: Decimal | None
    nadir_sum_mm: Decimal | None
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    traces: tuple[RuleTrace, ...]
    source_refs: tuple[str, ...] = ()
    post_progression: bool = False  # a timepoint after the first PD (RECIST 1.1 section 4.4.1)


@dataclass(frozen=True, slots=True)
class ImmuneTimepointResult:
    """iRECIST overall response at one follow-up timepoint."""

    index: int
    timepoint_date: date
    overall: ImmuneResponse
    sum_mm: Decimal | None
    baseline_sum_mm: Decimal | None
    nadir_sum_mm: Decimal | None
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    new_lesion_target_sum_mm: Decimal | None
    new_lesion: bool
    traces: tuple[RuleTrace, ...]
    source_refs: tuple[str, ...] = ()
    # iRECIST categories at this timepoint (iRECIST Table 2 columns; see `irecist`): target iCR/iPR/
    # iSD/iUPD/iCPD/NE (None without target disease), non-target iCR/iNonCR-NonUPD/iUPD/iCPD/NE
    # (None without non-target disease).
    target: ImmuneResponse | None = None
    non_target: ImmuneResponse | None = None


@dataclass(frozen=True, slots=True)
class BestResponse:
    """Best overall response over the course (contract BestOverallResponse)."""

    criterion: Criterion
    response: Response | ImmuneResponse
    confirmation_required: bool
    period_start: date
    period_end: date
    response_date: date | None
    trace: RuleTrace


@dataclass(frozen=True, slots=True)
class AtypicalFinding:
    """A dissociated response, pseudoprogression, hyperprogression or delayed response."""

    kind: AtypicalKind
    definition: str  # e.g. "bernard-tessier", "irecist", "champiat"
    definition_version: str
    timepoint_index: int
    timepoint_date: date
    trigger: DrTrigger | None
    overall_at_detection: Response | None
    growing_lesions: tuple[str, ...]
    shrinking_lesions: tuple[str, ...]
    trace: RuleTrace
    metrics: tuple[tuple[str, Decimal], ...] = ()
    # Why the definition is met, in words with the compared numbers (HPD; see `atypical`).
    reason: str | None = None
    # The scans a finding compares, by role ("pre-baseline", "baseline", "first-evaluation"; HPD).
    reference_scans: tuple[tuple[str, date], ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Outcome endpoints in whole days from treatment start."""

    pfs_days: int | None
    pfs_event: bool | None
    ipfs_days: int | None
    ipfs_event: bool | None
    os_days: int | None
    os_event: bool | None
    dcb: bool | None
    nlr_pre: Decimal | None = None
    dnlr_pre: Decimal | None = None
    nlr_post: Decimal | None = None
    dnlr_post: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PatientAssessment:
    """Everything the engine derives for one patient."""

    patient_id: str
    treatment_start: date
    baseline_date: date | None
    timepoints: tuple[TimepointResult, ...]
    immune_timepoints: tuple[ImmuneTimepointResult, ...]
    lesions: tuple[LesionResult, ...]
    best_response: BestResponse | None
    best_response_confirmed: BestResponse | None
    immune_best_response: BestResponse | None
    atypical: tuple[AtypicalFinding, ...]
    response_group: ResponseGroup
    endpoints: Endpoints
    auto_selected_targets: tuple[str, ...]
    issues: tuple[DataIssue, ...]
    traces: tuple[RuleTrace, ...]
    # Research-portal fields (analytics only; not used by the response rules or the FHIR output).
    # `profile`: the patient's covariates as read (timeline.profile).
    profile: ClinicalProfile | None = None
    # Subgroups of the seed study (Guan 2024, "Subsequent treatment for patients with DR"): a local
    # treatment (radiotherapy, thermal ablation) on or after the date of the first DR finding / of the
    # first RECIST 1.1 PD timepoint, up to `as_of`. None when there is no such finding / PD timepoint.
    local_treatment_after_dr: bool | None = None
    local_treatment_after_pd: bool | None = None
    # Pre-treatment absolute lymphocytes (10^9/L) and LDH (U/L): the latest value in the 28 days before
    # treatment start (start day included), as for NLR in `endpoints`. For the baseline comparisons.
    lymphocytes_pre: Decimal | None = None
    ldh_pre: Decimal | None = None
    # Subgroup of the seed study (Guan 2024, "treatment beyond progression", Fig. 2g): an ICI
    # administration dated strictly AFTER the first RECIST 1.1 PD timepoint date (up to `as_of`). A
    # dose on the PD scan day itself is not "beyond" it [P]: the decision to continue needs the scan
    # read first. None when there is no RECIST 1.1 PD timepoint.
    treated_beyond_progression: bool | None = None

    @property
    def is_atypical(self) -> bool:
        return self.response_group in (ResponseGroup.DR, ResponseGroup.PSPD)


# Stand-ins for the constructors above, for the engine's hot paths (see `frozen`: same signature,
# same frozen instances, a fraction of the cost of a frozen dataclass's own __init__).
new_lesion_result = fast_constructor(LesionResult)
new_timepoint_result = fast_constructor(TimepointResult)
new_immune_timepoint_result = fast_constructor(ImmuneTimepointResult)
new_best_response = fast_constructor(BestResponse)
new_atypical_finding = fast_constructor(AtypicalFinding)
new_endpoints = fast_constructor(Endpoints)
new_patient_assessment = fast_constructor(PatientAssessment)
