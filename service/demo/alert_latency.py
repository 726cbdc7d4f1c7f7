"""From a new scan to the alert on a real FHIR server, through a real Subscription, timed.

Used by the end-to-end tests (tests/e2e/test_subscriptions_against_sekmet.py) and by
`benchmarks/alert_latency.py`. One measurement:

1. a generated DR patient (new lesion at its second evaluation) is loaded up to the scan before
   the DR one;
2. the service runs as a real HTTP server on 127.0.0.1, and a Subscription of the chosen form
   points at its hook (`FORMS`; R4 ones registered by the service itself at start, Backport ones
   created here with a topic of our own, since sekmet-fhir's built-in topics cover no
   Observation);
3. the DR scan (its lesion Observations, the new lesion's BodyStructure, then the ImagingStudy)
   is written in one transaction; the time from its commit until both the Communication and the
   Flag are on the server is the delay, and the time from the start of the re-assessment run
   until then is the work.

The Subscriptions made are deleted at the end, so that the shared server notifies nobody gone.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import orjson

from service.adapters.persistence.database import migrate
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import free_port
from service.synthetic import GeneratedPatient, Trajectory, generate_patient
from service.synthetic.trajectory import TrajectoryOptions

__all__ = [
    "FORMS",
    "LatencyMeasure",
    "NewScan",
    "delete_subscriptions",
    "drain_notifications",
    "latency_settings",
    "measure_alert_latency",
    "running_service",
    "split_at_dr_scan",
    "subscribe_backport",
    "wait_for_alert_on_server",
]

FORMS: Final = (
    "r4-full-resource",
    "r4-empty",
    "backport-id-only",
    "backport-full-resource",
    "backport-empty",
)
FHIR_JSON: Final = "application/fhir+json"
TOPIC_URL: Final = "http://oncoresponse.example/fhir/SubscriptionTopic/lesion-measured"
_ST: Final = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
_BACKPORT: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


@dataclass(frozen=True, slots=True)
class NewScan:
    """A patient's resources up to the scan before the DR one, and that DR scan."""

    before: list[dict[str, Any]]
    scan: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LatencyMeasure:
    form: str
    quiet_s: float  # the configured debounce quiet period
    delay_s: float  # DR scan committed -> Communication and Flag on the server
    work_s: float  # start of the re-assessment run -> Communication and Flag on the server
    reassessed: tuple[str, ...]  # patients re-assessed after the scan was committed

    @property
    def beyond_debounce_s(self) -> float:
        return self.delay_s - self.quiet_s

    @property
    def until_run_s(self) -> float:
        """Commit -> the re-assessment run's start: notification transport plus the debounce window."""
        return self.delay_s - self.work_s


def _date_of(resource: dict[str, Any]) -> str | None:
    for key in ("effectiveDateTime", "started", "occurrenceDateTime"):
        value = resource.get(key)
        if isinstance(value, str):
            return value[:10]
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return str(period["start"])[:10]
    return None


def split_at_dr_scan(patient: GeneratedPatient) -> NewScan:
    """Everything before the DR scan, and the DR scan itself (later ones are left out)."""
    dr = patient.truth.dr
    if dr is None:
        raise ValueError("the patient has no DR timepoint")
    scan_dates = (patient.truth.baseline_date, *patient.truth.timepoint_dates)
    first_seen = {
        str(lesion["body_structure"]): scan_dates[int(lesion["first_seen_index"])]
        for lesion in patient.truth.lesions
    }
    before: list[dict[str, Any]] = []
    scan: list[dict[str, Any]] = []
    for resource in patient.resources:
        reference = f"{resource['resourceType']}/{resource['id']}"
        on = first_seen.get(reference) or _date_of(resource)
        if on is None or on < dr.timepoint_date:
            before.append(resource)
        elif on == dr.timepoint_date:
            scan.append(resource)
    scan.sort(key=lambda r: r["resourceType"] == "ImagingStudy")  # the study is completed last
    return NewScan(before, scan)


