"""Summaries count a patient as assessed only when its lesion data was used, and say why not.

A patient whose every measurement was lost (its lesions could not be found) is assessed NE by the
rules, but an oncologist reading "assessed 1 patient(s), 0 not assessed" would believe the
response was judged on the scans; the summaries must instead count it as not assessed with the
cause (docs/fhir/data-integrity.md).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from service.application.assess import AssessPatients, SyncPatients, not_assessed_reasons
from service.application.ports import PatientInput, PatientRef
from service.domain.model import Lesion, LesionMeasurement, LesionRole, PatientTimeline, Scan
from service.domain.parameters import AssessmentParameters
from service.domain.results import DataIssue
from tests.fakes import FakeAssessmentStore, FakeAssessmentWriter, FakeMeasurementSource

START = date(2024, 1, 15)
AS_OF = date(2024, 12, 31)


def responder(pid: str) -> PatientInput:
    """A 40 mm liver target at baseline, 20 mm at week 8: lesion data used."""
    lesion = Lesion("L1", organ="10200004", role=LesionRole.TARGET)
    scans = tuple(
        Scan(START + timedelta(days=d), (LesionMeasurement("L1", long_axis_mm=Decimal(mm)),))
        for d, mm in ((-7, 40), (56, 20))
    )
    return PatientInput(PatientRef(pid), PatientTimeline(pid, START, (lesion,), scans))


def measurements_lost(pid: str) -> PatientInput:
    """Scans read, every measurement lost on the way in (its BodyStructure not found)."""
    scans = (Scan(START - timedelta(days=7), ()), Scan(START + timedelta(days=56), ()))
    lost = DataIssue("error", "lesion-not-found", "focus BodyStructure is not found", "Observation/m1")
    return PatientInput(PatientRef(pid), PatientTimeline(pid, START, (), scans), (lost,))


def no_ici(pid: str) -> PatientInput:
    issue = DataIssue("error", "no-ici-start", "no PD-1/PD-L1 inhibitor", f"Patient/{pid}")
    return PatientInput(PatientRef(pid), None, (issue,))


def test_a_patient_whose_measurements_were_lost_is_not_counted_as_assessed() -> None:
    assessor = AssessPatients(AssessmentParameters(), key_salt="test")
    outcomes = assessor([responder("p1"), measurements_lost("p2"), no_ici("p3"), no_ici("p4")], as_of=AS_OF)
    assert [o.lesion_data_used for o in outcomes] == [True, False, False, False]
    assert outcomes[1].assessment is not None  # still assessed NE and written: only the count differs
    assert not_assessed_reasons(outcomes) == {"lesion-not-found": 1, "no-ici-start": 2}


async def test_the_sync_report_counts_and_explains_the_same_way() -> None:
    source = FakeMeasurementSource([responder("p1"), measurements_lost("p2"), no_ici("p3")])
    writer, store = FakeAssessmentWriter(), FakeAssessmentStore()
    assessor = AssessPatients(AssessmentParameters(), key_salt="test")
    sync = SyncPatients(source, writer, store, assessor, concurrency=2, key_salt="test")
    report = await sync(as_of=AS_OF)
    assert (report.patients_assessed, report.patients_failed) == (1, 2)
    assert report.not_assessed == {"lesion-not-found": 1, "no-ici-start": 1}
    assert sorted(writer.written) == ["p1", "p2"]  # the NE result of p2 is still written back
