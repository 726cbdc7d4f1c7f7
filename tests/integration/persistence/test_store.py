"""SqlAssessmentStore: the latest assessment per patient, upserted, with run bookkeeping."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from service.adapters.persistence.database import make_engine
from service.adapters.persistence.keys import patient_key
from service.adapters.persistence.store import (
    AssessmentRepository,
    SqlAssessmentStore,
    UnknownRunError,
)
from service.adapters.persistence.summary import input_fingerprint
from service.adapters.persistence.tables import AssessmentRunRow, PatientAssessmentRow, RunStatus, RunTrigger
from service.analytics.cohort import patient_row
from service.application.ports import AssessmentStore
from service.domain.model import ClinicalProfile, Lesion, LesionMeasurement, PatientTimeline, Scan
from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    DrTrigger,
    ImmuneResponse,
    Response,
    ResponseGroup,
    RuleTrace,
)
from tests.integration.persistence.factories import (
    START,
    assessment,
    dr_finding,
    progressive,
    stable,
    timepoint,
)

SALT = "test-salt-not-a-secret"
BERLIN = ZoneInfo("Europe/Berlin")


def ticking_clock(start: datetime) -> Callable[[], datetime]:
    """A clock in a non-UTC zone that advances one minute per reading."""
    minutes = itertools.count()
    return lambda: start + timedelta(minutes=next(minutes))


@pytest.fixture
def repo(engine: Engine) -> AssessmentRepository:
    return AssessmentRepository(
        engine, patient_key_salt=SALT, clock=ticking_clock(datetime(2024, 6, 1, 9, 0, tzinfo=BERLIN))
    )


def rows_for(engine: Engine, patient_id: str) -> int:
    with Session(engine) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(PatientAssessmentRow)
                .where(PatientAssessmentRow.fhir_patient_id == patient_id)
            )
            or 0
        )


def test_a_patient_assessed_again_keeps_one_row_that_holds_the_new_result(
    repo: AssessmentRepository, engine: Engine
) -> None:
    first = repo.start_run(RunTrigger.CLI)
    repo.record([stable("p1"), stable("p2")], run_id=first)
    second = repo.start_run(RunTrigger.SYNC)
    repo.record([progressive("p1")], run_id=second)

    assert rows_for(engine, "p1") == 1
    assert repo.count() == 2
    p1 = repo.latest("p1")
    assert p1 is not None
    assert (p1.run_id, p1.response_group, p1.best_response) == (second, ResponseGroup.PD, Response.PD)
    assert (p1.pfs_days, p1.pfs_event, p1.os_days, p1.os_event) == (56, True, 200, True)
    p2 = repo.latest("p2")
    assert p2 is not None
    assert (p2.run_id, p2.response_group) == (first, ResponseGroup.SD)
    assert p1.assessed_at > p2.assessed_at


def test_the_same_patient_twice_in_one_batch_keeps_the_later_assessment(repo: AssessmentRepository) -> None:
    # PostgreSQL refuses one INSERT ... ON CONFLICT that touches a row twice; the store must not send one.
    run = repo.start_run(RunTrigger.API)
    assert repo.record([stable("p1"), progressive("p1")], run_id=run) == 1
    latest = repo.latest("p1")
    assert latest is not None
    assert latest.response_group is ResponseGroup.PD


def test_dissociated_response_fills_the_atypical_columns_from_the_earliest_finding(
    repo: AssessmentRepository,
) -> None:
    # Contract section 2: group DR is "atypical"; DR found at timepoints 3 (new lesion) and 2 (target).
    dr = assessment(
        "p-dr",
        ResponseGroup.DR,
        best_response=Response.PD,
        immune=ImmuneResponse.IUPD,
        atypical=(dr_finding(3, DrTrigger.NEW_LESION), dr_finding(2, DrTrigger.TARGET_LESION)),
        timepoints=(timepoint(1, Response.SD, "88.5"), timepoint(2, Response.PD, "121.4")),
        pfs=(112, True),
        os_=(None, None),
    )
    repo.record([dr], run_id=repo.start_run(RunTrigger.DEMO))
    stored = repo.latest("p-dr")
    assert stored is not None
    assert stored.atypical is True
    assert (stored.dr_trigger, stored.dr_timepoint_index) == (DrTrigger.TARGET_LESION, 2)
    assert stored.immune_best_response is ImmuneResponse.IUPD
    assert (stored.os_days, stored.os_event) == (None, None)
    # Millimetres survive as exact decimal strings, never floats.
    assert [t["sum_mm"] for t in stored.result["timepoints"]] == ["88.5", "121.4"]
    assert stored.result["atypical"][0]["metrics"] == [["max_shrink_pct", "-41.5"]]
    assert stored.result["response_group"] == "DR"


def test_pseudoprogression_is_atypical_without_a_dr_trigger(repo: AssessmentRepository) -> None:
    # Contract section 2: "Atypical" = DR or PsPD; PsPD = an unconfirmed iUPD followed by iSD/iPR/iCR.
    pspd = AtypicalFinding(
        kind=AtypicalKind.PSPD,
        definition="irecist",
        definition_version="1",
        timepoint_index=1,
        timepoint_date=START + timedelta(weeks=8),
        trigger=None,
        overall_at_detection=Response.PD,
        growing_lesions=(),
        shrinking_lesions=(),
        trace=RuleTrace.of("pspd/irecist"),
    )
    patient = assessment("p-ps", ResponseGroup.PSPD, best_response=Response.PD, atypical=(pspd,))
    true_response = assessment("p-pr", ResponseGroup.CR_PR, best_response=Response.PR)
    repo.record([patient, true_response], run_id=repo.start_run(RunTrigger.API))
    ps, pr = repo.latest("p-ps"), repo.latest("p-pr")
    assert ps is not None
    assert pr is not None
    assert (ps.atypical, ps.dr_trigger, ps.dr_timepoint_index) == (True, None, None)
    assert pr.atypical is False


def test_rows_carry_the_salted_key_not_a_second_copy_of_the_id(repo: AssessmentRepository) -> None:
    repo.record([stable("patient-123")], run_id=repo.start_run(RunTrigger.CLI))
    stored = repo.latest("patient-123")
    assert stored is not None
    assert stored.patient_key == patient_key("patient-123", SALT)
    assert stored.patient_key != patient_key("patient-123", "another-salt")
    assert re.fullmatch(r"[0-9a-f]{16}", stored.patient_key)


def test_a_batch_with_an_invalid_patient_id_writes_nothing(repo: AssessmentRepository) -> None:
    # FHIR ids are at most 64 characters of [A-Za-z0-9-.]: the whole call fails, valid rows included.
    run = repo.start_run(RunTrigger.SYNC)
    with pytest.raises(ValueError, match="FHIR logical id"):
        repo.record([stable("ok-1"), stable("x" * 65)], run_id=run)
    assert repo.count() == 0


def test_data_version_follows_the_inputs(repo: AssessmentRepository) -> None:
    def timeline(long_axis_mm: str) -> PatientTimeline:
        return PatientTimeline(
            patient_id="p1",
            treatment_start=START,
            lesions=(Lesion("L1", "lung"),),
            scans=(Scan(START, (LesionMeasurement("L1", long_axis_mm=Decimal(long_axis_mm)),)),),
        )

    params = AssessmentParameters()
    same = input_fingerprint(timeline("21.0"), params)
    assert input_fingerprint(timeline("21.0"), params) == same
    assert input_fingerprint(timeline("21.5"), params) != same
    assert input_fingerprint(timeline("21.0"), AssessmentParameters(confirmation_min_days=35)) != same

    repo.record([stable("p1")], run_id=repo.start_run(RunTrigger.CLI), data_versions={"p1": same})
    stored = repo.latest("p1")
    assert stored is not None
    assert stored.data_version == same


def test_store_version_changes_with_every_write_even_one_stamped_before_the_latest(engine: Engine) -> None:
    """the portal caches results per data version, so every write of assessments must
    change it, including a re-assessment whose writer's clock is behind (another replica):
    `max(assessed_at)`, the old version, missed exactly that one."""
    ahead = AssessmentRepository(
        engine, patient_key_salt=SALT, clock=lambda: datetime(2024, 6, 2, tzinfo=UTC)
    )
    behind = AssessmentRepository(
        engine, patient_key_salt=SALT, clock=lambda: datetime(2024, 6, 1, tzinfo=UTC)
    )
    start = ahead.version()
    ahead.record([stable("p1"), stable("p2")], run_id="r1")
    after_first = ahead.version()
    assert after_first == start + 1  # one transaction, one step
    behind.record([progressive("p1")], run_id="r2")  # the same patient, stamped a day earlier
    assert behind.version() == ahead.version() == after_first + 1
    ahead.record([], run_id="r3")  # nothing written: the data did not change
    assert ahead.version() == after_first + 1


def test_runs_are_opened_and_closed_with_their_counts(repo: AssessmentRepository) -> None:
    run = repo.start_run(RunTrigger.SYNC, patients_total=3)
    opened = repo.get_run(run)
    assert opened is not None
    assert (opened.status, opened.finished_at) == (RunStatus.RUNNING, None)
    repo.record([stable("p1"), stable("p2")], run_id=run)
    closed = repo.finish_run(
        run, patients_total=3, patients_assessed=2, patients_failed=1, observations_created=14
    )
    assert closed.status is RunStatus.PARTIAL  # one patient failed
    assert closed.finished_at is not None
    assert closed.finished_at > closed.started_at
    assert closed.started_at.tzinfo is not None
    assert closed.started_at == datetime(2024, 6, 1, 7, 0, tzinfo=UTC)  # 09:00 Berlin summer time
    clean = repo.finish_run(
        repo.start_run(RunTrigger.CLI), patients_total=1, patients_assessed=1, patients_failed=0
    )
    assert clean.status is RunStatus.SUCCEEDED
    assert [r.id for r in repo.recent_runs()] == [clean.id, run]
    with pytest.raises(UnknownRunError):
        repo.finish_run("no-such-run", patients_total=0, patients_assessed=0, patients_failed=0)


def test_recording_under_a_run_never_started_registers_it(repo: AssessmentRepository, engine: Engine) -> None:
    repo.record([stable("p1"), stable("p2")], run_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    run = repo.get_run("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    assert run is not None
    assert (run.trigger, run.status, run.patients_assessed) == (RunTrigger.SYNC, RunStatus.RUNNING, 2)
    repo.record([stable("p3")], run_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0")  # same run: still one row
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AssessmentRunRow)) == 1


def test_all_latest_streams_every_patient_in_id_order(repo: AssessmentRepository) -> None:
    run = repo.start_run(RunTrigger.CLI)
    repo.record([stable("p3"), progressive("p1"), stable("p2")], run_id=run)
    streamed = list(repo.all_latest(batch_size=2))
    assert [a.fhir_patient_id for a in streamed] == ["p1", "p2", "p3"]
    assert [a.response_group for a in streamed] == [ResponseGroup.PD, ResponseGroup.SD, ResponseGroup.SD]


def test_ping_answers_true_on_a_live_database_and_false_on_a_missing_one(
    repo: AssessmentRepository, tmp_path: Path
) -> None:
    assert repo.ping() is True
    directory = tmp_path / "gone"
    dead = make_engine(f"sqlite:///{directory / 'x.db'}")
    directory.rmdir()  # make_engine created it; without it SQLite cannot open the file
    try:
        assert AssessmentRepository(dead, patient_key_salt=SALT).ping() is False
    finally:
        dead.dispose()


async def test_the_async_store_implements_the_port_and_survives_a_restart(database_url: str) -> None:
    from service.adapters.persistence.database import migrate

    migrate(database_url)
    store = SqlAssessmentStore.open(database_url, patient_key_salt=SALT)
    port: AssessmentStore = store
    run = await store.start_run("api")
    await port.record([stable("p1"), progressive("p2")], run_id=run)
    await store.finish_run(run, patients_total=2, patients_assessed=2, patients_failed=0)
    assert await store.ping() is True
    store.close()

    reopened = SqlAssessmentStore.open(database_url, patient_key_salt=SALT)
    try:
        assert await reopened.count() == 2
        assert [a.fhir_patient_id for a in await reopened.all_latest()] == ["p1", "p2"]
        latest = await reopened.latest("p2")
        assert latest is not None
        assert latest.best_response is Response.PD
        finished = await reopened.get_run(run)
        assert finished is not None
        assert finished.status is RunStatus.SUCCEEDED
        assert await reopened.latest("nobody") is None
    finally:
        reopened.close()


def test_ping_is_false_when_postgresql_refuses_connections() -> None:
    # Nothing listens on loopback port 1: the connection is refused at once.
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    try:
        assert AssessmentRepository(dead, patient_key_salt=SALT).ping() is False
    finally:
        dead.dispose()


def test_stored_result_keeps_the_age_at_ici_start_not_the_birth_date(repo: AssessmentRepository) -> None:
    # Data minimisation: the analyses need the age at ICI start (Guan 2024 Table 1, "Age <60 /
    # >=60"), not the birth date, which identifies the patient. Born 1961-03-02 and starting on
    # the day before the 60th birthday: 59 completed years.
    born = START.replace(year=START.year - 60) + timedelta(days=1)
    with_profile = dataclasses.replace(
        stable("p-age"), profile=ClinicalProfile(sex="female", birth_date=born)
    )
    repo.record([with_profile], run_id=repo.start_run(RunTrigger.CLI))
    stored = repo.latest("p-age")
    assert stored is not None
    assert born.isoformat() not in json.dumps(stored.result)
    assert "birth_date" not in stored.result["profile"]
    assert stored.result["profile"]["age_at_treatment_start"] == 59
    assert patient_row(stored.result)["age_years"] == 59
    # A format-1 document (stored before) still gives the same age from its birth date.
    old = {**stored.result, "format": 1, "profile": {"sex": "female", "birth_date": born.isoformat()}}
    assert patient_row(old)["age_years"] == 59


async def test_an_aborted_run_is_marked_failed_and_reported_by_the_next(database_url: str) -> None:
    # docs/fhir/write-back.md, "Runs end": never left `running`; the next run sees its state.
    from service.adapters.persistence.database import migrate

    migrate(database_url)
    store = SqlAssessmentStore.open(database_url, patient_key_salt=SALT)
    try:
        assert await store.last_run() is None
        run = await store.start_run("cli")
        await store.finish_run(run, patients_total=5, patients_assessed=1, patients_failed=0, aborted=True)
        previous = await store.last_run()
        assert previous is not None
        assert (previous.run_id, previous.status) == (run, "failed")
        assert previous.finished_at is not None
        crashed = await store.start_run("cli")  # never finished: a killed process
        previous = await store.last_run()
        assert previous is not None
        assert (previous.run_id, previous.status, previous.finished_at) == (crashed, "running", None)
    finally:
        store.close()


def test_only_runs_left_running_too_long_are_marked_failed(engine: Engine) -> None:
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    now = [start]
    repo = AssessmentRepository(engine, patient_key_salt=SALT, clock=lambda: now[0])
    killed = repo.start_run(RunTrigger.CLI)
    now[0] = start + timedelta(hours=23)
    recent = repo.start_run(RunTrigger.SYNC)  # may still be going on in another process
    now[0] = start + timedelta(hours=24, seconds=1)
    assert repo.close_stale_runs(86_400) == 1
    killed_run, recent_run = repo.get_run(killed), repo.get_run(recent)
    assert killed_run is not None
    assert recent_run is not None
    assert (killed_run.status, killed_run.finished_at) == (RunStatus.FAILED, now[0])
    assert recent_run.status is RunStatus.RUNNING
    assert repo.close_stale_runs(86_400) == 0  # already closed
