"""The persistence outbox seen through the `AlertOutbox` port of the delivery worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from service.adapters.persistence.outbox import OutboxAlert, SqlAlertOutbox
from service.application.ports import PendingAlert

__all__ = ["SqlDeliveryOutbox", "pending_alert"]


def pending_alert(alert: OutboxAlert) -> PendingAlert:
    return PendingAlert(
        id=alert.id,
        patient_id=alert.fhir_patient_id,
        patient_key=alert.patient_key,
        kind=alert.kind,
        payload=alert.payload,
        attempts=alert.attempts,
        channels=dict(alert.channels or {}),
    )


class SqlDeliveryOutbox:
    """Implements `application.ports.AlertOutbox` over `SqlAlertOutbox`."""

    def __init__(self, outbox: SqlAlertOutbox) -> None:
        self.outbox = outbox

    async def claim_due(self, *, limit: int = 50, lease_s: float = 300.0) -> Sequence[PendingAlert]:
        return [pending_alert(a) for a in await self.outbox.claim_due(limit=limit, lease_s=lease_s)]

    async def record_channel(self, alert_id: int, channel: str, state: Mapping[str, Any]) -> None:
        await self.outbox.record_channel(alert_id, channel, state)

    async def mark_delivered(self, alert_id: int) -> None:
        await self.outbox.mark_delivered(alert_id)

    async def mark_failed(self, alert_id: int, error: str, *, retry_at: datetime | None = None) -> None:
        await self.outbox.mark_failed(alert_id, error, retry_at=retry_at)

    async def hold(self, alert_id: int, reason: str, *, recheck_at: datetime | None = None) -> None:
        await self.outbox.hold(alert_id, reason, recheck_at=recheck_at)

    async def release_rechecks(self) -> int:
        return await self.outbox.release_rechecks()

    async def give_up(self, alert_id: int, error: str) -> None:
        await self.outbox.give_up(alert_id, error)