@asynccontextmanager
async def running_service(settings: Settings, port: int) -> AsyncIterator[Container]:
    """The app as a real HTTP server on 127.0.0.1:`port` (the FHIR server calls its hook)."""
    import uvicorn

    from service.api.app import create_app

    box = Container(settings)
    config = uvicorn.Config(
        create_app(settings, container=box), host="127.0.0.1", port=port, log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:
                await anyio.sleep(0.02)
        try:
            yield box
        finally:
            server.should_exit = True


def _backport_topic() -> dict[str, Any]:
    triggers = [
        {
            "url": f"{_ST}.resourceTrigger",
            "extension": [
                {"url": "resource", "valueUri": f"http://hl7.org/fhir/StructureDefinition/{resource}"},
                {"url": "supportedInteraction", "valueCode": "create"},
                {"url": "supportedInteraction", "valueCode": "update"},
                {"url": "fhirPathCriteria", "valueString": "true"},
            ],
        }
        for resource in ("Observation", "ImagingStudy", "DiagnosticReport")
    ]
    return {
        "resourceType": "Basic",
        "id": "oncoresponse-lesion-measured",
        "modifierExtension": [{"url": f"{_ST}.status", "valueCode": "active"}],
        "extension": [
            {"url": f"{_ST}.url", "valueUri": TOPIC_URL},
            {"url": f"{_ST}.title", "valueString": "Lesion measured or imaging study changed"},
            *triggers,
        ],
        "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]},
    }


def _backport_subscription(endpoint: str, content: str, hook_token: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{_BACKPORT}/backport-subscription"]},
        "status": "requested",
        "reason": "oncoresponse latency measurement",
        "criteria": TOPIC_URL,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": FHIR_JSON,
            "_payload": {
                "extension": [{"url": f"{_BACKPORT}/backport-payload-content", "valueCode": content}]
            },
            "header": [f"Authorization: Bearer {hook_token}"],
        },
    }


async def _put(http: httpx.AsyncClient, url: str, resource: dict[str, Any]) -> dict[str, Any]:
    reply = await http.request(
        "PUT" if "id" in resource else "POST",
        url,
        content=orjson.dumps(resource),
        headers={"Content-Type": FHIR_JSON},
    )
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


async def subscribe_backport(
    http: httpx.AsyncClient, base_url: str, endpoint: str, content: str, hook_token: str
) -> None:
    """A Backport IG Subscription of `content` (empty, id-only, full-resource) to our topic; active."""
    await _put(http, f"{base_url}/Basic/oncoresponse-lesion-measured", _backport_topic())
    subscription = _backport_subscription(endpoint, content, hook_token)
    created = await _put(http, f"{base_url}/Subscription", subscription)
    with anyio.fail_after(30):  # the handshake to our hook makes it active
        while (await http.get(f"{base_url}/Subscription/{created['id']}")).json().get("status") != "active":
            await anyio.sleep(0.05)


async def delete_subscriptions(http: httpx.AsyncClient, base_url: str, endpoint: str) -> None:
    found = (await http.get(f"{base_url}/Subscription", params={"url": endpoint, "_count": "100"})).json()
    for entry in found.get("entry", []):
        await http.delete(f"{base_url}/Subscription/{entry['resource']['id']}")


async def drain_notifications(box: Container, quiet_s: float = 1.0, timeout_s: float = 30.0) -> None:
    """Keep the hook up until the server has sent what it queued (our own write-backs notify too).

    A notification to a hook that is gone is retried with back-off by the server, which holds up
    the notifications of the next measurement on a shared server.
    """
    hook_requests = box.metrics.http_requests
    with anyio.move_on_after(timeout_s):
        seen = -1.0
        while True:
            total = sum(m.value for metric in hook_requests.collect() for m in metric.samples)
            if total == seen:
                return
            seen = total
            await anyio.sleep(quiet_s)


