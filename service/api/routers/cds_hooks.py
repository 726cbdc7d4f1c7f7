"""CDS Hooks 2.0: discovery and the `atypical-response` patient-view service (adapters/alerts/cds_hooks.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from service.adapters.alerts.cds_hooks import (
    HOOK,
    PREFETCH_ATYPICAL,
    SERVICE_ID,
    CdsRequestInvalid,
    atypical_cards,
    discovery,
    findings_from_document,
    findings_from_prefetch,
)
from service.adapters.persistence.keys import check_fhir_id
from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES, _doc
from service.api.schemas.cds_hooks import CdsCardsOut, CdsDiscoveryOut, CdsHookRequest

router = APIRouter(tags=["cds-hooks"])


def _base_url(container: ContainerDep, request: Request) -> str:
    configured = container.settings.public_base_url
    return (str(configured) if configured is not None else str(request.base_url)).rstrip("/")


@router.get("/cds-services", operation_id="cds-hooks-discovery", response_model_exclude_none=True)
async def cds_discovery() -> CdsDiscoveryOut:
    """CDS Hooks discovery: the services offered, their hooks and prefetch templates (no patient data)."""
    return CdsDiscoveryOut.model_validate(discovery())


@router.post(
    f"/cds-services/{SERVICE_ID}",
    operation_id="cds-hooks-atypical-response",
    response_model_exclude_none=True,
    responses={
        400: PROBLEM_RESPONSES[400],
        401: _doc("Missing, untrusted, expired or wrongly audienced JWT"),
        422: PROBLEM_RESPONSES[422],
    },
)
async def cds_atypical_response(
    body: CdsHookRequest,
    request: Request,
    container: ContainerDep,
    authorization: Annotated[str | None, Header(description="Bearer JWT signed by the EHR")] = None,
) -> CdsCardsOut:
    """patient-view: a `warning` card when the patient shows a dissociated response or pseudoprogression."""
    base = _base_url(container, request)
    await container.cds_verifier.verify(authorization, audience=f"{base}/cds-services/{SERVICE_ID}")
    if body.hook != HOOK:
        raise CdsRequestInvalid(f"This service answers the {HOOK} hook only")
    raw_id = body.context.get("patientId")
    try:
        patient_id = check_fhir_id(raw_id if isinstance(raw_id, str) else "")
    except ValueError:
        raise CdsRequestInvalid("context.patientId must be a FHIR logical id") from None
    stored = await container.store.latest(patient_id) if container.store is not None else None
    if stored is not None:
        findings = findings_from_document(stored.result)
    else:
        findings = findings_from_prefetch((body.prefetch or {}).get(PREFETCH_ATYPICAL))
    template = container.settings.cds_hooks_lesion_table_url
    table_url = (
        template.replace("{patient_id}", patient_id)
        if template
        else f"{base}/patients/{patient_id}/lesion-table"
    )
    cards = atypical_cards(
        findings,
        patient_id,
        source_url=base,
        lesion_table_url=table_url,
        smart_launch_url=f"{base}/app/patient/launch",  # the patient view (SMART app)
    )
    return CdsCardsOut.model_validate({"cards": cards})
