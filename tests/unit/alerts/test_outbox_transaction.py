"""Transactional outbox: alerts are recorded in the same transaction as the assessments."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from service.adapters.persistence.outbox import SqlAlertOutbox
from service.adapters.persistence.store import SqlAssessmentStore
from service.application.alerts import plan_alerts
from service.application.assess import AssessPatients, SyncPatients
from service.application.ports import AlertRecord, PatientInput, PatientRef
from service.domain.parameters import AssessmentParameters
from tests.fakes import FakeAssessmentStore, FakeAssessmentWriter, FakeMeasurementSource
from tests.unit.alerts.conftest import SALT
from tests.unit.alerts.test_plan import dissociated_twice

AS_OF = date(2030, 1, 1)


def dr_patient(pid: str) -> PatientInput:
    b = dissociated_twice()
    b.patient_id = pid
    return PatientInput(PatientRef(pid), b.build())


def sync(store: SqlAssessmentStore, *patients: PatientInput) -> SyncPatients:
    assessor = AssessPatients(AssessmentParameters(), key_salt=SALT)
    return SyncPatients(
        FakeMeasurementSource(list(patients)),
        FakeAssessmentWriter(),
        store,
        assessor,
        key_salt=SALT,
        plan_alerts=plan_alerts,
    )


async def test_three_syncs_record_one_alert_per_patient_and_finding(engine: Engine) -> None:
    store = SqlAssessmentStore(engine, patient_key_salt=SALT)
    run = sync(store, dr_patient("p1"), dr_patient("p2"))
    reports = [await run(as_of=AS_OF) for _ in range(3)]
    assert [r.alerts_recorded for r in reports] == [2, 0, 0]
    alerts, total = await SqlAlertOutbox(engine, patient_key_salt=SALT).list_alerts()
    assert total == 2
    assert {a.dedup_key for a in alerts} == {"p1/DR/2024-02-26", "p2/DR/2024-02-26"}


async def test_a_failing_alert_insert_rolls_back_the_assessments_too(engine: Engine) -> None:
    store = SqlAssessmentStore(engine, patient_key_salt=SALT)
    assessment = (
        AssessPatients(AssessmentParameters(), key_salt=SALT).one(dr_patient("p1"), as_of=AS_OF).assessment
    )
    assert assessment is not None
    bad = AlertRecord(patient_id="not a fhir id!", kind="DR", timepoint_date=AS_OF, payload={})
    with pytest.raises(ValueError, match="FHIR logical id"):
        await store.record_with_alerts([assessment], run_id="r1", alerts=[*plan_alerts(assessment), bad])
    assert await store.latest("p1") is None
    assert (await SqlAlertOutbox(engine, patient_key_salt=SALT).list_alerts())[1] == 0


def test_alerts_need_a_store_that_records_them_with_the_assessments() -> None:
    assessor = AssessPatients(AssessmentParameters(), key_salt=SALT)
    with pytest.raises(TypeError, match="record_with_alerts"):
        SyncPatients(
            FakeMeasurementSource([]),
            FakeAssessmentWriter(),
            FakeAssessmentStore(),
            assessor,
            key_salt=SALT,
            plan_alerts=plan_alerts,
        )
