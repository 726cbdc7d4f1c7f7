"""The demo's live moment: a new scan shows a dissociated response and the oncologist is alerted.

`oncoresponse demo --scenario dr` (the default) runs it after the sync:

1. a generated patient whose second evaluation shows a new lesion while the tumour burden
   shrinks (a dissociated response) is loaded up to the scan before that one;
2. the service starts as a real HTTP server on 127.0.0.1 and registers its own FHIR Subscription
   (R4 rest-hook, full resource) on the FHIR server, so a new scan triggers a re-assessment;
3. the DR scan is posted in one transaction, and the demo waits until the Communication and the
   Flag for that patient are on the FHIR server: the seconds from the scan's commit to then are
   printed;
4. the CDS Hooks `atypical-response` service is called for the patient, as an EHR would on opening
   the chart, with a JWT signed by a throw-away key the service is told to trust; its card is printed.

The scenario's Subscription is deleted at the end. `--once` fails the demo when any step is missing.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx

from service.adapters.alerts.cds_hooks import HOOK, SERVICE_ID
from service.adapters.persistence.database import migrate
from service.config import Settings
from service.demo.alert_latency import (
    delete_subscriptions,
    drain_notifications,
    latency_settings,
    running_service,
    split_at_dr_scan,
    wait_for_alert_on_server,
)
from service.demo.portal import DemoSigner
from service.demo.runner import load_patients, transaction_bundle
from service.demo.sekmet import free_port
from service.synthetic import Trajectory, generate_patient
from service.synthetic.trajectory import TrajectoryOptions

DEMO_EHR_ISSUER: Final = "https://demo.oncoresponse.invalid/ehr"
LIVE_PATIENT_ID: Final = "demo-live-dr"
QUIET_S: Final = 2.0  # debounce quiet period: a scan's resources arrive as several notifications


class LiveScenarioFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class LiveDrOutcome:
    patient_id: str
    alert_after_s: float  # the DR scan committed -> Communication and Flag on the FHIR server
    card_summaries: tuple[str, ...]  # the CDS Hooks cards' summaries for the patient


@dataclass(frozen=True, slots=True)
class _DemoEhr:
    """The EHR's signing key for CDS Hooks calls, trusted by the service for this run only."""

    signer: DemoSigner

    @classmethod
    def fresh(cls) -> _DemoEhr:
        return cls(DemoSigner.fresh())

    @property
    def public_key_pem(self) -> str:
        return self.signer.public_key_pem

    def bearer(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": DEMO_EHR_ISSUER,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return "Bearer " + self.signer.sign(claims)


def _scenario_settings(demo: Settings, database: Path, port: int, ehr: _DemoEhr) -> Settings:
    """The demo's settings plus an R4 Subscription to our hook and the demo EHR as a CDS client."""
    live = latency_settings(
        str(demo.fhir_base_url),
        database,
        port,
        "r4-full-resource",
        hook_token=secrets.token_urlsafe(24),
        quiet_s=QUIET_S,
    )
    return live.model_copy(
        update={
            "environment": demo.environment,
            "patient_key_salt": demo.patient_key_salt,
            "log_level": demo.log_level,
            "log_json": demo.log_json,
            "cds_hooks_trusted_issuers": {DEMO_EHR_ISSUER: ehr.public_key_pem},
        }
    )


async def _cds_cards(http: httpx.AsyncClient, service_url: str, patient_id: str, ehr: _DemoEhr) -> list[Any]:
    call = {
        "hook": HOOK,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/demo-oncologist", "patientId": patient_id},
    }
    answer = await http.post(service_url, json=call, headers={"Authorization": ehr.bearer(service_url)})
    if answer.status_code != 200:
        raise LiveScenarioFailed(f"the CDS Hooks service answered HTTP {answer.status_code}")
    cards: list[Any] = answer.json().get("cards", [])
    return cards


async def run_live_dr(demo: Settings, database: Path, *, timeout_s: float = 120.0) -> LiveDrOutcome:
    """Steps 1-4 of the module doc against the demo's FHIR server and database."""
    base_url = str(demo.fhir_base_url).rstrip("/")
    patient = generate_patient(
        Trajectory.DR_NEW_LESION,
        seed=707,
        patient_id=LIVE_PATIENT_ID,
        options=TrajectoryOptions(dr_timepoint=2),
    )
    split = split_at_dr_scan(patient)
    await load_patients(base_url, [transaction_bundle(split.before)])
    port = free_port()
    ehr = _DemoEhr.fresh()
    settings = _scenario_settings(demo, database, port, ehr)
    migrate(settings.database_url)
    endpoint = str(settings.subscription_endpoint)
    async with httpx.AsyncClient(timeout=30) as http, running_service(settings, port) as box:
        try:
            if box.subscriptions is None:
                raise LiveScenarioFailed("the service registered no FHIR Subscription")
            with anyio.fail_after(30):
                while not box.subscriptions.active:
                    await anyio.sleep(0.05)
            await load_patients(base_url, [transaction_bundle(split.scan)])
            committed = time.monotonic()
            try:
                seen = await wait_for_alert_on_server(http, base_url, patient.patient_id, timeout_s)
            except TimeoutError:
                raise LiveScenarioFailed(
                    f"no Communication and Flag on the FHIR server {timeout_s:.0f} s after the DR scan"
                ) from None
            service_url = f"http://127.0.0.1:{port}/cds-services/{SERVICE_ID}"
            cards = await _cds_cards(http, service_url, patient.patient_id, ehr)
        finally:
            await delete_subscriptions(http, base_url, endpoint)
            await drain_notifications(box)
    return LiveDrOutcome(
        patient_id=patient.patient_id,
        alert_after_s=seen - committed,
        card_summaries=tuple(str(card.get("summary", "")) for card in cards),
    )
