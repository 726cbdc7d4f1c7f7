"""Acceptance against a real FHIR server (sekmet-fhir) and a real local webhook receiver.

A generated DR patient (new-lesion trigger) yields exactly one Communication and one Flag, addressed
to the oncologist of the patient's CareTeam, after three syncs and after a crash between the FHIR
write and the outbox bookkeeping followed by a restart (a fresh Container on the same SQLite file).
The webhook receiver verifies every signature; a receiver that always fails is retried a bounded
number of times and the alert is then reported as failed (GET /alerts), never lost.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from service.adapters.alerts.outbox import SqlDeliveryOutbox
from service.adapters.alerts.webhook import DELIVERY_HEADER, SIGNATURE_HEADER
from service.adapters.fhir import codes
from service.adapters.persistence.database import migrate
from service.adapters.persistence.tables import AlertStatus
from service.api.app import create_app
from service.application.alerts import DeliverAlerts
from service.application.ports import PatientRef, PendingAlert
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer
from service.synthetic import Trajectory, generate_patient

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet")]

AS_OF = date(2026, 11, 1)
SECRET = "e2e-webhook-secret-0123456789"


class Receiver:
    """A tiny webhook receiver on 127.0.0.1: /ok verifies and records, /broken always answers 500."""

    def __init__(self) -> None:
        self.verified: list[dict[str, str]] = []
        self.bad_signatures = 0
        self.broken_calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/broken":
                    receiver.broken_calls += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                parts = dict(p.split("=", 1) for p in self.headers[SIGNATURE_HEADER].split(","))
                mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
                fresh = abs(time.time() - int(parts["t"])) <= 300
                if hmac.compare_digest(mac, parts["v1"]) and fresh:
                    receiver.verified.append(
                        {"delivery_id": self.headers[DELIVERY_HEADER], "body": body.decode()}
                    )
                    self.send_response(204)
                else:
                    receiver.bad_signatures += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def search(base_url: str, resource_type: str, **params: str) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as http:
        page = http.get(f"{base_url}/{resource_type}", params={**params, "_count": "100"}).json()
    return [e["resource"] for e in page.get("entry", []) if e["resource"]["resourceType"] == resource_type]


def oncologist_of(resources: list[dict[str, Any]]) -> str:
    (team,) = [r for r in resources if r["resourceType"] == "CareTeam"]
    for participant in team["participant"]:
        if any(c.get("code") == "309295000" for role in participant["role"] for c in role["coding"]):
            return str(participant["member"]["reference"])
    raise AssertionError("the generator made no oncologist")


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it)."""


async def test_dr_patient_gets_exactly_one_communication_and_flag_despite_resyncs_and_a_crash(
    sekmet_server: SekmetServer, tmp_path: Path, receiver: Receiver
) -> None:
    tag = uuid.uuid4().hex[:6]
    dr = generate_patient(Trajectory.DR_NEW_LESION, seed=505, patient_id=f"e2e-alert-dr-{tag}")
    pr = generate_patient(Trajectory.PR, seed=506, patient_id=f"e2e-alert-pr-{tag}")
    await load_patients(sekmet_server.base_url, [transaction_bundle(p.resources) for p in (dr, pr)])
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        fhir_base_url=sekmet_server.base_url,
        database_url=f"sqlite:///{tmp_path / 'alerts-e2e.db'}",
        patient_key_salt="e2e-salt",
        alert_webhook_urls=[f"{receiver.url}/ok", f"{receiver.url}/broken"],
        alert_webhook_secret=SECRET,
        alert_worker_interval_s=0,
        alert_max_attempts=3,
        alert_retry_base_s=0.05,
        alert_retry_max_s=0.1,
        log_json=True,
    )
    migrate(settings.database_url)
    only = [PatientRef(dr.patient_id), PatientRef(pr.patient_id)]

    # 1. Three syncs record ONE alert (DR patient only), in the same transaction as the assessments.
    async with Container(settings) as box:
        reports = [await box.require_sync()(as_of=AS_OF, only=only) for _ in range(3)]
        assert [r.alerts_recorded for r in reports] == [1, 0, 0], reports[0].issues

        # 2. The worker writes the Communication + Flag, then dies before recording it.
        async def die_after_fhir(alert: PendingAlert, channel: str) -> None:
            if channel == "fhir":
                raise Crash

        assert box.outbox is not None
        crashing = DeliverAlerts(
            SqlDeliveryOutbox(box.outbox), box.alert_channels, lease_s=0.5, after_channel=die_after_fhir
        )
        with pytest.raises(Crash):
            await crashing()
    assert len(search(sekmet_server.base_url, "Communication", patient=dr.patient_id)) == 1

    # 3. Restart: a fresh Container on the same database delivers what is left, retrying the broken
    #    receiver until it gives up; a fourth sync in between records nothing new.
    await anyio.sleep(0.6)  # the dead worker's claim runs out
    async with Container(settings) as box:
        assert (await box.require_sync()(as_of=AS_OF, only=only)).alerts_recorded == 0
        deliver = box.require_alert_delivery()
        assert box.outbox is not None
        for _ in range(40):
            await deliver()
            (current,), _ = await box.outbox.list_alerts()
            if current.status is not AlertStatus.PENDING:
                break
            await anyio.sleep(0.06)
        transport = httpx.ASGITransport(app=create_app(settings, container=box))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            (alert,) = (await http.get("/alerts")).json()["items"]

    # Exactly one Communication and one Flag, to the CareTeam's oncologist, about our Observation.
    communications = search(sekmet_server.base_url, "Communication", patient=dr.patient_id)
    flags = search(sekmet_server.base_url, "Flag", patient=dr.patient_id)
    assert len(communications) == 1
    assert len(flags) == 1
    (comm,), (flag,) = communications, flags
    oncologist = oncologist_of(dr.resources)
    assert comm["recipient"] == [{"reference": oncologist}]
    assert (comm["status"], comm["priority"]) == ("completed", "urgent")
    assert comm["category"][0]["coding"][0]["code"] == "alert"
    assert comm["identifier"][0]["system"] == codes.IDENTIFIER_ALERT
    assert flag["identifier"] == comm["identifier"]
    text = comm["payload"][0]["contentString"]
    assert "4-8 weeks" in text
    assert "(new)" in text
    about = comm["about"][0]["reference"]
    observation = httpx.get(f"{sekmet_server.base_url}/{about}", timeout=30).json()
    assert observation["code"]["coding"][0]["code"] == codes.CODE_ATYPICAL_RESPONSE
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "DR"
    assert search(sekmet_server.base_url, "Communication", patient=pr.patient_id) == []

    # The good receiver verified every signature; the broken one was retried, then reported.
    assert receiver.bad_signatures == 0
    assert receiver.verified, "the webhook never arrived"
    assert {d["delivery_id"] for d in receiver.verified} == {alert["payload"]["alert_id"]}
    assert dr.patient_id in receiver.verified[0]["body"]  # as a FHIR reference, nothing more
    # Three attempts in all: the crashed worker's (counted when its claim was found expired) and
    # two that reached the broken receiver.
    assert receiver.broken_calls == 2
    assert alert["status"] == "failed"
    assert alert["attempts"] == 3
    assert "HTTP 500" in alert["last_error"]
    assert alert["channels"]["fhir"]["state"] == "delivered"
    assert alert["channels"]["fhir"]["detail"]["recipient"] == oncologist
