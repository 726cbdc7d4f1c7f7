"""A new scan that makes a patient DR reaches the oncologist through a real Subscription.

Against sekmet-fhir, for every notification form the hook understands (docs/fhir/subscriptions.md):
R4 criteria-based with payload (the server PUTs each resource to `<endpoint>/<type>/<id>`) and
empty (a ping, answered by the `_lastUpdated` watermark search), and the Subscriptions R5
Backport IG's id-only, full-resource and empty payloads. Each form must bring the Communication
and the Flag to the server. The delay is measured and recorded with `record_property`, but not
asserted: a timing depends on the machine, so the goal (under 2 s beyond the debounce) is judged
by benchmarks/alert_latency.py against the work itself (docs/operations/alert-latency.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.application.reassess import ReassessChangedPatients
from service.bootstrap import Container
from service.demo.alert_latency import (
    FORMS,
    delete_subscriptions,
    drain_notifications,
    latency_settings,
    measure_alert_latency,
    running_service,
    split_at_dr_scan,
)
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer, free_port
from service.synthetic import Trajectory, generate_patient
from service.synthetic.trajectory import TrajectoryOptions

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet")]

QUIET_S = 1.0


@pytest.mark.parametrize("form", FORMS)
async def test_new_dr_scan_reaches_the_oncologist_through_the_subscription(
    sekmet_server: SekmetServer, tmp_path: Path, form: str, record_property: Callable[[str, object], None]
) -> None:
    measure = await measure_alert_latency(sekmet_server.base_url, form, tmp_path, quiet_s=QUIET_S)
    record_property("delay_s", round(measure.delay_s, 3))
    record_property("work_s", round(measure.work_s, 3))
    record_property("beyond_debounce_s", round(measure.beyond_debounce_s, 3))
    # measure_alert_latency returns only once the Communication and the Flag are on the server.
    assert measure.work_s > 0
    assert any(patient.startswith("lat-") for patient in measure.reassessed), measure


async def test_a_ping_reassesses_exactly_the_patients_changed_since_the_previous_one(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    """R4 Subscriptions without payload: every notification is a ping; only new changes count."""
    base_url = sekmet_server.base_url
    patients = {
        name: generate_patient(
            Trajectory.DR_NEW_LESION,
            seed=seed,
            patient_id=f"ping-{name}-{uuid.uuid4().hex[:8]}",
            options=TrajectoryOptions(dr_timepoint=2),
        )
        for name, seed in (("a", 811), ("b", 812), ("c", 813))
    }
    scans = {name: split_at_dr_scan(p) for name, p in patients.items()}
    await load_patients(base_url, [transaction_bundle(s.before) for s in scans.values()])
    port = free_port()
    settings = latency_settings(
        base_url, tmp_path / "ping.db", port, "r4-empty", hook_token="ping-hook-token", quiet_s=QUIET_S
    )
    migrate(settings.database_url)
    async with httpx.AsyncClient(timeout=30) as http, running_service(settings, port) as box:
        try:
            watch, reassess = box.subscriptions, box.require_reassess()
            assert watch is not None
            with anyio.fail_after(30):
                while not watch.active:
                    await anyio.sleep(0.05)
            await reassess.poll_once()  # the start-up look-back (loads before the start) is done
            await settled(reassess)
            before = len(reassess.recent_runs)

            await load_patients(base_url, [transaction_bundle(scans[n].scan) for n in ("a", "b")])
            await settled(reassess)
            after_ab = [p for run in list(reassess.recent_runs)[before:] for p in run.patient_ids]
            middle = len(reassess.recent_runs)

            await load_patients(base_url, [transaction_bundle(scans["c"].scan)])
            await settled(reassess)
            after_c = [p for run in list(reassess.recent_runs)[middle:] for p in run.patient_ids]
        finally:
            await delete_subscriptions(http, base_url, str(settings.subscription_endpoint))
            await drain_notifications(box)
    ids = {name: p.patient_id for name, p in patients.items()}
    assert set(after_ab) == {ids["a"], ids["b"]}, after_ab
    assert set(after_c) == {ids["c"]}, after_c  # a and b, changed before the previous ping, not again


async def settled(reassess: ReassessChangedPatients) -> None:
    """Wait until the notifications have arrived and nothing is scheduled, polled or re-assessed."""
    with anyio.fail_after(90):
        quiet_since = None
        while True:
            runs = len(reassess.recent_runs)
            await anyio.sleep(0.2)
            now = anyio.current_time()
            if not reassess.idle or len(reassess.recent_runs) != runs:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET_S + 2.0:
                return


@pytest.mark.parametrize("register", [False, True])
async def test_a_subscription_the_server_put_in_error_is_reported_and_re_requested(
    sekmet_server: SekmetServer, tmp_path: Path, register: bool
) -> None:
    """FHIR R4 Subscription.status `error`: notifications are lost. /readyz says so (degraded, still
    200: the service serves and polls), /metrics counts it, and with registering on the service asks
    for it again (`status: requested`), which the server activates."""
    base_url = sekmet_server.base_url
    port = free_port()  # nobody listens: the Subscription is never delivered to here
    settings = latency_settings(
        base_url, tmp_path / "err.db", port, "r4-full-resource", hook_token="err-hook-token", quiet_s=QUIET_S
    ).model_copy(update={"subscription_register": register, "subscription_criteria": ["Observation?"]})
    endpoint = str(settings.subscription_endpoint)
    migrate(settings.database_url)
    async with httpx.AsyncClient(timeout=30) as http:
        broken = {
            "resourceType": "Subscription",
            "status": "error",
            "error": "Delivery failed",
            "reason": "as the server leaves it after failed deliveries",
            "criteria": "Observation?",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
        }
        created = (await http.post(f"{base_url}/Subscription", json=broken)).json()
        try:
            async with Container(settings) as box:
                watch = box.subscriptions
                assert watch is not None
                active = await watch.check()
                transport = httpx.ASGITransport(app=create_app(settings, container=box))
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as app:
                    ready = await app.get("/readyz")
                    metrics = (await app.get("/metrics")).text
            status = (await http.get(f"{base_url}/Subscription/{created['id']}")).json()["status"]
        finally:
            await delete_subscriptions(http, base_url, endpoint)
    assert ready.status_code == 200
    if register:
        assert active
        assert status == "active"  # re-requested, and the server took it up again
        assert ready.json()["status"] == "ready"
        assert 'oncoresponse_subscriptions{status="active"} 1.0' in metrics
    else:
        assert not active
        assert status == "error"
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["subscription"] == f"Subscription/{created['id']} error"
        assert 'oncoresponse_subscriptions{status="error"} 1.0' in metrics
