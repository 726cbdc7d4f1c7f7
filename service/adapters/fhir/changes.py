"""`FhirChangeFeed`: which input resources changed since a watermark, with their server timestamps.

Searches Patient and the resource types the reader uses (`source.CHANGE_SEARCHES`) with
`_lastUpdated=ge<since>`, asking only for the elements that name the patient plus `meta`, and
yields one `ResourceChange` per resource version. The re-assessment keeps the watermark on the
server's clock from `meta.lastUpdated` (docs/fhir/subscriptions.md), so a ping re-assesses exactly
the patients changed since the previous one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.errors import FhirRejected
from service.adapters.fhir.inbound import patient_of
from service.adapters.fhir.source import CHANGE_SEARCHES, _ours
from service.application.ports import ResourceChange
from service.domain.results import DataIssue

__all__ = ["FhirChangeFeed", "resource_change"]


def _last_updated(meta: Any) -> datetime | None:
    text = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def resource_change(resource: dict[str, Any]) -> ResourceChange:
    """The change a search entry stands for (its version, patient and server timestamp)."""
    resource_type, rid = resource.get("resourceType"), resource.get("id")
    meta = resource.get("meta")
    stamp = _last_updated(meta)
    version = meta.get("versionId") if isinstance(meta, dict) else None
    if isinstance(version, str) and version:
        key = f"{resource_type}/{rid}/_history/{version}"
    else:
        key = f"{resource_type}/{rid}@{stamp.isoformat() if stamp else ''}"
    patient = rid if resource_type == "Patient" and isinstance(rid, str) else patient_of(resource)
    return ResourceChange(version_key=key, patient_id=patient, last_updated=stamp)


class FhirChangeFeed:
    def __init__(self, client: FhirClient, *, page_size: int) -> None:
        self._client = client
        self._page_size = page_size

    async def changes(self, *, since: datetime) -> AsyncIterator[ResourceChange]:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        params = {
            "_count": str(self._page_size),
            "_lastUpdated": f"ge{since.isoformat(timespec='milliseconds')}",
        }
        capabilities = await self._client.server_capabilities()
        for resource_type, elements in (("Patient", "id"), *CHANGE_SEARCHES):
            if capabilities.known and not capabilities.has_type(resource_type):
                continue
            query = {**params, "_elements": f"{elements},meta"}
            try:
                async for resource in self._client.search(resource_type, query):
                    if resource.get("resourceType") == resource_type and not _ours(resource):
                        yield resource_change(resource)
            except FhirRejected as exc:
                self._client.issues.append(
                    DataIssue("warning", "change-search-refused", exc.text, f"{resource_type}?_lastUpdated")
                )
