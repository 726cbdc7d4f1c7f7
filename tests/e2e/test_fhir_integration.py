"""Acceptance against a real FHIR server (sekmet-fhir): sync, incremental sync, bulk, notifications.

- a full cohort sync, and a second sync that writes nothing (no duplicate, no Provenance);
- an incremental sync (`since=`) that re-assesses only the patient whose Observation changed;
- a Bulk Data export (`Group/$export`) giving the same assessments as the REST reader;
- a subscription notification posted to the app's hook that re-assesses the patient and
  rewrites the changed result (`status` `amended`).

One full-cohort test (the pan-tumour cohort, 177 patients); the others use a few patients with
ids of their own, so the tests do not depend on each other's data on the shared server.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from service.adapters.fhir import codes
from service.adapters.fhir.bulk import BulkMeasurementSource, FhirBulkExport, NdjsonSpool
from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.application.clock import today
from service.application.ports import PatientRef
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer
from service.synthetic import Trajectory, generate_patient, pan_tumour_cohort

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet")]

AS_OF = date(2026, 11, 1)
LONGEST_DIAMETER = "33728-7"


def settings_for(server: SekmetServer, tmp_path: Path, **extra: Any) -> Settings:
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        fhir_base_url=server.base_url,
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        log_json=False,
        patient_key_salt="e2e-salt",
        alerts_enabled=False,
        **extra,
    )
    migrate(settings.database_url)
    return settings


def all_pages(base_url: str, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    url: str | None = f"{base_url}/{resource_type}"
    query: dict[str, str] | None = {**params, "_count": "500"}
    with httpx.Client(timeout=60) as http:
        while url:
            page = http.get(url, params=query).json()
            query = None
            found += [
                e["resource"] for e in page.get("entry", []) if e["resource"]["resourceType"] == resource_type
            ]
            url = next((lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None)
    return found


def total(base_url: str, resource_type: str) -> int:
    with httpx.Client(timeout=60) as http:
        count: int = http.get(f"{base_url}/{resource_type}", params={"_summary": "count"}).json()["total"]
    return count


def our_results(base_url: str, patient_id: str) -> list[dict[str, Any]]:
    return all_pages(
        base_url, "Observation", {"patient": patient_id, "identifier": f"{codes.IDENTIFIER_ASSESSMENT}|"}
    )


def grow_latest_lesion(base_url: str, patient_id: str) -> dict[str, Any]:
    """PUT the patient's latest lesion measurement back three times larger (a real clinical change)."""
    measurements = [
        o
        for o in all_pages(base_url, "Observation", {"patient": patient_id})
        if any(c.get("code") == "21889-1" for c in o["code"].get("coding", []))
        and any(
            comp["code"]["coding"][0]["code"] == LONGEST_DIAMETER and "valueQuantity" in comp
            for comp in o.get("component", [])
        )
    ]
    latest = max(measurements, key=lambda o: o.get("effectiveDateTime", ""))
    changed = copy.deepcopy(latest)
    for comp in changed["component"]:
        if comp["code"]["coding"][0]["code"] == LONGEST_DIAMETER and "valueQuantity" in comp:
            comp["valueQuantity"]["value"] = comp["valueQuantity"]["value"] * 3 + 10
    changed.pop("meta", None)
    with httpx.Client(timeout=30) as http:
        reply = http.put(
            f"{base_url}/Observation/{latest['id']}",
            content=orjson.dumps(changed),
            headers={"Content-Type": "application/fhir+json"},
        )
    assert reply.status_code == 200, reply.text
    written: dict[str, Any] = reply.json()
    return written


async def load(server: SekmetServer, prefix: str, n: int, seed: int) -> list[str]:
    trajectories = [Trajectory.PR, Trajectory.SD, Trajectory.PD, Trajectory.DR_TARGET][:n]
    patients = [
        generate_patient(t, seed=seed + i, patient_id=f"{prefix}-{i}") for i, t in enumerate(trajectories)
    ]
    await load_patients(server.base_url, [transaction_bundle(p.resources) for p in patients])
    return [p.truth.patient_id for p in patients]


