"""Alert and CDS Hooks endpoints over ASGI (SQLite in tmp, no FHIR server)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from service.adapters.fhir import codes
from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.application.alerts import plan_alerts
from service.application.assess import AssessPatients
from service.bootstrap import Container
from service.config import Settings
from service.domain.parameters import AssessmentParameters
from tests.unit.alerts.test_outbox_transaction import dr_patient

ISSUER = "https://ehr.example.org"
AUD = "http://testserver/cds-services/atypical-response"
EHR_KEY = ec.generate_private_key(ec.SECP256R1())


def ehr_jwks() -> str:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EHR_KEY.public_key()))
    jwk.update({"kid": "k1", "alg": "ES256"})
    return json.dumps({"keys": [jwk]})


def bearer(**claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex, **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, EHR_KEY, algorithm="ES256", headers={"kid": "k1"})}


def hook(patient_id: str, prefetch: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/onc", "patientId": patient_id},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


async def record_dr_alert(box: Container) -> None:
    """Assess the generated DR patient `p-dr` and record its assessment with its one DR alert."""
    assert box.store is not None
    assessment = (
        AssessPatients(AssessmentParameters(), key_salt="x")
        .one(dr_patient("p-dr"), as_of=date(2030, 1, 1))
        .assessment
    )
    assert assessment is not None
    await box.store.record_with_alerts([assessment], run_id="run-1", alerts=plan_alerts(assessment))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = Settings(
        environment="test",
        api_auth="off",  # the clinical API without tokens (tests/unit/api/test_clinical_auth.py covers them)
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        cds_hooks_trusted_issuers={ISSUER: ehr_jwks()},
    )
    migrate(settings.database_url)
    async with Container(settings) as box:
        await record_dr_alert(box)
        transport = httpx.ASGITransport(app=create_app(settings, container=box), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, box


async def test_alerts_are_listed_filtered_by_state_and_acknowledged(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    http, _ = api
    listed = (await http.get("/alerts")).json()
    assert listed["total"] == 1
    (alert,) = listed["items"]
    assert (alert["kind"], alert["status"], alert["patient_id"]) == ("DR", "pending", "p-dr")
    assert alert["payload"]["next_step"]["reassess_within_weeks"] == [4, 8]
    assert (await http.get("/alerts", params={"status": "delivered"})).json()["total"] == 0
    acked = (await http.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "dr.house"})).json()
    assert acked["acknowledged_by"] == "dr.house"
    again = (await http.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "someone-else"})).json()
    assert again["acknowledged_by"] == "dr.house"  # the first acknowledgement is kept


async def test_unknown_alert_is_a_problem_json_404(api: tuple[httpx.AsyncClient, Container]) -> None:
    http, _ = api
    response = await http.post("/alerts/999/acknowledge", json={"by": "x"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/alert-not-found"
    assert (await http.get("/alerts", params={"status": "bogus"})).status_code == 422


async def test_discovery_lists_the_patient_view_service_with_prefetch_templates(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    http, _ = api
    (service,) = (await http.get("/cds-services")).json()["services"]
    assert (service["id"], service["hook"]) == ("atypical-response", "patient-view")
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "{{context.patientId}}" in service["prefetch"]["atypicalResponses"]


async def test_a_signed_patient_view_gets_a_warning_card_from_the_database(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    http, _ = api
    response = await http.post("/cds-services/atypical-response", json=hook("p-dr"), headers=bearer())
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140
    assert "Dissociated response" in card["summary"]
    assert "| LUN | grows |" in card["detail"]
    assert "| LIV | shrinks |" in card["detail"]
    assert card["source"]["label"]
    assert card["links"] == [
        # CDS Hooks 2.0: a "smart" link is the SMART app's launch URL, launched by the EHR
        {"label": "Open the lesion view", "url": "http://testserver/app/patient/launch", "type": "smart"},
        {"label": "Lesion table", "url": "http://testserver/patients/p-dr/lesion-table", "type": "absolute"},
    ]
    table = (await http.get("/patients/p-dr/lesion-table")).json()
    assert {row["lesion_id"] for row in table["lesions"]} == {"LIV", "LUN"}


async def test_lesion_table_of_a_patient_never_assessed_is_a_patient_not_assessed_problem(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    """Not "alert not found": the caller asked for a patient, and the fix is to assess it."""
    http, _ = api
    response = await http.get("/patients/p-unknown/lesion-table")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/problems/patient-not-assessed")
    assert problem["title"] == "Patient not assessed"
    assert "p-unknown" in problem["detail"]


async def test_prefetch_is_used_for_a_patient_the_service_never_assessed(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    http, _ = api
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": codes.CS_ONCORESPONSE, "code": codes.CODE_ATYPICAL_RESPONSE}]},
        "valueCodeableConcept": {"coding": [{"system": codes.CS_ATYPICAL_RESPONSE, "code": "PsPD"}]},
        "effectiveDateTime": "2024-06-01",
        "component": [
            {
                "code": {"coding": [{"system": codes.CS_ONCORESPONSE, "code": "timepoint-index"}]},
                "valueInteger": 2,
            }
        ],
    }
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": observation}]}
    response = await http.post(
        "/cds-services/atypical-response",
        json=hook("p-other", {"atypicalResponses": bundle}),
        headers=bearer(),
    )
    (card,) = response.json()["cards"]
    assert card["summary"].startswith("Pseudoprogression")
    empty = {"resourceType": "Bundle", "type": "searchset"}
    response = await http.post(
        "/cds-services/atypical-response", json=hook("p-none", {"atypicalResponses": empty}), headers=bearer()
    )
    assert response.json() == {"cards": []}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer " + jwt.encode({"iss": ISSUER, "aud": AUD}, "", algorithm="none")},
        "wrong-aud",
        "expired",
    ],
)
async def test_unsigned_wrong_audience_and_expired_calls_are_401_problems(
    api: tuple[httpx.AsyncClient, Container], headers: Any
) -> None:
    http, _ = api
    if headers == "wrong-aud":
        headers = bearer(aud="http://testserver/cds-services/another-service")
    elif headers == "expired":
        now = int(time.time())
        headers = bearer(iat=now - 900, exp=now - 300)
    response = await http.post("/cds-services/atypical-response", json=hook("p-dr"), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "cards" not in response.json()
