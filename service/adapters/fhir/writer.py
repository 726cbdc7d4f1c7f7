"""`FhirAssessmentWriter`: the `AssessmentWriter` port over a FHIR server (contract section 2).

One transaction Bundle per patient: the service Device and every Observation as conditional
creates (`request.ifNoneExist = "identifier=<system>|<value>"`, identifiers from
`outbound.assessment_identifier`), then one Provenance whose targets are the Observations'
`urn:uuid:` full URLs (the server rewrites them to the created or matched resources). Re-runs
and concurrent workers therefore never duplicate an Observation: the server answers `200` for
one that exists and `201` for one it created, which `WriteSummary` counts as `unchanged` and
`created`.

Every run adds one Provenance (the record of that run). Results that changed since the last
run are not updated yet: an existing Observation with the same identifier is left as it is.
Updating changed results with status `amended` (conditional update on the identifier,
`updated` in `WriteSummary`) is a later issue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.outbound import (
    device_full_url,
    observation_full_url,
    observations_for,
    provenance_for,
    service_device,
)
from service.application.ports import PatientInput, WriteSummary
from service.domain.results import DataIssue, PatientAssessment

__all__ = ["FhirAssessmentWriter", "transaction_bundle"]

JsonDict = dict[str, Any]


def _conditional_create(full_url: str, resource: JsonDict, resource_type: str) -> JsonDict:
    identifier = resource["identifier"][0]
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource_type,
            "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}",
        },
    }


def transaction_bundle(
    assessment: PatientAssessment, patient: PatientInput, *, version: str, recorded: datetime
) -> JsonDict:
    """The transaction of one patient: Device, Observations (conditional creates), Provenance."""
    device_url = device_full_url(version)
    observations = observations_for(assessment, patient)
    provenance = provenance_for(
        observations, patient, device_reference=device_url, version=version, recorded=recorded
    )
    entries = [
        _conditional_create(device_url, service_device(version), "Device"),
        *(_conditional_create(observation_full_url(o), o, "Observation") for o in observations),
        {"resource": provenance, "request": {"method": "POST", "url": "Provenance"}},
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _status_code(entry: object) -> int | None:
    response = entry.get("response") if isinstance(entry, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    if not isinstance(status, str):
        return None
    head = status.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


class FhirAssessmentWriter:
    """Writes one patient's assessment as one idempotent transaction (see module doc)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        version: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._version = version
        self._clock = clock

    async def write(self, assessment: PatientAssessment, patient: PatientInput) -> WriteSummary:
        bundle = transaction_bundle(assessment, patient, version=self._version, recorded=self._clock())
        response = await self._client.transaction(bundle)
        requested = bundle["entry"]
        answered = response.get("entry")
        answered = answered if isinstance(answered, list) else []
        issues: list[DataIssue] = []
        if len(answered) != len(requested):
            issues.append(
                DataIssue("warning", "transaction-response-mismatch", "response entries do not match", None)
            )
        created = unchanged = 0
        for sent, received in zip(requested, answered, strict=False):
            if sent["resource"]["resourceType"] != "Observation":
                continue
            status = _status_code(received)
            if status == 201:
                created += 1
            elif status == 200:
                unchanged += 1
            else:
                issues.append(
                    DataIssue(
                        "warning",
                        "unexpected-write-status",
                        f"transaction entry answered {status}",
                        sent["fullUrl"],
                    )
                )
        return WriteSummary(created=created, unchanged=unchanged, issues=tuple(issues))