async def wait_for_alert_on_server(
    http: httpx.AsyncClient, base_url: str, patient_id: str, timeout_s: float
) -> float:
    """Monotonic time at which both the Communication and the Flag of the patient are found."""
    with anyio.fail_after(timeout_s):
        while True:
            found = []
            for resource_type in ("Communication", "Flag"):
                page = (await http.get(f"{base_url}/{resource_type}", params={"patient": patient_id})).json()
                found.append(bool(page.get("entry")))
            if all(found):
                return time.monotonic()
            await anyio.sleep(0.05)


def latency_settings(
    base_url: str,
    database: Path,
    port: int,
    form: str,
    *,
    hook_token: str,
    quiet_s: float,
    debounce_s: float = 10.0,
) -> Settings:
    """The service's settings for one measurement (only notifications drive re-assessment)."""
    endpoint = f"http://127.0.0.1:{port}/fhir/subscription-hook"
    r4 = form.startswith("r4-")
    return Settings(
        environment="test",
        api_auth="off",
        fhir_base_url=base_url,
        database_url=f"sqlite:///{database}",
        patient_key_salt="latency-salt",
        subscription_hook_token=hook_token,
        subscription_endpoint=endpoint if r4 else None,
        subscription_payload="full-resource" if form == "r4-full-resource" else "empty",
        subscription_criteria=["Observation?", "ImagingStudy?"],
        fhir_poll_interval_s=0,  # only notifications drive the re-assessment here
        reassess_quiet_s=quiet_s,
        reassess_debounce_s=debounce_s,
        log_json=True,
    )


async def measure_alert_latency(
    base_url: str,
    form: str,
    work_dir: Path,
    *,
    quiet_s: float = 2.0,
    seed: int = 707,
    timeout_s: float = 60.0,
) -> LatencyMeasure:
    """One DR scan through a Subscription of `form` to the Communication and Flag (module doc)."""
    if form not in FORMS:
        raise ValueError(f"unknown notification form {form!r} (one of {', '.join(FORMS)})")
    patient = generate_patient(
        Trajectory.DR_NEW_LESION,
        seed=seed,
        patient_id=f"lat-{uuid.uuid4().hex[:12]}",
        options=TrajectoryOptions(dr_timepoint=2),
    )
    split = split_at_dr_scan(patient)
    await load_patients(base_url, [transaction_bundle(split.before)])
    port = free_port()
    hook_token = secrets.token_urlsafe(24)
    settings = latency_settings(
        base_url, work_dir / f"{patient.patient_id}.db", port, form, hook_token=hook_token, quiet_s=quiet_s
    )
    migrate(settings.database_url)
    endpoint = str(settings.subscription_endpoint or f"http://127.0.0.1:{port}/fhir/subscription-hook")
    async with httpx.AsyncClient(timeout=30) as http, running_service(settings, port) as box:
        try:
            if box.subscriptions is not None:
                with anyio.fail_after(30):
                    while not box.subscriptions.active:
                        await anyio.sleep(0.05)
            else:
                content = form.removeprefix("backport-")
                await subscribe_backport(http, base_url, endpoint, content, hook_token)
            reassess = box.require_reassess()
            await load_patients(base_url, [transaction_bundle(split.scan)])
            committed = time.monotonic()
            seen = await wait_for_alert_on_server(http, base_url, patient.patient_id, timeout_s)
            runs = [r for r in reassess.recent_runs if r.finished_at >= committed]
            mine = [r for r in runs if patient.patient_id in r.patient_ids and r.started_at <= seen]
            started = mine[-1].started_at if mine else committed
            return LatencyMeasure(
                form=form,
                quiet_s=quiet_s,
                delay_s=seen - committed,
                work_s=seen - started,
                reassessed=tuple(p for r in runs for p in r.patient_ids),
            )
        finally:
            await delete_subscriptions(http, base_url, endpoint)
            await drain_notifications(box)