# --- full cohort ------------------------------------------------------------------------------------
async def test_full_cohort_sync_then_a_second_sync_writes_nothing(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    cohort = pan_tumour_cohort(2024)
    await load_patients(sekmet_server.base_url, [transaction_bundle(p.resources) for p in cohort.patients])
    ids = [p.truth.patient_id for p in cohort.patients]
    only = [PatientRef(i) for i in ids]
    async with Container(settings_for(sekmet_server, tmp_path)) as box:
        sync = box.require_sync()
        first = await sync(as_of=AS_OF, only=only)
        provenances = total(sekmet_server.base_url, "Provenance")
        second = await sync(as_of=AS_OF, only=only)
    assert first.patients_assessed == len(ids) == 177
    assert first.created + first.updated + first.unchanged > 0
    assert (second.created, second.updated) == (0, 0)
    assert second.unchanged == first.created + first.updated + first.unchanged
    # A no-op re-run adds nothing to the server, not even a Provenance.
    assert total(sekmet_server.base_url, "Provenance") == provenances
    # No identifier twice, and each patient's ResponseGroup equals the generated truth (a sample).
    for patient in cohort.patients[:: max(1, len(ids) // 12)]:
        results = our_results(sekmet_server.base_url, patient.truth.patient_id)
        values = Counter(
            i["value"] for o in results for i in o["identifier"] if i["system"] == codes.IDENTIFIER_ASSESSMENT
        )
        assert max(values.values()) == 1, "a result was written twice"
        (group,) = [o for o in results if o["code"]["coding"][0]["code"] == codes.CODE_RESPONSE_GROUP]
        assert group["valueCodeableConcept"]["coding"][0]["code"] == patient.truth.response_group


# --- incremental ------------------------------------------------------------------------------------
async def test_incremental_sync_reassesses_only_the_patient_whose_observation_changed(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    ids = await load(sekmet_server, "e2e-incr", 3, seed=300)
    async with Container(settings_for(sekmet_server, tmp_path)) as box:
        sync = box.require_sync()
        await sync(as_of=AS_OF, only=[PatientRef(i) for i in ids])
        await anyio.sleep(0.05)
        since = datetime.now(UTC)
        await anyio.sleep(0.05)
        grow_latest_lesion(sekmet_server.base_url, ids[0])
        incremental = await sync(as_of=AS_OF, since=since)
    assert incremental.patients_seen == 1  # our own write-backs are not changes
    assert incremental.patients_assessed == 1
    assert incremental.updated + incremental.created >= 1
    amended = [o for o in our_results(sekmet_server.base_url, ids[0]) if o["status"] == "amended"]
    assert amended, "the changed patient's results were not amended"
    for other in ids[1:]:
        assert all(o["status"] == "final" for o in our_results(sekmet_server.base_url, other))


# --- bulk ------------------------------------------------------------------------------------------
async def test_group_bulk_export_gives_the_same_assessments_as_rest(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    ids = await load(sekmet_server, "e2e-bulk", 4, seed=400)
    group: dict[str, Any] = {
        "resourceType": "Group",
        "id": "e2e-bulk-group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{i}"}} for i in ids],
    }
    with httpx.Client(timeout=30) as http:
        reply = http.put(
            f"{sekmet_server.base_url}/Group/{group['id']}",
            content=orjson.dumps(group),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert reply.status_code in (200, 201), reply.text
    async with Container(settings_for(sekmet_server, tmp_path)) as box:
        assert box.fhir is not None
        assert box.fhir_source is not None
        rest = {
            i: box.assessor.one(await box.fhir_source.timeline_for(PatientRef(i)), as_of=AS_OF) for i in ids
        }
        with NdjsonSpool() as spool:
            exporter = FhirBulkExport(box.fhir, page_lines=7, min_poll_s=0.2)
            manifest = await exporter.run(spool, "group", group_id=group["id"])
            assert manifest.output
            assert spool.stats.max_page <= 7  # streamed in pages, never the whole file
            source = BulkMeasurementSource(spool, box.fhir_source)
            exported = [ref.patient_id async for ref in source.patients()]
            bulk = {
                i: box.assessor.one(await source.timeline_for(PatientRef(i)), as_of=AS_OF) for i in exported
            }
            await box.require_sync()(as_of=AS_OF, only=[PatientRef(i) for i in ids])
            report = await box.bulk_sync(source)(as_of=AS_OF)
    assert sorted(exported) == sorted(ids)
    for patient_id in ids:
        assert bulk[patient_id].assessment is not None
        assert bulk[patient_id].assessment == rest[patient_id].assessment
    # Written back by REST first: the bulk run finds every result already there.
    assert (report.patients_assessed, report.created, report.updated) == (len(ids), 0, 0)


# --- notifications ----------------------------------------------------------------------------------
@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """The app with its lifespan (background re-assessment) running, in this task."""
    box = Container(settings)
    app = create_app(settings, container=box)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://oncoresponse.test") as client:
            yield client, box


def backport_notification(focus: str, events: int) -> dict[str, Any]:
    """An R5 Backport id-only event-notification Bundle (Subscriptions R5 Backport IG)."""
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/e2e"}},
            {
                "name": "topic",
                "valueCanonical": "http://oncoresponse.org/fhir/SubscriptionTopic/lesion-measured",
            },
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            *(
                {
                    "name": "notification-event",
                    "part": [
                        {"name": "event-number", "valueString": str(n)},
                        {"name": "focus", "valueReference": {"reference": focus}},
                    ],
                }
                for n in range(1, events + 1)
            ),
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": status}],
    }


async def test_notification_triggers_one_debounced_reassessment_that_rewrites_the_result(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    settings = settings_for(
        sekmet_server,
        tmp_path,
        subscription_hook_token="hook-secret",
        reassess_debounce_s=0.3,
    )
    async with running_app(settings) as (client, box):
        await _notify_and_check(sekmet_server, client, box)


async def _notify_and_check(sekmet_server: SekmetServer, client: httpx.AsyncClient, box: Container) -> None:
    ids = await load(sekmet_server, "e2e-hook", 1, seed=500)
    await box.require_sync()(as_of=today(), only=[PatientRef(ids[0])])
    changed = grow_latest_lesion(sekmet_server.base_url, ids[0])
    headers = {"Authorization": "Bearer hook-secret", "Content-Type": "application/fhir+json"}
    for _ in range(3):  # a burst for one patient -> one re-assessment
        reply = await client.post(
            "/fhir/subscription-hook",
            content=orjson.dumps(backport_notification(f"Observation/{changed['id']}", events=2)),
            headers=headers,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["resourceType"] == "OperationOutcome"
    reassess = box.require_reassess()
    with anyio.fail_after(30):
        while reassess.runs < 1:
            await anyio.sleep(0.05)
    await anyio.sleep(0.5)  # nothing else is queued
    assert reassess.runs == 1
    assert reassess.last_report is not None
    assert reassess.last_report.patients_seen == 1
    assert reassess.last_report.updated + reassess.last_report.created >= 1
    assert any(o["status"] == "amended" for o in our_results(sekmet_server.base_url, ids[0]))
    refused = await client.post(
        "/fhir/subscription-hook", content=b"{}", headers={**headers, "Authorization": "Bearer no"}
    )
    assert refused.status_code == 401
