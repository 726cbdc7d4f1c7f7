"""`FhirAssessmentWriter`: the `AssessmentWriter` port over a FHIR server (contract section 2).

Per patient, per write:

1. Search the patient's existing results: `Observation?patient=<id>&identifier=<system>|`
   (every Observation carrying our identifier system), indexed by identifier value.
2. Plan each Observation built by `outbound.observations_for`:
   - not on the server -> conditional create (`POST`, `ifNoneExist=identifier=<system>|<value>`,
     `fullUrl` `urn:uuid:` from the identifier), so concurrent workers never duplicate it;
   - on the server with the same content -> left alone (`unchanged`). Content is compared
     without `meta`, `id`, `status` and `text`; references between our own results are
     compared after the `urn:uuid:` full URLs of results that exist have been replaced by
     their server ids (`Observation/<id>`);
   - on the server with other content -> `PUT Observation/<id>` with `ifMatch`
     `W/"<versionId>"` and `status` `amended` (`updated`).
3. Nothing to create or update -> nothing is sent: no transaction, no Provenance, so a no-op
   re-run adds nothing to the server. Otherwise one transaction Bundle: the service Device
   (conditional create), the creates and updates, and one Provenance whose targets are the
   written Observations, whose agent is the Device and whose entities are the inputs
   (`outbound.provenance_for`); its activity is `UPDATE` when the write only updated, else
   `CREATE`.
4. A 412 (version conflict: another worker changed a result between our read and our write)
   or 409 on the transaction: read again and plan again, at most `max_conflict_attempts`
   times in all; then the error propagates.

An identifier found on two server resources (duplicates written before this writer existed, or
by another system) is reported as `duplicate-result` and left alone: a conditional write on it
would fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.errors import FhirRejected
from service.adapters.fhir.outbound import (
    device_full_url,
    observation_full_url,
    observations_for,
    provenance_for,
    service_device,
)
from service.application.ports import PatientInput, WriteSummary
from service.domain.results import DataIssue, PatientAssessment

__all__ = ["FhirAssessmentWriter", "WritePlan", "plan_writes", "same_content", "transaction_bundle"]

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]

IGNORED_ELEMENTS: Final = frozenset({"meta", "id", "status", "text"})
CONFLICT_STATUSES: Final = frozenset({409, 412})


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


def same_content(ours: JsonDict, theirs: JsonDict) -> bool:
    """Equal apart from `meta`, `id`, `status` and `text` (numbers compare by value: 12 == 12.0)."""
    return {k: v for k, v in ours.items() if k not in IGNORED_ELEMENTS} == {
        k: v for k, v in theirs.items() if k not in IGNORED_ELEMENTS
    }


def _rewrite_references(resource: JsonDict, mapping: dict[str, str]) -> JsonDict:
    """A copy with `derivedFrom`/`hasMember` urn references to existing results replaced.

    Nothing to replace (a first write: no results exist) -> the resource itself, not a copy.
    """
    if not mapping:
        return resource
    out = dict(resource)
    for key in ("derivedFrom", "hasMember"):
        refs = resource.get(key)
        if isinstance(refs, list):
            out[key] = [{**r, "reference": mapping.get(r["reference"], r["reference"])} for r in refs]
    return out


@dataclass(frozen=True, slots=True)
class Existing:
    """One of our results on the server."""

    id: str
    version_id: str | None
    resource: JsonDict


@dataclass(slots=True)
class WritePlan:
    entries: list[JsonDict] = field(default_factory=list)  # creates and updates, in order
    written: list[JsonDict] = field(default_factory=list)  # the un-rewritten Observations written
    targets: list[str] = field(default_factory=list)  # Provenance target per written Observation
    kinds: list[str] = field(default_factory=list)  # "create" | "update" per entry
    unchanged: int = 0
    issues: list[DataIssue] = field(default_factory=list)


def plan_writes(
    observations: Iterable[JsonDict], existing: dict[str, list[Existing]], base_url: str
) -> WritePlan:
    """Creates, updates and unchanged results (see module doc, step 2)."""
    observations = list(observations)
    mapping = {
        observation_full_url(o): f"Observation/{found[0].id}"
        for o in observations
        if len(found := existing.get(o["identifier"][0]["value"], [])) == 1
    }
    plan = WritePlan()
    for observation in observations:
        value = observation["identifier"][0]["value"]
        found = existing.get(value, [])
        rewritten = _rewrite_references(observation, mapping)
        if not found:
            full_url = observation_full_url(observation)
            plan.entries.append(_conditional_create(full_url, rewritten, "Observation"))
            plan.written.append(observation)
            plan.targets.append(full_url)
            plan.kinds.append("create")
            continue
        if len(found) > 1:
            plan.issues.append(
                DataIssue(
                    "warning",
                    "duplicate-result",
                    f"{len(found)} resources carry one result identifier; left as they are",
                    f"Observation/{found[0].id}",
                )
            )
            continue
        current = found[0]
        if same_content(rewritten, current.resource):
            plan.unchanged += 1
            continue
        updated = {**rewritten, "id": current.id, "status": "amended"}
        request: JsonDict = {"method": "PUT", "url": f"Observation/{current.id}"}
        if current.version_id:
            request["ifMatch"] = f'W/"{current.version_id}"'
        plan.entries.append(
            {
                "fullUrl": f"{base_url.rstrip('/')}/Observation/{current.id}",
                "resource": updated,
                "request": request,
            }
        )
        plan.written.append(observation)
        plan.targets.append(f"Observation/{current.id}")
        plan.kinds.append("update")
    return plan


def transaction_bundle(
    assessment: PatientAssessment,
    patient: PatientInput,
    *,
    version: str,
    recorded: datetime,
    existing: dict[str, list[Existing]] | None = None,
    base_url: str = "",
) -> tuple[JsonDict, WritePlan]:
    """The transaction of one patient (Device, creates and updates, Provenance) and its plan.

    The Bundle has no entries when the plan writes nothing (the caller then sends nothing).
    """
    plan = plan_writes(observations_for(assessment, patient), existing or {}, base_url)
    if not plan.entries:
        return {"resourceType": "Bundle", "type": "transaction", "entry": []}, plan
    device_url = device_full_url(version)
    provenance = provenance_for(
        plan.written,
        patient,
        device_reference=device_url,
        version=version,
        recorded=recorded,
        targets=plan.targets,
        activity="CREATE" if "create" in plan.kinds else "UPDATE",
    )
    entries = [
        _conditional_create(device_url, service_device(version), "Device"),
        *plan.entries,
        {"resource": provenance, "request": {"method": "POST", "url": "Provenance"}},
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, plan


def _status_code(entry: object) -> int | None:
    response = entry.get("response") if isinstance(entry, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    if not isinstance(status, str):
        return None
    head = status.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


class FhirAssessmentWriter:
    """Writes one patient's assessment: creates, amends or leaves alone each result (module doc)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        version: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = 200,
        max_conflict_attempts: int = 3,
    ) -> None:
        self._client = client
        self._version = version
        self._clock = clock
        self._page_size = page_size
        self._max_conflict_attempts = max_conflict_attempts

    async def existing(self, patient_id: str, issues: list[DataIssue]) -> dict[str, list[Existing]]:
        """Our results on the server for one patient, by identifier value."""
        params = {
            "patient": patient_id,
            "identifier": f"{codes.IDENTIFIER_ASSESSMENT}|",
            "_count": str(self._page_size),
        }
        found: dict[str, list[Existing]] = {}
        async for resource in self._client.search("Observation", params, issues=issues):
            if resource.get("resourceType") != "Observation" or not isinstance(resource.get("id"), str):
                continue
            meta = resource.get("meta")
            version_id = meta.get("versionId") if isinstance(meta, dict) else None
            for identifier in resource.get("identifier") or []:
                if isinstance(identifier, dict) and identifier.get("system") == codes.IDENTIFIER_ASSESSMENT:
                    value = identifier.get("value")
                    if isinstance(value, str):
                        found.setdefault(value, []).append(
                            Existing(
                                resource["id"], version_id if isinstance(version_id, str) else None, resource
                            )
                        )
        return found

    async def write(self, assessment: PatientAssessment, patient: PatientInput) -> WriteSummary:
        attempt = 0
        while True:
            attempt += 1
            issues: list[DataIssue] = []
            existing = await self.existing(patient.ref.patient_id, issues)
            bundle, plan = transaction_bundle(
                assessment,
                patient,
                version=self._version,
                recorded=self._clock(),
                existing=existing,
                base_url=self._client.base_url,
            )
            issues.extend(plan.issues)
            if not plan.entries:
                return WriteSummary(unchanged=plan.unchanged, issues=tuple(issues))
            try:
                response = await self._client.transaction(bundle)
            except FhirRejected as exc:
                if exc.upstream_status in CONFLICT_STATUSES and attempt < self._max_conflict_attempts:
                    log.info("fhir.write_conflict", status=exc.upstream_status, attempt=attempt)
                    continue
                raise
            return self._summary(bundle, plan, response, issues)

    @staticmethod
    def _summary(
        bundle: JsonDict, plan: WritePlan, response: JsonDict, issues: list[DataIssue]
    ) -> WriteSummary:
        requested = bundle["entry"]
        answered = response.get("entry")
        answered = answered if isinstance(answered, list) else []
        if len(answered) != len(requested):
            issues.append(
                DataIssue("warning", "transaction-response-mismatch", "response entries do not match", None)
            )
        created, updated, unchanged = 0, 0, plan.unchanged
        for sent, received in zip(requested, answered, strict=False):
            if sent["resource"]["resourceType"] != "Observation":
                continue
            status = _status_code(received)
            method = sent["request"]["method"]
            if method == "POST" and status == 201:
                created += 1
            elif method == "POST" and status == 200:
                unchanged += 1  # another worker created it between our read and our write
            elif method == "PUT" and status in (200, 201):
                updated += 1
            else:
                issues.append(
                    DataIssue(
                        "warning",
                        "unexpected-write-status",
                        f"transaction entry answered {status}",
                        sent["fullUrl"],
                    )
                )
        return WriteSummary(created=created, updated=updated, unchanged=unchanged, issues=tuple(issues))
