"""The RECIST worksheet of one patient: what the patient view (SMART app) shows.

`worksheet_of(timeline, assessment)` lays the engine's result out as a radiologist's RECIST 1.1
worksheet (Eisenhauer et al., Eur J Cancer 2009;45:228-47, appendix I): a baseline row and one
row per follow-up scan; one column per lesion with its role and the axis RECIST measures (short
axis for lymph nodes, section 3.1.1, otherwise the longest diameter); the sum of diameters, %
change from baseline (response is judged against it) and from the nadir (progression is), the
RECIST 1.1 and iRECIST (Seymour et al., Lancet Oncol 2017;18:e143-52) response per scan, the new
lesions of each scan and, when a scan is NE, the rules that made it so.

Nothing here decides a response: every number is the engine's (`PatientAssessment`) or the
measurement read from the FHIR server (baseline row). `ReadWorksheet` reads one patient from the
FHIR server and runs the engine, so the page always shows the current data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from service.application.assess import AssessPatients
from service.application.clock import today
from service.application.errors import UpstreamNotFound
from service.application.ports import MeasurementSource, PatientRef
from service.domain.lesions import PD_ABSOLUTE_MM, PD_RELATIVE_PCT, PR_RELATIVE_PCT
from service.domain.model import Lesion, LesionRole, PatientTimeline, Scan
from service.domain.results import AtypicalFinding, AtypicalKind, PatientAssessment, RuleTrace

NEW_ROLES = (LesionRole.NEW_TARGET, LesionRole.NEW_NON_TARGET)


@dataclass(frozen=True, slots=True)
class WorksheetLesion:
    lesion_id: str
    organ: str
    is_lymph_node: bool
    role: str | None
    axis: str  # "short" (lymph node, RECIST 1.1 section 3.1.1) or "long"
    dr_role: str | None  # "shrinking" / "growing" when the lesion makes the patient a DR


@dataclass(frozen=True, slots=True)
class WorksheetCell:
    lesion_id: str
    diameter_mm: Decimal | None
    status: str | None  # lesion response of the engine; None on the baseline row
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    non_target_state: str | None


@dataclass(frozen=True, slots=True)
class TraceOut:
    rule: str
    facts: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WorksheetRow:
    index: int  # 0 = baseline
    scan_date: date
    cells: tuple[WorksheetCell, ...]
    sum_mm: Decimal | None
    nadir_sum_mm: Decimal | None
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    pr_threshold_mm: Decimal | None  # a sum at or below it is a >= 30 % decrease from baseline
    pd_threshold_mm: Decimal | None  # a sum at or above it is >= 20 % and >= 5 mm over the nadir
    recist: str | None  # RECIST 1.1 as reported (continued PR), None at baseline
    recist_strict: str | None  # the per-timepoint value of RECIST 1.1 tables 1/2
    irecist: str | None
    new_lesions: tuple[str, ...]
    not_evaluable_because: tuple[TraceOut, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FindingOut:
    kind: str
    definition: str
    definition_version: str
    timepoint_index: int
    timepoint_date: date
    in_words: str
    growing_lesions: tuple[str, ...]
    shrinking_lesions: tuple[str, ...]
    trace: TraceOut
    metrics: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True, slots=True)
class TreatmentEvent:
    on: date
    kind: str  # "ici-start", "ici-dose", or the local treatment's kind (e.g. "radiotherapy")
    label: str


@dataclass(frozen=True, slots=True)
class Worksheet:
    patient_id: str
    response_group: str
    treatment_start: date
    ici_drug: str | None
    lesions: tuple[WorksheetLesion, ...]
    rows: tuple[WorksheetRow, ...]
    findings: tuple[FindingOut, ...]
    treatments: tuple[TreatmentEvent, ...]
    best_recist: str | None
    best_irecist: str | None


def _trace(trace: RuleTrace) -> TraceOut:
    return TraceOut(trace.rule, trace.facts)


def _dr_roles(findings: tuple[AtypicalFinding, ...]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for finding in findings:
        if finding.kind is AtypicalKind.DR:
            roles.update(dict.fromkeys(finding.shrinking_lesions, "shrinking"))
            roles.update(dict.fromkeys(finding.growing_lesions, "growing"))
    return roles


def _lesion(lesion: Lesion, dr_roles: dict[str, str]) -> WorksheetLesion:
    return WorksheetLesion(
        lesion_id=lesion.lesion_id,
        organ=lesion.organ,
        is_lymph_node=lesion.is_lymph_node,
        role=lesion.role.value if lesion.role is not None else None,
        axis="short" if lesion.is_lymph_node else "long",
        dr_role=dr_roles.get(lesion.lesion_id),
    )


def _seen_in(scan: Scan) -> set[str]:
    return {m.lesion_id for m in scan.measurements} | {n.lesion_id for n in scan.non_target}


def _new_lesions_by_scan(timeline: PatientTimeline) -> dict[int, tuple[str, ...]]:
    """A new lesion is marked on the first scan that shows it."""
    new_ids = {les.lesion_id for les in timeline.lesions if les.role in NEW_ROLES}
    first: dict[int, list[str]] = {}
    shown: set[str] = set()
    for index, scan in enumerate(timeline.scans):
        for lesion_id in sorted((_seen_in(scan) & new_ids) - shown):
            first.setdefault(index, []).append(lesion_id)
            shown.add(lesion_id)
    return {index: tuple(ids) for index, ids in first.items()}


def _cells(
    scan: Scan, lesions: tuple[Lesion, ...], assessment: PatientAssessment, index: int
) -> tuple[WorksheetCell, ...]:
    measured = {m.lesion_id: m for m in scan.measurements}
    states = {n.lesion_id: n.state.value for n in scan.non_target}
    results = {r.lesion_id: r for r in assessment.lesions if r.timepoint_index == index}
    cells = []
    for lesion in lesions:
        result = results.get(lesion.lesion_id)
        measurement = measured.get(lesion.lesion_id)
        diameter = None
        if result is not None:
            diameter = result.diameter_mm
        elif measurement is not None:
            diameter = measurement.short_axis_mm if lesion.is_lymph_node else measurement.long_axis_mm
        cells.append(
            WorksheetCell(
                lesion_id=lesion.lesion_id,
                diameter_mm=diameter,
                status=result.status.value if result is not None else None,
                change_from_baseline_pct=result.change_from_baseline_pct if result is not None else None,
                change_from_nadir_pct=result.change_from_nadir_pct if result is not None else None,
                non_target_state=states.get(lesion.lesion_id),
            )
        )
    return tuple(cells)


def _is_ne_rule(rule: str) -> bool:
    """`recist1.1/non-target/ne`, `recist1.1/target/ne-not-all-measured`, `irecist/ne-after-iupd`..."""
    last = rule.rsplit("/", 1)[-1]
    return last == "ne" or last.startswith("ne-")


def pr_threshold_mm(baseline_sum_mm: Decimal | None) -> Decimal | None:
    """The sum of diameters at which the target lesions reach PR (RECIST 1.1 section 4.3.1)."""
    if baseline_sum_mm is None:
        return None
    return baseline_sum_mm * (100 - PR_RELATIVE_PCT) / 100


def pd_threshold_mm(nadir_sum_mm: Decimal | None) -> Decimal | None:
    """The sum at which the target lesions reach PD: +20 % over the nadir and at least +5 mm."""
    if nadir_sum_mm is None:
        return None
    return max(nadir_sum_mm * (100 + PD_RELATIVE_PCT) / 100, nadir_sum_mm + PD_ABSOLUTE_MM)


def _rows(timeline: PatientTimeline, assessment: PatientAssessment) -> tuple[WorksheetRow, ...]:
    recist = {t.index: t for t in assessment.timepoints}
    immune = {t.index: t for t in assessment.immune_timepoints}
    new_by_scan = _new_lesions_by_scan(timeline)
    baseline_sum = assessment.timepoints[0].baseline_sum_mm if assessment.timepoints else None
    rows = []
    for index, scan in enumerate(timeline.scans):
        point = recist.get(index)
        ipoint = immune.get(index)
        traces = (point.traces if point else ()) + (ipoint.traces if ipoint else ())
        not_evaluable = (point is not None and point.overall.value == "NE") or (
            ipoint is not None and ipoint.overall.value == "NE"
        )
        rows.append(
            WorksheetRow(
                index=index,
                scan_date=scan.study_date,
                cells=_cells(scan, timeline.lesions, assessment, index),
                sum_mm=point.sum_mm if point else (baseline_sum if index == 0 else None),
                nadir_sum_mm=point.nadir_sum_mm if point else None,
                change_from_baseline_pct=point.change_from_baseline_pct if point else None,
                change_from_nadir_pct=point.change_from_nadir_pct if point else None,
                pr_threshold_mm=pr_threshold_mm(point.baseline_sum_mm) if point else None,
                pd_threshold_mm=pd_threshold_mm(point.nadir_sum_mm) if point else None,
                recist=point.reported.value if point else None,
                recist_strict=point.overall.value if point else None,
                irecist=ipoint.overall.value if ipoint else None,
                new_lesions=new_by_scan.get(index, ()),
                not_evaluable_because=tuple(_trace(t) for t in traces if _is_ne_rule(t.rule))
                if not_evaluable
                else (),
                rules=tuple(t.rule for t in traces),
            )
        )
    return tuple(rows)


def _names(lesion_ids: tuple[str, ...]) -> str:
    return ", ".join(lesion_ids) if lesion_ids else "none"


def in_words(finding: AtypicalFinding) -> str:
    """One plain sentence per finding, naming the lesions (the page adds their sites)."""
    at = f"scan {finding.timepoint_index} ({finding.timepoint_date.isoformat()})"
    if finding.kind is AtypicalKind.DR:
        trigger = finding.trigger.value.replace("-", " ") if finding.trigger else "lesion"
        return (
            f"Dissociated response at {at}: some lesions shrink ({_names(finding.shrinking_lesions)}) "
            f"while others grow or appear ({_names(finding.growing_lesions)}); triggered by a {trigger}."
        )
    if finding.kind is AtypicalKind.PSPD:
        facts = dict(finding.trace.facts)
        resolved = facts.get("resolved_at_index")
        then = (
            f" and was not confirmed: scan {resolved} is {facts.get('resolved_as', 'no longer iUPD')}"
            if resolved
            else ""
        )
        return f"Pseudoprogression: unconfirmed progression (iUPD) at {at}{then}."
    if finding.kind is AtypicalKind.HPD:
        rates = ", ".join(f"{name} {value}" for name, value in finding.metrics)
        return f"Hyperprogression at {at}: tumour growth accelerated on treatment ({rates})."
    return f"Delayed response at {at}: response after an earlier progression."


def _findings(assessment: PatientAssessment) -> tuple[FindingOut, ...]:
    return tuple(
        FindingOut(
            kind=f.kind.value,
            definition=f.definition,
            definition_version=f.definition_version,
            timepoint_index=f.timepoint_index,
            timepoint_date=f.timepoint_date,
            in_words=in_words(f),
            growing_lesions=f.growing_lesions,
            shrinking_lesions=f.shrinking_lesions,
            trace=_trace(f.trace),
            metrics=f.metrics,
        )
        for f in assessment.atypical
    )


def _treatments(timeline: PatientTimeline) -> tuple[TreatmentEvent, ...]:
    drug = timeline.profile.ici_drug or "immune checkpoint inhibitor"
    events = [TreatmentEvent(timeline.treatment_start, "ici-start", f"{drug} started")]
    events += [
        TreatmentEvent(day, "ici-dose", f"{drug} dose")
        for day in timeline.ici_administration_dates
        if day != timeline.treatment_start
    ]
    events += [
        TreatmentEvent(t.performed_on, t.kind, t.kind.replace("-", " ")) for t in timeline.local_treatments
    ]
    return tuple(sorted(events, key=lambda e: e.on))


def worksheet_of(timeline: PatientTimeline, assessment: PatientAssessment) -> Worksheet:
    dr_roles = _dr_roles(assessment.atypical)
    best = assessment.best_response
    best_immune = assessment.immune_best_response
    return Worksheet(
        patient_id=assessment.patient_id,
        response_group=assessment.response_group.value,
        treatment_start=timeline.treatment_start,
        ici_drug=timeline.profile.ici_drug,
        lesions=tuple(_lesion(lesion, dr_roles) for lesion in timeline.lesions),
        rows=_rows(timeline, assessment),
        findings=_findings(assessment),
        treatments=_treatments(timeline),
        best_recist=best.response.value if best else None,
        best_irecist=best_immune.response.value if best_immune else None,
    )


class PatientNotAssessable(UpstreamNotFound):
    problem_type = "/problems/patient-not-assessable"
    title = "Patient cannot be assessed"


class ReadWorksheet:
    """Read one patient from the FHIR server, run the engine, lay the result out as a worksheet."""

    def __init__(self, source: MeasurementSource, assessor: AssessPatients) -> None:
        self._source = source
        self._assessor = assessor

    async def __call__(self, patient_id: str, *, as_of: date | None = None) -> Worksheet:
        patient = await self._source.timeline_for(PatientRef(patient_id))
        outcome = self._assessor.one(patient, as_of=as_of or today())
        if patient.timeline is None or outcome.assessment is None:
            reasons = "; ".join(issue.message for issue in outcome.issues) or "no tumour measurements"
            raise PatientNotAssessable(f"Patient/{patient_id} cannot be assessed: {reasons}")
        return worksheet_of(patient.timeline, outcome.assessment)
