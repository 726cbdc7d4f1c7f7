"""`FhirMeasurementSource`: the `MeasurementSource` port over a FHIR server (contract section 1).

Per patient: read Patient; search Condition, MedicationAdministration, MedicationRequest,
ImagingStudy, Observation and Procedure with `patient=<id>` (all pages, concurrently over the
shared client); then fetch the BodyStructures that Observations point at (`focus`) and any
Medication referenced by a medication record. Everything then goes through
`inbound.patient_input`. The searches of the types `inbound` reads typed (`TYPED_SEARCHES`) use
`FhirClient.search_typed`: their usual resources come as msgspec Structs (typed.py), the rest as
JSON dicts, and every step here (the `have` set, `focus` and `medicationReference`, `_include`d
resources, the foreign-lesion check) reads both.

Capabilities (read once from the server's CapabilityStatement, `capabilities.py`):
- `_include=Observation:focus` (and `MedicationAdministration:medication`,
  `MedicationRequest:medication`) are added when the server lists them (HAPI does); the
  referenced resources then come with the Observation pages.
- Whatever is still missing (all of it on sekmet-fhir 0.1.1, which can neither search
  BodyStructure by patient nor `_include=Observation:focus`) is fetched with `_id=a,b,c` in
  chunks, which works on every server. A fetched BodyStructure or Medication that belongs to
  another patient is dropped with an issue.

Incremental sync (`patients(since=...)`): a patient has changed when its Patient resource or
any of its clinical resources (Condition, MedicationAdministration, MedicationRequest,
ImagingStudy, Observation, Procedure, BodyStructure) has `meta.lastUpdated` after `since`. Each
type is searched with `_lastUpdated=gt<since>` and `_elements` reduced to the patient reference
(and the identifier), and the subjects are collected, each patient listed once. The service's
own Observations (identifier system `IDENTIFIER_ASSESSMENT`) are not a change: otherwise every
write-back would re-trigger its patient. Medication has no patient and is not followed
(a changed Medication definition does not change any patient's response). A type the server
refuses to search that way is skipped with an issue in `FhirClient.issues`.

`FhirNotFound` (no such Patient), `FhirUnavailable` and `FhirRejected` propagate: the use case
decides whether that ends a request or only skips the patient. Malformed pages and entries do
not: they become issues of the patient's `PatientInput`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from service.adapters.fhir import codes
from service.adapters.fhir.capabilities import ServerCapabilities
from service.adapters.fhir.client import FhirClient, QueryParams
from service.adapters.fhir.errors import FhirRejected, MalformedResource
from service.adapters.fhir.inbound import (
    DEFAULT_MAPPING,
    InboundMapping,
    patient_input,
    patient_of,
    reference_key,
)
from service.adapters.fhir.typed import TypedResource
from service.application.ports import PatientInput, PatientRef
from service.domain.results import DataIssue

__all__ = ["CHANGE_SEARCHES", "PATIENT_SEARCHES", "FhirMeasurementSource"]

JsonDict = dict[str, Any]
# A resource as the patient searches yield it: a JSON dict, or one of the usual shapes typed (typed.py).
Resource = JsonDict | TypedResource

# Resource types searched with `patient=<id>` for every patient.
PATIENT_SEARCHES: Final = (
    "Condition",
    "MedicationAdministration",
    "MedicationRequest",
    "ImagingStudy",
    "Observation",
    "Procedure",
)


# Resource types whose changes make a patient "changed", with the element naming the patient.
CHANGE_SEARCHES: Final = (
    ("Condition", "subject"),
    ("MedicationAdministration", "subject"),
    ("MedicationRequest", "subject"),
    ("ImagingStudy", "subject"),
    ("Observation", "subject,identifier"),
    ("Procedure", "subject"),
    ("BodyStructure", "patient"),
)
# Searched with `FhirClient.search_typed` (the types `inbound` reads from typed resources); the
# others (Condition, Procedure, Medication) as dicts.
TYPED_SEARCHES: Final = frozenset(
    {"Observation", "MedicationAdministration", "MedicationRequest", "ImagingStudy", "BodyStructure"}
)
# `_include`s used when the server offers them: resource type searched -> include.
INCLUDES: Final = {
    "Observation": "Observation:focus",
    "MedicationAdministration": "MedicationAdministration:medication",
    "MedicationRequest": "MedicationRequest:medication",
}


def _ours(resource: JsonDict) -> bool:
    """One of the service's own result Observations (never an input change)."""
    identifiers = resource.get("identifier")
    return isinstance(identifiers, list) and any(
        isinstance(i, dict) and i.get("system") == codes.IDENTIFIER_ASSESSMENT for i in identifiers
    )


def _type_of(resource: Resource) -> object:
    return resource.resource_type if isinstance(resource, TypedResource) else resource.get("resourceType")


def _id_of(resource: Resource) -> object:
    return resource.id if isinstance(resource, TypedResource) else resource.get("id")


