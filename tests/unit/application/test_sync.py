"""SyncPatients against fake ports: one patient's failure never aborts the others (contract section 1)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from service.application.assess import AssessPatients, SyncPatients
from service.application.errors import UpstreamUnavailable
from service.application.ports import PatientInput, PatientRef, WriteSummary
from service.domain.model import Lesion, LesionMeasurement, LesionRole, PatientTimeline, Scan
from service.domain.parameters import AssessmentParameters
from service.domain.results import DataIssue, PatientAssessment, Response
from tests.fakes import FakeAssessmentStore, FakeAssessmentWriter, FakeMeasurementSource

START = date(2024, 1, 15)


def partial_responder(pid: str) -> PatientInput:
    """One 40 mm liver target shrinking to 20 mm (-50 %, RECIST 1.1 PR) at week 8 and week 16."""
    lesion = Lesion("L1", organ="10200004", role=LesionRole.TARGET)
    scans = tuple(
        Scan(START + timedelta(days=d), (LesionMeasurement("L1", long_axis_mm=Decimal(mm)),))
        for d, mm in ((-7, 40), (56, 20), (112, 20))
    )
    return PatientInput(PatientRef(pid), PatientTimeline(pid, START, (lesion,), scans))


def no_ici(pid: str) -> PatientInput:
    issue = DataIssue("error", "no-ici-start", "No PD-1/PD-L1 inhibitor administration", f"Patient/{pid}")
    return PatientInput(PatientRef(pid), None, (issue,))


def make_sync(
    source: FakeMeasurementSource,
) -> tuple[SyncPatients, FakeAssessmentWriter, FakeAssessmentStore]:
    writer, store = FakeAssessmentWriter(), FakeAssessmentStore()
    assessor = AssessPatients(AssessmentParameters(), key_salt="test")
    return SyncPatients(source, writer, store, assessor, concurrency=2, key_salt="test"), writer, store


async def test_unusable_and_rejected_patients_are_reported_and_the_others_assessed() -> None:
    source = FakeMeasurementSource(
        [partial_responder("p1"), no_ici("p2"), partial_responder("p3")], rejected=["p4"]
    )
    sync, writer, store = make_sync(source)

    report = await sync(as_of=date(2024, 12, 31))

    assert report.patients_seen == 4
    assert report.patients_assessed == 2
    assert report.patients_failed == 2
    assert sorted(writer.written) == ["p1", "p3"]
    assert {i.code for i in report.issues} >= {"no-ici-start", "patient-unreadable"}
    assert [a.patient_id for a in store.runs[report.run_id]] in (["p1", "p3"], ["p3", "p1"])
    # RECIST 1.1 section 4.3.1: -50 % from baseline is a partial response
    assert writer.written["p1"].timepoints[0].overall is Response.PR


async def test_only_listed_patients_are_synchronised() -> None:
    source = FakeMeasurementSource([partial_responder("p1"), partial_responder("p2")])
    sync, writer, _ = make_sync(source)

    report = await sync(as_of=date(2024, 12, 31), only=[PatientRef("p2")])

    assert report.patients_seen == 1
    assert list(writer.written) == ["p2"]


class _UnavailableSource(FakeMeasurementSource):
    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        raise UpstreamUnavailable("FHIR server unreachable")


async def test_a_run_ended_by_an_unavailable_server_is_closed_as_aborted() -> None:
    # A run never stays `running` when it ends early (docs/fhir/write-back.md, "Runs end").
    sync, _, store = make_sync(_UnavailableSource([partial_responder("p1")]))
    with pytest.raises(BaseExceptionGroup):
        await sync(as_of=date(2024, 12, 31))
    (counts,) = store.finished.values()
    assert counts["aborted"] == 1


class _FailingWriter(FakeAssessmentWriter):
    async def write(
        self, assessment: PatientAssessment, patient: PatientInput, *, run_id: str | None = None
    ) -> WriteSummary:
        if patient.ref.patient_id == "p2":
            permission = "HTTP 403 on create Observation; likely missing scope system/Observation.c"
            issue = DataIssue("error", "write-forbidden", permission, "Patient/p2")
            return WriteSummary(issues=(issue,), failure=permission, permission=permission)
        return await super().write(assessment, patient, run_id=run_id)


async def test_a_failed_write_fails_the_patient_and_is_not_recorded() -> None:
    source = FakeMeasurementSource(
        [partial_responder("p1"), partial_responder("p2"), partial_responder("p3")]
    )
    writer, store = _FailingWriter(), FakeAssessmentStore()
    assessor = AssessPatients(AssessmentParameters(), key_salt="test")
    sync = SyncPatients(source, writer, store, assessor, concurrency=2, key_salt="test")
    report = await sync(as_of=date(2024, 12, 31))
    assert (report.patients_assessed, report.patients_failed, report.writes_failed) == (2, 1, 1)
    assert len(report.permissions) == 1
    assert sorted(a.patient_id for a in store.runs[report.run_id]) == ["p1", "p3"]
    assert store.finished[report.run_id]["aborted"] == 0


class _StoreWithAKilledRun(FakeAssessmentStore):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float] = []

    async def close_stale_runs(self, older_than_s: float) -> int:
        self.asked.append(older_than_s)
        return 1


async def test_a_sync_first_closes_runs_left_running_too_long() -> None:
    store = _StoreWithAKilledRun()
    assessor = AssessPatients(AssessmentParameters(), key_salt="test")
    source = FakeMeasurementSource([partial_responder("p1")])
    sync = SyncPatients(
        source, FakeAssessmentWriter(), store, assessor, concurrency=1, key_salt="test", stale_run_s=3600.0
    )
    report = await sync(as_of=date(2024, 12, 31))
    assert store.asked == [3600.0]
    assert report.stale_runs_closed == 1
