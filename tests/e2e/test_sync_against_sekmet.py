"""End to end against a real FHIR server (sekmet-fhir): load, sync, read back, sync again.

the server holds our Observations for every generated patient, and a
second sync creates no duplicates. Logs never carry patient identifiers (docs/architecture.md).
"""

from __future__ import annotations

import io
from collections import Counter
from contextlib import redirect_stderr
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from service.adapters.fhir import codes
from service.adapters.persistence.database import migrate
from service.bootstrap import Container
from service.config import Settings
from service.demo.runner import count_response_groups, load_patients, transaction_bundle
from service.demo.sekmet import SekmetServer
from service.observability import configure_logging
from service.synthetic import Trajectory, generate_patient

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet")]

AS_OF = date(2026, 11, 1)


def our_observation_ids(base_url: str) -> list[str]:
    """Every Observation carrying our assessment identifier system, over all pages."""
    ids: list[str] = []
    url: str | None = f"{base_url}/Observation"
    params: dict[str, str] | None = {"identifier": f"{codes.IDENTIFIER_ASSESSMENT}|", "_count": "500"}
    with httpx.Client(timeout=30) as http:
        while url:
            page = http.get(url, params=params).json()
            params = None
            ids += [
                e["resource"]["id"]
                for e in page.get("entry", [])
                if e["resource"]["resourceType"] == "Observation"
            ]
            url = next((lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None)
    return ids


def count_by_identifier(base_url: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    url: str | None = f"{base_url}/Observation"
    params: dict[str, str] | None = {"_count": "500"}
    with httpx.Client(timeout=30) as http:
        while url:
            page = http.get(url, params=params).json()
            params = None
            for e in page.get("entry", []):
                for ident in e["resource"].get("identifier", []):
                    if ident.get("system") == codes.IDENTIFIER_ASSESSMENT:
                        counts[ident["value"]] += 1
            url = next((lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None)
    return counts


async def test_sync_writes_every_patient_once_and_a_second_sync_duplicates_nothing(
    sekmet_server: SekmetServer, tmp_path: Path
) -> None:
    trajectories = list(Trajectory)
    patients = [
        generate_patient(t, seed=100 + i, patient_id=f"e2e-sync-{i:02d}") for i, t in enumerate(trajectories)
    ]
    await load_patients(sekmet_server.base_url, [transaction_bundle(p.resources) for p in patients])
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        fhir_base_url=sekmet_server.base_url,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        log_json=True,
        patient_key_salt="e2e-salt",  # type: ignore[arg-type]
    )
    migrate(settings.database_url)
    only = [p.truth.patient_id for p in patients]
    from service.application.ports import PatientRef

    logs = io.StringIO()
    with redirect_stderr(logs):
        configure_logging("info", json=True)
        async with Container(settings) as box:
            sync = box.require_sync()
            first = await sync(as_of=AS_OF, only=[PatientRef(pid) for pid in only])
            second = await sync(as_of=AS_OF, only=[PatientRef(pid) for pid in only])

    assert first.patients_assessed == len(patients), first.issues
    assert first.created > 0
    assert second.created == 0
    assert second.unchanged == first.created
    counts = count_by_identifier(sekmet_server.base_url)
    assert counts, "no Observation with our identifier on the server"
    assert max(counts.values()) == 1, "an identifier was written twice"
    groups = await count_response_groups(sekmet_server.base_url)
    assert sum(groups.values()) >= len(patients)
    # Logs name patients only by their salted key, never by FHIR id.
    text = logs.getvalue()
    assert "assessment.written" in text
    for pid in only:
        assert pid not in text


async def test_a_commit_repeated_after_a_lost_answer_stores_nothing_twice(
    sekmet_server: SekmetServer,
) -> None:
    # docs/fhir/write-back.md, "Nothing created twice": the same transaction committed twice (the
    # writer's answer was lost) adds no result and no Provenance on a real server (`_tag` condition).
    from service.adapters.fhir.client import FhirClient, create_http_client
    from service.adapters.fhir.inbound import patient_input
    from service.adapters.fhir.writer import provenance_tag
    from service.adapters.fhir.writer import transaction_bundle as results_transaction
    from service.application.assess import AssessPatients
    from service.domain.parameters import AssessmentParameters

    patient = generate_patient(Trajectory.PR, seed=77, patient_id="e2e-retry-01")
    await load_patients(sekmet_server.base_url, [transaction_bundle(patient.resources)])
    inputs = patient_input("e2e-retry-01", patient.resources)
    assessment = AssessPatients(AssessmentParameters(), key_salt="e2e").one(inputs, as_of=AS_OF).assessment
    assert assessment is not None
    recorded = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    bundle, plan = results_transaction(
        assessment, inputs, version="e2e", recorded=recorded, run_id="e2e-run-1"
    )
    tag = provenance_tag("e2e-run-1", "e2e-retry-01")
    async with create_http_client(timeout_s=30.0) as http:
        client = FhirClient(http, sekmet_server.base_url)
        first = await client.write_bundle(bundle)
        again = await client.write_bundle(bundle)
        provenances = [r async for r in client.search("Provenance", {"_tag": f"{codes.TAG_WRITE}|{tag}"})]
        ours = [
            r
            async for r in client.search(
                "Observation", {"patient": "e2e-retry-01", "identifier": f"{codes.IDENTIFIER_ASSESSMENT}|"}
            )
        ]
    assert all(e["response"]["status"].startswith("201") for e in first["entry"][1:])
    assert all(e["response"]["status"].startswith("200") for e in again["entry"])  # found, not created
    assert len(provenances) == 1
    assert len(ours) == len(plan.written)