def _add_referenced(ids: dict[str, None], resource: Resource, element: str, target_type: str) -> None:
    """Add to `ids` the ids of `target_type` resources that `element` of `resource` references
    (`focus`, `medicationReference`: typed resources have them as `typed.Reference`s)."""
    prefix = f"{target_type}/"
    if isinstance(resource, TypedResource):
        value = getattr(resource, element, None)
        for item in value if isinstance(value, list) else [value]:
            reference = item.reference if item is not None else None
            key = reference_key(reference) if isinstance(reference, str) else None
            if key is not None and key.startswith(prefix):
                ids[key.removeprefix(prefix)] = None
        return
    value = resource.get(element)
    for item in value if isinstance(value, list) else [value]:
        reference = item.get("reference") if isinstance(item, dict) else None
        key = reference_key(reference) if isinstance(reference, str) else None
        if key is not None and key.startswith(prefix):
            ids[key.removeprefix(prefix)] = None


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
        """Every Patient on the server, or those changed after `since` (timezone-aware; module doc)."""
        if since is None:
            async for resource in self._client.search("Patient", {"_count": str(self._page_size)}):
                patient_id = resource.get("id")
                if resource.get("resourceType") == "Patient" and isinstance(patient_id, str) and patient_id:
                    yield PatientRef(patient_id)
            return
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        changed = f"gt{since.isoformat()}"
        capabilities = await self._client.server_capabilities()
        seen: set[str] = set()
        params = {"_count": str(self._page_size), "_lastUpdated": changed}
        async for resource in self._client.search("Patient", params):
            patient_id = resource.get("id")
            is_patient = resource.get("resourceType") == "Patient" and isinstance(patient_id, str)
            if is_patient and patient_id and patient_id not in seen:
                seen.add(patient_id)
                yield PatientRef(patient_id)
        for resource_type, elements in CHANGE_SEARCHES:
            if capabilities.known and not capabilities.has_type(resource_type):
                continue
            query = {**params, "_elements": elements}
            try:
                async for resource in self._client.search(resource_type, query):
                    if resource.get("resourceType") != resource_type or _ours(resource):
                        continue  # an included resource, or one of our own results
                    patient_id = patient_of(resource)
                    if patient_id and patient_id not in seen:
                        seen.add(patient_id)
                        yield PatientRef(patient_id)
            except FhirRejected as exc:
                self._client.issues.append(
                    DataIssue("warning", "change-search-refused", exc.text, f"{resource_type}?_lastUpdated")
                )

    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        patient_id = patient.patient_id
        issues: list[DataIssue] = []
        resources: list[Resource] = []
        try:
            resources.append(await self._client.read("Patient", patient_id))
        except MalformedResource as exc:
            issues.append(DataIssue("error", "malformed-resource", exc.reason, exc.ref))
        capabilities = await self._client.server_capabilities()
        found = await self._gather(
            self._collect(rtype, self._patient_query(rtype, patient_id, capabilities), issues)
            for rtype in PATIENT_SEARCHES
        )
        for batch in found:
            resources.extend(batch)
        return await self.complete(patient_id, resources, issues)

    async def complete(
        self, patient_id: str, resources: Sequence[Resource], issues: list[DataIssue]
    ) -> PatientInput:
        """Fetch the BodyStructures and Medications referenced but not among `resources`; map all.

        Used after the patient searches and by the Bulk Data source (an export may lack them).
        `resources` are JSON dicts or typed resources (`FhirClient.search_typed`), in any mix.
        """
        # One pass over the resources (a patient has a hundred or so; Bulk Data calls this for
        # every patient): what is there, what is referenced, what came by _include.
        have: set[tuple[object, object]] = set()
        lesions: dict[str, None] = {}
        medications: dict[str, None] = {}
        by_include: dict[tuple[object, object], Resource] = {}
        kept: list[Resource] = []
        for resource in resources:
            rtype, rid = _type_of(resource), _id_of(resource)
            have.add((rtype, rid))
            if rtype == "Observation":
                _add_referenced(lesions, resource, "focus", "BodyStructure")
            elif rtype == "MedicationAdministration" or rtype == "MedicationRequest":
                _add_referenced(medications, resource, "medicationReference", "Medication")
            if rtype == "BodyStructure" or rtype == "Medication":
                by_include[(rtype, rid)] = resource  # checked like fetched ones below
            else:
                kept.append(resource)
        lesion_ids = [i for i in lesions if ("BodyStructure", i) not in have]
        medication_ids = [i for i in medications if ("Medication", i) not in have]
        included = list(by_include.values())
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
        for batch in [included, *extra]:
            for resource in batch:
                owner = patient_of(resource)
                if _type_of(resource) == "BodyStructure" and owner != patient_id:
                    ref = f"BodyStructure/{_id_of(resource)}"
                    issues.append(
                        DataIssue("error", "foreign-lesion", "lesion belongs to another patient", ref)
                    )
                    continue
                kept.append(resource)
        mapped = patient_input(patient_id, kept, self._mapping)
        return replace(mapped, issues=(*issues, *mapped.issues))

    # -- helpers --------------------------------------------------------------------------------------
    def _patient_query(
        self, resource_type: str, patient_id: str, capabilities: ServerCapabilities
    ) -> dict[str, str]:
        query = {"patient": patient_id, "_count": str(self._page_size)}
        include = INCLUDES.get(resource_type)
        if include is not None and capabilities.offers_include(include):
            query["_include"] = include
        return query

    @staticmethod
    async def _gather(coroutines: Iterable[Any]) -> list[list[Resource]]:
        """Run searches concurrently; every one finishes before the first error is raised."""
        results = await asyncio.gather(*coroutines, return_exceptions=True)
        batches: list[list[Resource]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            batches.append(result)
        return batches

    async def _collect(
        self, resource_type: str, params: QueryParams, issues: list[DataIssue]
    ) -> list[Resource]:
        if resource_type in TYPED_SEARCHES:
            return [r async for r in self._client.search_typed(resource_type, params, issues=issues)]
        return [r async for r in self._client.search(resource_type, params, issues=issues)]

    async def _by_id(self, resource_type: str, ids: list[str], issues: list[DataIssue]) -> list[Resource]:
        params = {"_id": ",".join(ids), "_count": str(len(ids))}
        return await self._collect(resource_type, params, issues)
