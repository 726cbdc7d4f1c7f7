"""the delivery worker is KILLED (SIGKILL) between commit and delivery.

Against the session sekmet-fhir, a generated DR patient (new-lesion trigger) is synced once in
process (the assessment and its alert are committed together: the transactional outbox). Then
``python -m service deliver-alerts`` runs as a separate process on the same SQLite file and is
killed with SIGKILL at the two worst moments, found with the test-only pause points of
`service/adapters/alerts/fault_injection.py` (``ONCORESPONSE_TEST_PAUSE_AT``):

1. ``after-claim``: the alert is claimed (lease committed), nothing is written yet;
2. ``after-fhir-write``: the Communication + Flag transaction has succeeded on the server, the
   outbox does not know it yet.

After each kill the dead worker's claim must run out before anyone may deliver again. The lease
is 300 s (`DeliverAlerts` default; no setting exists), so the test first shows that a fresh pass
leaves the claimed alert alone, then EXPIRES THE LEASE by moving the row's `next_attempt_at` to
the past (standing for the 300 s going by; the only simulated step). A fresh ``deliver-alerts``
process then completes the delivery. Three more syncs and one more pass change nothing: the
server holds exactly one Communication and one Flag for the patient, addressed to the
oncologist the generator put in the patient's CareTeam, and the outbox shows the alert delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from service.adapters.alerts.fault_injection import (
    MARKER,
    PAUSE_ENV,
    PausePoint,
    UnknownPausePoint,
    pause_point,
)
from service.adapters.fhir import codes
from service.adapters.persistence.database import migrate
from service.adapters.persistence.outbox import ABANDONED_ERROR, AlertOutboxRepository
from service.adapters.persistence.tables import AlertOutboxRow, AlertStatus
from service.application.ports import PatientRef
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer
from service.synthetic import Trajectory, generate_patient
from service.synthetic.fhir_builder import SNOMED_ONCOLOGIST

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 1)
SALT = "e2e-crash-salt"
MARKER_TIMEOUT_S = 45.0  # process start (imports, migrations) + claim / FHIR write, on a busy machine
PASS_TIMEOUT_S = 60.0
KILL_TIMEOUT_S = 10.0


# --- the worker process ---------------------------------------------------------------------------
class Workers:
    """Starts ``python -m service deliver-alerts`` processes; `close` kills whatever still runs."""

    def __init__(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONCORESPONSE_")}
        env.update(
            ONCORESPONSE_ENVIRONMENT="test",
            ONCORESPONSE_FHIR_BASE_URL=str(settings.fhir_base_url),
            ONCORESPONSE_DATABASE_URL=settings.database_url,
            ONCORESPONSE_PATIENT_KEY_SALT=SALT,
            ONCORESPONSE_ALERT_WORKER_INTERVAL_S="0",
            ONCORESPONSE_LOG_JSON="true",
        )
        self._env = env
        self._started: list[asyncio.subprocess.Process] = []

    async def start(self, pause_at: PausePoint | None = None) -> asyncio.subprocess.Process:
        env = dict(self._env)
        if pause_at is not None:
            env[PAUSE_ENV] = pause_at.value
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service",
            "deliver-alerts",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._started.append(proc)
        return proc

    async def kill_at(self, point: PausePoint) -> str:
        """Start a worker, wait until it pauses at `point`, SIGKILL it; the marker line."""
        proc = await self.start(pause_at=point)
        assert proc.stderr is not None
        seen: list[str] = []

        async def marker() -> str:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                text = line.decode("utf-8", "replace").rstrip("\n")
                if text.startswith(f"{MARKER} {point.value} "):
                    return text
                seen.append(text)
            code = await proc.wait()
            raise AssertionError(f"worker exited ({code}) without pausing at {point.value}: {seen[-5:]}")

        try:
            line = await asyncio.wait_for(marker(), MARKER_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"no pause at {point.value} in {MARKER_TIMEOUT_S} s: {seen[-5:]}") from None
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), KILL_TIMEOUT_S) == -signal.SIGKILL
        return line

    async def run_pass(self) -> dict[str, int]:
        """One complete ``deliver-alerts`` run; its summary line as numbers."""
        proc = await self.start()
        out, err = await asyncio.wait_for(proc.communicate(), PASS_TIMEOUT_S)
        tail = err.decode("utf-8", "replace").splitlines()[-5:]
        assert proc.returncode == 0, tail
        assert MARKER not in err.decode("utf-8", "replace"), "a plain pass must never pause"
        summary = out.decode().strip().splitlines()[-1]  # "delivered 1, retrying 0, failed 0, held 0"
        return {k: int(v) for k, v in re.findall(r"(delivered|retrying|failed|held) (\d+)", summary)}

    async def close(self) -> None:
        for proc in self._started:
            if proc.returncode is None:
                proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), KILL_TIMEOUT_S)


# --- what the server and the outbox hold ---------------------------------------------------------
def alerts_of(base_url: str, resource_type: str, patient_id: str) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as http:
        page = http.get(f"{base_url}/{resource_type}", params={"patient": patient_id, "_count": "100"})
    page.raise_for_status()
    found = [e["resource"] for e in page.json().get("entry", [])]
    assert all(r["resourceType"] == resource_type for r in found)
    assert all(r["subject"] == {"reference": f"Patient/{patient_id}"} for r in found)
    return found


def oncologist_of(resources: list[dict[str, Any]]) -> str:
    """The CareTeam member the generator gave the SNOMED Oncologist role (fhir_builder.care_team)."""
    (team,) = [r for r in resources if r["resourceType"] == "CareTeam"]
    members = [
        p["member"]["reference"]
        for p in team["participant"]
        if any(c.get("code") == SNOMED_ONCOLOGIST[0] for role in p["role"] for c in role["coding"])
    ]
    assert len(members) == 1
    return str(members[0])


@dataclass(frozen=True)
class Lease:
    status: str
    token: str | None
    until: datetime
    channels: dict[str, Any]


def lease_of(engine: Engine) -> Lease:
    with Session(engine) as session:
        (row,) = session.scalars(select(AlertOutboxRow)).all()
        return Lease(row.status, row.lease_token, row.next_attempt_at, dict(row.channels_json or {}))


def expire_lease(engine: Engine) -> None:
    """Stand for the dead worker's lease running out (module doc): the alert is due again now."""
    with Session(engine) as session, session.begin():
        session.execute(
            update(AlertOutboxRow).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    migrate(url)
    made = create_engine(url)
    try:
        yield made
    finally:
        made.dispose()


# --- the pause points are test-only ---------------------------------------------------------------
@pytest.mark.parametrize("environment", ["test", "development"])
def test_pause_point_acts_in_test_and_development(environment: str) -> None:
    assert pause_point("after-fhir-write", environment=environment) is PausePoint.AFTER_FHIR_WRITE
    assert pause_point(None, environment=environment) is None


def test_pause_point_is_ignored_in_production_so_alerts_still_go_out() -> None:
    assert pause_point("after-claim", environment="production") is None


def test_misspelt_pause_point_is_an_error_not_a_plain_delivery() -> None:
    with pytest.raises(UnknownPausePoint):
        pause_point("after_claim", environment="test")


# --- the crash test -------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.xdist_group("sekmet")
async def test_dr_alert_is_written_once_when_worker_is_sigkilled_after_claim_and_after_fhir_write(
    sekmet_server: SekmetServer, engine: Engine
) -> None:
    base = sekmet_server.base_url
    dr = generate_patient(Trajectory.DR_NEW_LESION, seed=909, patient_id=f"e2e-crash-{uuid.uuid4().hex[:8]}")
    await load_patients(base, [transaction_bundle(dr.resources)])
    oncologist = oncologist_of(dr.resources)
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        fhir_base_url=base,
        database_url=str(engine.url),
        patient_key_salt=SALT,
        alerts_enabled=True,
        alert_worker_interval_s=0,  # nothing delivers in this process
        log_json=True,
    )
    only = [PatientRef(dr.patient_id)]
    async with Container(settings) as box:
        first = await box.require_sync()(as_of=AS_OF, only=only)
    assert first.alerts_recorded == 1, first.issues
    assert alerts_of(base, "Communication", dr.patient_id) == []

    workers = Workers(settings)
    try:
        # (a) Killed after the claim: nothing is written, the claim holds the alert.
        marker = await workers.kill_at(PausePoint.AFTER_CLAIM)
        assert dr.patient_id not in marker
        claimed = lease_of(engine)
        assert claimed.status == AlertStatus.PENDING
        assert claimed.token is not None
        assert claimed.until > datetime.now(UTC)
        assert claimed.channels == {}
        assert alerts_of(base, "Communication", dr.patient_id) == []
        assert alerts_of(base, "Flag", dr.patient_id) == []
        async with Container(settings) as box:  # while the lease runs, nobody else takes the alert
            assert (await box.require_alert_delivery()()).attempted == 0
        assert alerts_of(base, "Communication", dr.patient_id) == []
        expire_lease(engine)

        # (b) Killed after the FHIR transaction, before the outbox records it.
        await workers.kill_at(PausePoint.AFTER_FHIR_WRITE)
        written = alerts_of(base, "Communication", dr.patient_id)
        assert len(written) == 1
        assert len(alerts_of(base, "Flag", dr.patient_id)) == 1
        unrecorded = lease_of(engine)
        assert unrecorded.status == AlertStatus.PENDING
        assert unrecorded.until > datetime.now(UTC)
        assert "fhir" not in unrecorded.channels
        async with Container(settings) as box:
            assert (await box.require_alert_delivery()()).attempted == 0
        expire_lease(engine)

        # Restart: a fresh worker process completes the delivery without writing anything twice.
        assert (await workers.run_pass())["delivered"] == 1

        # Three more syncs and one more pass: nothing new.
        async with Container(settings) as box:
            for _ in range(3):
                assert (await box.require_sync()(as_of=AS_OF, only=only)).alerts_recorded == 0
        assert await workers.run_pass() == {"delivered": 0, "retrying": 0, "failed": 0, "held": 0}
    finally:
        await workers.close()

    communications = alerts_of(base, "Communication", dr.patient_id)
    flags = alerts_of(base, "Flag", dr.patient_id)
    assert len(communications) == 1
    assert len(flags) == 1
    (comm,), (flag,) = communications, flags
    assert comm["id"] == written[0]["id"]  # the killed worker's write was matched, not repeated
    assert comm["recipient"] == [{"reference": oncologist}]
    (patient,) = [r for r in dr.resources if r["resourceType"] == "Patient"]
    general_practitioners = patient["generalPractitioner"]
    assert isinstance(general_practitioners, list)
    assert {"reference": oncologist} not in general_practitioners  # not the GP fallback
    assert comm["identifier"][0]["system"] == codes.IDENTIFIER_ALERT
    assert flag["identifier"] == comm["identifier"]
    assert flag["status"] == "active"

    (alert,), total = AlertOutboxRepository(engine, patient_key_salt=SALT).list_alerts()
    assert total == 1
    assert alert.status is AlertStatus.DELIVERED
    assert alert.delivered_at is not None
    # Both killed workers' tries count as attempts (found when their claims had expired), so an
    # alert that killed every worker would end `failed` instead of being claimed for ever.
    assert alert.attempts == 3
    assert alert.last_error == ABANDONED_ERROR
    fhir = (alert.channels or {})["fhir"]
    assert fhir["state"] == "delivered"
    assert fhir["recipient"] == oncologist
    assert fhir["recipient_source"] == "care-team-oncologist"
    assert fhir["communication"] == f"Communication/{comm['id']}"
    assert fhir["flag"] == f"Flag/{flag['id']}"
    assert lease_of(engine).token is None
