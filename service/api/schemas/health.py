"""Schemas of the operations endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded"]
    checks: dict[str, str]
    degraded: list[str] = Field(
        default_factory=list, description="Checks that fail without making the instance unready (e.g. fhir)."
    )
