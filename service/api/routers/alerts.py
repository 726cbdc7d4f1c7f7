"""Alerts: list, inspect, acknowledge, retry, deliver now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from service.adapters.persistence.outbox import UnknownAlertError
from service.adapters.persistence.tables import AlertStatus
from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES, _doc
from service.api.schemas.alerts import (
    AcknowledgeIn,
    AlertListOut,
    AlertOut,
    DeliveryReportOut,
)
from service.api.security import ANONYMOUS, ReaderDep, WriterDep
from service.application.alerts import AlertNotFound
from service.application.errors import InvalidInput

router = APIRouter(tags=["alerts"])

# Bounds: alert ids are BIGINT (at most 2^63 - 1); paging stops at 2^31 - 1 alerts. A number past
# them is a 422, never an overflow in the database driver (a 500).
MAX_ALERT_ID = 2**63 - 1
MAX_OFFSET = 2**31 - 1
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID, description="Alert id (GET /alerts)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _doc("No such alert"),
    422: PROBLEM_RESPONSES[422],
}


@router.get("/alerts", operation_id="alerts-list", responses={422: PROBLEM_RESPONSES[422]})
async def list_alerts(
    container: ContainerDep,
    _caller: ReaderDep,
    status: Annotated[AlertStatus | None, Query(description="Only alerts in this delivery state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AlertListOut:
    """Alerts newest first with their delivery state (pending, delivered, failed, held)."""
    alerts, total = await container.require_alert_outbox().list_alerts(
        status=status, limit=limit, offset=offset
    )
    return AlertListOut(
        items=[AlertOut.from_alert(a) for a in alerts], total=total, limit=limit, offset=offset
    )


@router.get("/alerts/{alert_id}", operation_id="alerts-get", responses=NOT_FOUND)
async def get_alert(alert_id: AlertId, container: ContainerDep, _caller: ReaderDep) -> AlertOut:
    """One alert: payload, per-channel delivery state, last error, acknowledgement."""
    alert = await container.require_alert_outbox().get(alert_id)
    if alert is None:
        raise AlertNotFound(f"There is no alert {alert_id}")
    return AlertOut.from_alert(alert)


@router.post("/alerts/{alert_id}/acknowledge", operation_id="alerts-acknowledge", responses=NOT_FOUND)
async def acknowledge_alert(
    alert_id: AlertId, body: AcknowledgeIn, container: ContainerDep, caller: WriterDep
) -> AlertOut:
    """Record that a clinician has seen the alert (the first acknowledgement is kept).

    Who: the bearer token's subject; only when the API runs without tokens (development) the
    body's `by`.
    """
    by = body.by if caller is ANONYMOUS else caller.subject
    if by is None:
        raise InvalidInput("Say who acknowledges the alert (`by`)")
    try:
        alert = await container.require_alert_outbox().acknowledge(alert_id, by)
    except UnknownAlertError:
        raise AlertNotFound(f"There is no alert {alert_id}") from None
    return AlertOut.from_alert(alert)


@router.post("/alerts/{alert_id}/retry", operation_id="alerts-retry", responses=NOT_FOUND)
async def retry_alert(alert_id: AlertId, container: ContainerDep, _caller: WriterDep) -> AlertOut:
    """Make a failed or held alert due again (e.g. after the CareTeam was corrected)."""
    try:
        alert = await container.require_alert_outbox().release(alert_id)
    except UnknownAlertError:
        raise AlertNotFound(f"There is no alert {alert_id}") from None
    return AlertOut.from_alert(alert)


@router.post("/alerts/deliver", operation_id="alerts-deliver", responses={503: PROBLEM_RESPONSES[503]})
async def deliver_alerts(container: ContainerDep, _caller: WriterDep) -> DeliveryReportOut:
    """Run one delivery pass now (the background worker does the same on its interval)."""
    report = await container.require_alert_delivery()()
    return DeliveryReportOut(
        delivered=report.delivered, retrying=report.retrying, failed=report.failed, held=report.held
    )
