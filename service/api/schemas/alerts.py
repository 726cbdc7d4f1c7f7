"""Schemas of the alert endpoints (our snake_case JSON contract, not FHIR)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.adapters.persistence.outbox import OutboxAlert
from service.adapters.persistence.tables import AlertStatus


class ChannelStateOut(BaseModel):
    state: str = Field(description="delivered | failed | held")
    at: str | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(
        default_factory=dict, description="What the channel recorded (FHIR references, HTTP status)"
    )


class AlertOut(BaseModel):
    id: int
    patient_id: str = Field(description="FHIR logical id of the Patient")
    patient_key: str = Field(description="Pseudonymous key used in logs")
    kind: str = Field(description="DR or PsPD")
    status: AlertStatus
    attempts: int
    next_attempt_at: datetime = Field(
        description="When the alert is next tried; for a held alert, when it is checked again for a "
        "recipient (9999-01-01: only when released with POST /alerts/{id}/retry)"
    )
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    channels: dict[str, ChannelStateOut]
    payload: dict[str, Any] = Field(description="Finding, scan, growing/shrinking lesions, next step")

    @classmethod
    def from_alert(cls, a: OutboxAlert) -> AlertOut:
        channels: dict[str, ChannelStateOut] = {}
        for name, raw in (a.channels or {}).items():
            state = dict(raw)
            channels[name] = ChannelStateOut(
                state=str(state.pop("state", "unknown")),
                at=state.pop("at", None),
                error=state.pop("error", None),
                detail=state,
            )
        return cls(
            id=a.id,
            patient_id=a.fhir_patient_id,
            patient_key=a.patient_key,
            kind=a.kind,
            status=a.status,
            attempts=a.attempts,
            next_attempt_at=a.next_attempt_at,
            last_error=a.last_error,
            created_at=a.created_at,
            delivered_at=a.delivered_at,
            acknowledged_at=a.acknowledged_at,
            acknowledged_by=a.acknowledged_by,
            channels=channels,
            payload=a.payload,
        )


class AlertListOut(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class AcknowledgeIn(BaseModel):
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who acknowledges; ignored when the API checks tokens (the token's subject is recorded)",
    )


class DeliveryReportOut(BaseModel):
    delivered: int
    retrying: int
    failed: int
    held: int


class LesionRowOut(BaseModel):
    lesion_id: str
    timepoint_index: int
    timepoint_date: str
    status: str
    is_target: bool
    diameter_mm: str | None
    change_from_baseline_pct: str | None
    change_from_nadir_pct: str | None


class LesionTableOut(BaseModel):
    patient_id: str
    response_group: str
    assessed_at: datetime
    atypical: list[dict[str, Any]] = Field(description="Atypical findings (kind, timepoint, lesions)")
    lesions: list[LesionRowOut]
