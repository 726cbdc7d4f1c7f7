"""Several sync processes on one database, against a real FHIR server (sekmet-fhir).

- Two syncs at the same time on one PostgreSQL database share the patients through the leases of
  migration 0005: every patient is assessed by exactly one of them, and the server holds each of
  our Observations once.
- Two `oncoresponse sync` processes on one SQLite file: both finish (SQLite's busy timeout makes
  each wait for the other's writes, no "database is locked"), every patient is stored once and
  nothing is written twice on the server. (Whether the second process finds leases to skip
  depends on how far the two overlap in time, which process start-up decides; the PostgreSQL test
  runs both at once and checks the sharing.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from service.adapters.persistence.database import make_engine, migrate
from service.adapters.persistence.tables import PatientAssessmentRow
from service.application.assess import SyncReport
from service.application.ports import PatientRef
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer
from service.synthetic import Trajectory, generate_patient
from tests.e2e.test_sync_against_sekmet import count_by_identifier

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet")]

AS_OF = date(2026, 11, 1)
PATIENTS = 16
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of its own on the test PostgreSQL server (skipped when the server is not there)."""
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    schema = f"oncoresponse_e2e_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {type(exc).__name__}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def _load(server: SekmetServer, prefix: str) -> list[str]:
    trajectories = list(Trajectory)
    patients = [
        generate_patient(trajectories[i % len(trajectories)], seed=700 + i, patient_id=f"{prefix}-{i:02d}")
        for i in range(PATIENTS)
    ]
    await load_patients(server.base_url, [transaction_bundle(p.resources) for p in patients])
    return [p.truth.patient_id for p in patients]


def _settings(server: SekmetServer, database_url: str) -> Settings:
    return Settings(
        environment="test",
        api_auth="off",
        fhir_base_url=server.base_url,  # type: ignore[arg-type]
        database_url=database_url,
        log_json=True,
        patient_key_salt="e2e-salt",  # type: ignore[arg-type]
        sync_concurrency=4,
    )


def _stored(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(PatientAssessmentRow)
                .where(PatientAssessmentRow.fhir_patient_id.in_(ids))
            )
            or 0
        )


async def test_two_syncs_on_one_postgresql_share_the_patients(
    sekmet_server: SekmetServer, postgres_url: str
) -> None:
    ids = await _load(sekmet_server, f"lease-pg-{uuid.uuid4().hex[:6]}")
    settings = _settings(sekmet_server, postgres_url)
    migrate(postgres_url)
    reports: list[SyncReport] = []

    async def one_replica() -> None:
        async with Container(settings) as box:  # its own engine and connection pool, as a process
            reports.append(await box.require_sync()(as_of=AS_OF, only=[PatientRef(p) for p in ids]))

    async with anyio.create_task_group() as replicas:
        replicas.start_soon(one_replica)
        replicas.start_soon(one_replica)
    assert sum(r.patients_assessed for r in reports) == PATIENTS  # each patient assessed once
    assert sum(r.patients_leased_elsewhere for r in reports) == PATIENTS  # and skipped by the other
    assert all(r.patients_failed == 0 for r in reports), [r.issues for r in reports]
    counts = count_by_identifier(sekmet_server.base_url)
    ours = {k: v for k, v in counts.items() if any(pid in k for pid in ids)} or counts
    assert max(ours.values()) == 1, "an Observation was written twice"
    engine = make_engine(postgres_url)
    try:
        assert _stored(engine, ids) == PATIENTS
    finally:
        engine.dispose()


async def test_two_sync_processes_on_one_sqlite_file(sekmet_server: SekmetServer, tmp_path: Path) -> None:
    loaded_after = datetime.now(UTC) - timedelta(seconds=2)
    ids = await _load(sekmet_server, f"lease-sqlite-{uuid.uuid4().hex[:6]}")
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    migrate(database_url)
    env = {
        **os.environ,
        "ONCORESPONSE_ENVIRONMENT": "test",
        "ONCORESPONSE_API_AUTH": "off",
        "ONCORESPONSE_FHIR_BASE_URL": sekmet_server.base_url,
        "ONCORESPONSE_DATABASE_URL": database_url,
        "ONCORESPONSE_PATIENT_KEY_SALT": "e2e-salt",
        "ONCORESPONSE_SYNC_CONCURRENCY": "4",
    }
    command = [sys.executable, "-m", "service", "sync", "--since", loaded_after.isoformat()]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        assert "database is locked" not in err
        # The summary line (after the previous run's state, which the other process may still hold).
        assert [line for line in out.splitlines() if line.startswith("patients ")]
    engine = make_engine(database_url)
    try:
        assert _stored(engine, ids) == PATIENTS
    finally:
        engine.dispose()
    summaries = [
        next(line for line in out.splitlines() if line.startswith("patients ")) for out, _ in outputs
    ]
    assessed = sum(int(line.split("assessed ")[1].split(",")[0]) for line in summaries)
    assert assessed >= PATIENTS
    counts = count_by_identifier(sekmet_server.base_url)
    assert max(counts.values()) == 1, "an Observation was written twice"
