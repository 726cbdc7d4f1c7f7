"""`FhirMeasurementSource`: the `MeasurementSource` port over a FHIR server (contract section 1).

Per patient: read Patient; search Condition, MedicationAdministration, MedicationRequest,
ImagingStudy, Observation and Procedure with `patient=<id>` (all pages, concurrently over the
shared client); then fetch the BodyStructures that Observations point at (`focus`) and any
Medication referenced by a medication record, with `_id=a,b,c` in chunks. `_id` works on every
server: the test server (sekmet-fhir) can neither search BodyStructure by patient nor
`_include=Observation:focus`. A fetched BodyStructure or Medication that belongs to another
patient is dropped with an issue. Everything then goes through `inbound.patient_input`.

`FhirNotFound` (no such Patient), `FhirUnavailable` and `FhirRejected` propagate: the use case
decides whether that ends a request or only skips the patient. Malformed pages and entries do
not: they become issues of the patient's `PatientInput`.

Decision [P]: `patients(since=...)` filters on `Patient._lastUpdated` only, as specified; a
patient whose new scans arrive without a Patient update is not listed (incremental sync on the
other resource types comes later).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, Final

from service.adapters.fhir.client import FhirClient, QueryParams
from service.adapters.fhir.errors import MalformedResource
from service.adapters.fhir.inbound import (
    DEFAULT_MAPPING,
    InboundMapping,
    patient_input,
    patient_of,
    reference_key,
)
from service.application.ports import PatientInput, PatientRef
from service.domain.results import DataIssue

__all__ = ["PATIENT_SEARCHES", "FhirMeasurementSource"]

JsonDict = dict[str, Any]

# Resource types searched with `patient=<id>` for every patient.
PATIENT_SEARCHES: Final = (
    "Condition",
    "MedicationAdministration",
    "MedicationRequest",
    "ImagingStudy",
    "Observation",
    "Procedure",
)


def _chunks(ids: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class FhirMeasurementSource:
    """Reads one patient's contract resources from a FHIR server (see module doc)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        mapping: InboundMapping = DEFAULT_MAPPING,
        page_size: int = 200,
        id_chunk_size: int = 50,
    ) -> None:
        self._client = client
        self._mapping = mapping
        self._page_size = page_size
        self._id_chunk_size = id_chunk_size

    async def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]:
        """Every Patient on the server (updated after `since`, which must be timezone-aware)."""
        params: dict[str, str] = {"_count": str(self._page_size)}
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware")
            params["_lastUpdated"] = f"gt{since.isoformat()}"
        async for resource in self._client.search("Patient", params):
            patient_id = resource.get("id")
            if resource.get("resourceType") == "Patient" and isinstance(patient_id, str) and patient_id:
                yield PatientRef(patient_id)

    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        patient_id = patient.patient_id
        issues: list[DataIssue] = []
        resources: list[JsonDict] = []
        try:
            resources.append(await self._client.read("Patient", patient_id))
        except MalformedResource as exc:
            issues.append(DataIssue("error", "malformed-resource", exc.reason, exc.ref))
        params = {"patient": patient_id, "_count": str(self._page_size)}
        found = await self._gather(self._collect(rtype, params, issues) for rtype in PATIENT_SEARCHES)
        for batch in found:
            resources.extend(batch)
        lesion_ids = self._referenced(resources, "Observation", "focus", "BodyStructure")
        medication_ids = self._referenced(
            resources, ("MedicationAdministration", "MedicationRequest"), "medicationReference", "Medication"
        )
        extra = await self._gather(
            [
                *(
                    self._by_id("BodyStructure", chunk, issues)
                    for chunk in _chunks(lesion_ids, self._id_chunk_size)
                ),
                *(
                    self._by_id("Medication", chunk, issues)
                    for chunk in _chunks(medication_ids, self._id_chunk_size)
                ),
            ]
        )
        for batch in extra:
            for resource in batch:
                owner = patient_of(resource)
                if resource.get("resourceType") == "BodyStructure" and owner != patient_id:
                    ref = f"BodyStructure/{resource.get('id')}"
                    issues.append(
                        DataIssue("error", "foreign-lesion", "lesion belongs to another patient", ref)
                    )
                    continue
                resources.append(resource)
        mapped = patient_input(patient_id, resources, self._mapping)
        return PatientInput(mapped.ref, mapped.timeline, (*issues, *mapped.issues))

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    async def _gather(coroutines: Iterable[Any]) -> list[list[JsonDict]]:
        """Run searches concurrently; every one finishes before the first error is raised."""
        results = await asyncio.gather(*coroutines, return_exceptions=True)
        batches: list[list[JsonDict]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            batches.append(result)
        return batches

    async def _collect(
        self, resource_type: str, params: QueryParams, issues: list[DataIssue]
    ) -> list[JsonDict]:
        return [r async for r in self._client.search(resource_type, params, issues=issues)]

    async def _by_id(self, resource_type: str, ids: list[str], issues: list[DataIssue]) -> list[JsonDict]:
        params = {"_id": ",".join(ids), "_count": str(len(ids))}
        return await self._collect(resource_type, params, issues)

    @staticmethod
    def _referenced(
        resources: list[JsonDict], source_types: str | tuple[str, ...], element: str, target_type: str
    ) -> list[str]:
        """Ids of `target_type` resources referenced by `element` of `source_types` resources."""
        ids: dict[str, None] = {}
        for resource in resources:
            if resource.get("resourceType") not in (
                source_types if isinstance(source_types, tuple) else (source_types,)
            ):
                continue
            value = resource.get(element)
            for item in value if isinstance(value, list) else [value]:
                reference = item.get("reference") if isinstance(item, dict) else None
                key = reference_key(reference) if isinstance(reference, str) else None
                if key is not None and key.startswith(f"{target_type}/"):
                    ids[key.removeprefix(f"{target_type}/")] = None
        return list(ids)
