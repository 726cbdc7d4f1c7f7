"""CDS Hooks 2.0 wire format (https://cds-hooks.hl7.org/2.0/): camelCase as the specification names it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CdsServiceOut(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]


class CdsDiscoveryOut(BaseModel):
    services: list[CdsServiceOut]


class CdsHookRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    hook: str = Field(max_length=100)
    hook_instance: str = Field(alias="hookInstance", min_length=1, max_length=200)
    fhir_server: str | None = Field(default=None, alias="fhirServer", max_length=2048)
    fhir_authorization: dict[str, Any] | None = Field(default=None, alias="fhirAuthorization")
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class CdsSourceOut(BaseModel):
    label: str
    url: str | None = None


class CdsLinkOut(BaseModel):
    label: str
    url: str
    type: str


class CdsCardOut(BaseModel):
    uuid: str
    summary: str = Field(max_length=139)
    indicator: str
    detail: str
    source: CdsSourceOut
    links: list[CdsLinkOut] | None = None


class CdsCardsOut(BaseModel):
    cards: list[CdsCardOut]
