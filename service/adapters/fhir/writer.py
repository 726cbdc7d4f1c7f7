"""`FhirAssessmentWriter`: the `AssessmentWriter` port over a FHIR server (contract section 2).

Per patient, per attempt:

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
     `W/"<versionId>"` and `status` `amended` (`updated`). A stored result that still holds a
     `urn:uuid:` reference is our own unfinished write (a server that ran a transaction entry
     by entry and failed what it referenced): its repair keeps the stored status.
3. Nothing to create or update -> nothing is sent (no Provenance either). Otherwise the writes
   are sent with the run's strategy (docs/fhir/write-back.md), and EVERY entry of every answer
   is checked: a non-2xx entry is a failed write of this patient.
   - `transaction`: one Bundle (Device, results, Provenance), atomic on a server that keeps
     transactions atomic.
   - `chunked` (`auto`), `batch`, `single`: results in dependency order (a result is sent only
     after every result it references is on the server, its references rewritten to server
     ids), each level in transaction Bundles, batch Bundles, or one request per resource; then
     the Device and the Provenance. A failure never leaves a reference to a missing result.
   The Provenance is conditional on `meta.tag` `TAG_WRITE|<run>-<patient hash>`, so a repeated
   write of the same run (a timed-out commit) creates no second one.
4. A failed attempt (409/412 conflicts, failed entries, an answer lost to a timeout) reads the
   server again and plans again, at most `max_attempts` times; 409s and throttling also lower
   the number of patients written at once (`WritePacer`). What still fails is returned as the
   patient's `failure` with the server's OperationOutcome text; 401/403 also name the refused
   permission (`permission_hint`). Nothing raises for a server's answer.

`auto` learns from the server: a Bundle refused as too large (400/413/422 with several
entries) is split (to the number the server's message names, else half) and the size kept for
the run; transactions refused as unsupported (405/501) give batches, batches refused give
single requests. `transaction` on a server that answers a transaction partly (entries failed
while others committed) switches to `chunked` for the rest of the writer's life and repairs.

An identifier found on two server resources (duplicates written before this writer existed, or
by another system) is reported as `duplicate-result` and left alone: a conditional write on it
would fail.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import structlog

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient
from service.adapters.fhir.errors import (
    FhirOutcomeUnknown,
    FhirRejected,
    FhirUnavailable,
    MalformedResource,
    outcome_summary,
)
from service.adapters.fhir.outbound import (
    device_full_url,
    observation_full_url,
    observations_for,
    provenance_for,
    service_device,
)
from service.adapters.fhir.pacing import WritePacer
from service.application.ports import PatientInput, WriteSummary
from service.domain.results import DataIssue, PatientAssessment

__all__ = [
    "FhirAssessmentWriter",
    "WriteOptions",
    "WritePlan",
    "WriteStrategy",
    "permission_hint",
    "plan_writes",
    "same_content",
    "transaction_bundle",
]

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]

IGNORED_ELEMENTS: Final = frozenset({"meta", "id", "status", "text"})
CONFLICT_STATUSES: Final = frozenset({409, 412})
RETRYABLE_ENTRY_STATUSES: Final = frozenset({408, 409, 412, 429, 500, 502, 503, 504})
PERMISSION_STATUSES: Final = frozenset({401, 403})
TOO_LARGE_STATUSES: Final = frozenset({400, 413, 422})
UNSUPPORTED_STATUSES: Final = frozenset({404, 405, 501})
_REFERENCE_KEYS: Final = ("derivedFrom", "hasMember")
_LIMIT_IN_TEXT: Final = re.compile(r"(\d+)\s+(?:entries|entry|operations|resources)", re.IGNORECASE)


class WriteStrategy(StrEnum):
    """How a patient's results are sent (docs/fhir/write-back.md has each one's guarantee)."""

    AUTO = "auto"  # chunked, learning sizes, falling back to batch, then single
    TRANSACTION = "transaction"  # one atomic Bundle per patient
    CHUNKED = "chunked"  # dependency levels in transaction Bundles of at most max_entries
    BATCH = "batch"  # dependency levels in batch Bundles
    SINGLE = "single"  # dependency levels, one request per resource


@dataclass(frozen=True, slots=True)
class WriteOptions:
    strategy: WriteStrategy = WriteStrategy.AUTO
    max_entries: int | None = None  # entries per Bundle; None: as many as the server takes
    max_attempts: int = 5  # attempts per patient (conflicts, failed entries, lost answers)
    concurrency: int = 8  # patients written at once at most (lowered on conflicts and throttling)


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


def _references(resource: JsonDict) -> list[str]:
    return [
        r["reference"]
        for key in _REFERENCE_KEYS
        for r in resource.get(key) or ()
        if isinstance(r, dict) and isinstance(r.get("reference"), str)
    ]


def _rewrite_references(resource: JsonDict, mapping: dict[str, str]) -> JsonDict:
    """A copy with `derivedFrom`/`hasMember` urn references to existing results replaced.

    Nothing to replace (a first write: no results exist) -> the resource itself, not a copy.
    """
    if not mapping:
        return resource
    out = dict(resource)
    for key in _REFERENCE_KEYS:
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
    unchanged_ids: list[str] = field(default_factory=list)  # identifier values left alone
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
        unfinished = any(ref.startswith("urn:") for ref in _references(current.resource))
        if same_content(rewritten, current.resource) and not unfinished:
            plan.unchanged += 1
            plan.unchanged_ids.append(value)
            continue
        status = current.resource.get("status", "final") if unfinished else "amended"
        updated = {**rewritten, "id": current.id, "status": status}
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


def provenance_tag(run_id: str, patient_id: str) -> str:
    """The `meta.tag` code that makes a Provenance conditional: run + a hash of the patient id."""
    digest = hashlib.sha256(patient_id.encode()).hexdigest()[:24]
    return f"{run_id}-{digest}"


def _provenance_entry(provenance: JsonDict, tag: str, ref: str | None) -> JsonDict:
    """A conditional create on the tag, or (a known, incomplete one) a `PUT` that completes it."""
    resource = {**provenance, "meta": {"tag": [{"system": codes.TAG_WRITE, "code": tag}]}}
    if ref is not None:
        return {
            "resource": {**resource, "id": ref.split("/", 1)[1]},
            "request": {"method": "PUT", "url": ref},
        }
    return {
        "resource": resource,
        "request": {"method": "POST", "url": "Provenance", "ifNoneExist": f"_tag={codes.TAG_WRITE}|{tag}"},
    }


def transaction_bundle(
    assessment: PatientAssessment,
    patient: PatientInput,
    *,
    version: str,
    recorded: datetime,
    existing: dict[str, list[Existing]] | None = None,
    base_url: str = "",
    run_id: str = "",
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
        _provenance_entry(provenance, provenance_tag(run_id, patient.ref.patient_id), None),
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, plan


# --- answers -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryAnswer:
    """The server's answer to one entry: its status, the `Type/id` it names, the outcome's text."""

    status: int | None
    location: str | None
    text: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _status_code(entry: object) -> int | None:
    response = entry.get("response") if isinstance(entry, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    if not isinstance(status, str):
        return None
    head = status.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _type_and_id(location: object) -> str | None:
    """`Observation/7` from `Observation/7/_history/2` or an absolute URL."""
    if not isinstance(location, str):
        return None
    parts = location.split("/_history/", 1)[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def read_answers(response: JsonDict, count: int) -> list[EntryAnswer]:
    """One `EntryAnswer` per requested entry; a missing or unreadable answer is a failure."""
    answered = response.get("entry")
    answered = answered if isinstance(answered, list) else []
    out = []
    for index in range(count):
        entry = answered[index] if index < len(answered) else None
        reply = entry.get("response") if isinstance(entry, dict) else None
        reply = reply if isinstance(reply, dict) else {}
        _, text = outcome_summary(reply.get("outcome"))
        if entry is None:
            text = "the server's answer has no entry for this request"
        out.append(EntryAnswer(_status_code(entry), _type_and_id(reply.get("location")), text))
    return out


def permission_hint(
    status: int, resource_type: str, method: str, text: str, *, profiled: bool = False
) -> str:
    """One line naming what was refused and the SMART scope most likely missing.

    `profiled`: the resource names a `meta.profile`, which some servers resolve with the
    caller's rights (then `system/StructureDefinition.rs` is needed, not a write scope).
    """
    operation = {"POST": "create", "PUT": "update", "GET": "search"}.get(method, method.lower())
    letter = {"create": "c", "update": "u", "search": "s"}.get(operation, "r")
    profile_scope = "system/StructureDefinition.rs (the server resolves meta.profile)"
    if "structuredefinition" in text.lower() or "profile" in text.lower():
        scope = profile_scope
    else:
        scope = f"system/{resource_type}.{letter}"
        if method == "POST":
            scope += f" with system/{resource_type}.s (a conditional create searches first)"
        if profiled:
            scope += f", or {profile_scope}"
    said = f": {text}" if text else ""
    return f"HTTP {status} on {operation} {resource_type}; likely missing scope {scope}{said}"


class _Forbidden(Exception):
    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class _Conflict(Exception):
    """The whole Bundle was refused with 409/412: read again and plan again."""


# --- the writer ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Progress:
    """What one patient's write has done so far, over its attempts."""

    outcome: dict[str, str] = field(default_factory=dict)  # identifier -> created|updated|unchanged
    refs: dict[str, str] = field(default_factory=dict)  # identifier -> Observation/<id> written
    unknown: dict[str, str] = field(default_factory=dict)  # identifier -> kind, answer lost
    provenance_ref: str | None = None  # a Provenance committed with incomplete targets
    provenance_done: bool = False
    issues: list[DataIssue] = field(default_factory=list)
    failure: str | None = None
    permission: str | None = None

    def wrote(self, identifier: str, kind: str, ref: str | None) -> None:
        """A result stored; one created by this write and then repaired stays `created`."""
        if self.outcome.get(identifier) != "created":
            self.outcome[identifier] = "created" if kind == "create" else "updated"
        self.unknown.pop(identifier, None)
        if ref is not None:
            self.refs[identifier] = ref

    def summary(self) -> WriteSummary:
        counts = list(self.outcome.values())
        return WriteSummary(
            created=counts.count("created"),
            updated=counts.count("updated"),
            unchanged=counts.count("unchanged"),
            issues=tuple(self.issues),
            failure=self.failure,
            permission=self.permission,
        )


class FhirAssessmentWriter:
    """Writes one patient's assessment: creates, amends or leaves alone each result (module doc)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        version: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = 200,
        options: WriteOptions = WriteOptions(),
    ) -> None:
        self._client = client
        self._version = version
        self._clock = clock
        self._page_size = page_size
        self._options = options
        self.strategy: WriteStrategy = (
            WriteStrategy.CHUNKED if options.strategy is WriteStrategy.AUTO else options.strategy
        )
        self.max_entries = options.max_entries
        self.pacer = WritePacer(options.concurrency)
        self._device_ref: str | None = None

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

    async def write(
        self, assessment: PatientAssessment, patient: PatientInput, *, run_id: str | None = None
    ) -> WriteSummary:
        tag = provenance_tag(run_id or uuid.uuid4().hex, patient.ref.patient_id)  # no run: this write
        progress = _Progress()
        try:
            await self._write(assessment, patient, tag, progress)
        except _Forbidden as exc:
            progress.failure = progress.permission = exc.hint
        except FhirUnavailable as exc:
            progress.failure = f"server unavailable: {exc.text}"
        except FhirRejected as exc:  # the read of the patient's results was refused
            status = exc.upstream_status or 0
            if status in PERMISSION_STATUSES:
                progress.permission = permission_hint(status, "Observation", "GET", exc.text)
            progress.failure = progress.permission or f"HTTP {status}: {exc.text}"
        except MalformedResource as exc:
            progress.failure = f"unreadable answer from the server: {exc.text}"
        if progress.failure is None:
            await self.pacer.succeeded()
        if progress.failure is not None:
            progress.issues.append(
                DataIssue(
                    "error",
                    "write-forbidden" if progress.permission else "write-failed",
                    progress.failure,
                    f"Patient/{patient.ref.patient_id}",
                )
            )
        return progress.summary()

    async def _write(
        self, assessment: PatientAssessment, patient: PatientInput, tag: str, progress: _Progress
    ) -> None:
        attempts = 0
        while True:
            attempts += 1
            async with self.pacer.slot():
                failures = await self._attempt_once(assessment, patient, tag, progress)
            if not failures:
                return
            log.info("fhir.write_retry", attempt=attempts, failures=len(failures))
            if attempts >= self._options.max_attempts:
                progress.failure = (
                    f"{len(failures)} write(s) still failing after {attempts} attempts: {failures[0]}"
                )
                return

    async def _attempt_once(
        self, assessment: PatientAssessment, patient: PatientInput, tag: str, progress: _Progress
    ) -> list[str]:
        """Read, plan and send once; the failed writes' messages (empty: all on the server)."""
        issues: list[DataIssue] = []
        existing = await self.existing(patient.ref.patient_id, issues)
        plan = plan_writes(observations_for(assessment, patient), existing, self._client.base_url)
        for value in plan.unchanged_ids:  # written by an earlier attempt whose answer was lost?
            kind = progress.unknown.pop(value, None)
            if kind is not None:
                progress.wrote(value, kind, f"Observation/{existing[value][0].id}")
            progress.outcome.setdefault(value, "unchanged")
        progress.issues = [*issues, *plan.issues]
        if not plan.entries and (progress.provenance_done or not progress.refs):
            return []
        try:
            return await self._attempt(plan, patient, tag, progress)
        except _Conflict:
            self.pacer.slow_down("conflict")
            return ["the server refused the write as conflicting (HTTP 409/412)"]
        except FhirOutcomeUnknown as exc:
            return [f"no answer from the server ({exc.text}); outcome unknown"]

    async def _attempt(
        self, plan: WritePlan, patient: PatientInput, tag: str, progress: _Progress
    ) -> list[str]:
        """Send the plan; the failed writes' messages (empty: everything is on the server)."""
        for value, kind in zip((o["identifier"][0]["value"] for o in plan.written), plan.kinds, strict=True):
            progress.unknown.setdefault(value, kind)
        if self.strategy is WriteStrategy.TRANSACTION and plan.entries:
            failures = await self._whole_transaction(plan, patient, tag, progress)
            if failures is not None:
                return failures
        failures = await self._ordered(plan, progress)
        if failures or not progress.refs or progress.provenance_done:
            return failures
        return await self._provenance(plan, patient, tag, progress)

    # -- transaction: one Bundle ------------------------------------------------------------------
    async def _whole_transaction(
        self, plan: WritePlan, patient: PatientInput, tag: str, progress: _Progress
    ) -> list[str] | None:
        """The atomic strategy; None when the server showed it cannot do it (then `chunked`)."""
        device_url = device_full_url(self._version)
        planned = {_id(o) for o in plan.written}
        targets = [*plan.targets, *(r for v, r in progress.refs.items() if v not in planned)]
        provenance = self._provenance_resource(plan, patient, device_url, targets, progress)
        entries = [
            _conditional_create(device_url, service_device(self._version), "Device"),
            *plan.entries,
            _provenance_entry(provenance, tag, progress.provenance_ref),
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        try:
            response = await self._client.write_bundle(bundle, on_throttle=self._throttled)
        except FhirRejected as exc:
            status = exc.upstream_status or 0
            if status in CONFLICT_STATUSES:
                raise _Conflict from exc
            if status in PERMISSION_STATUSES:
                raise _Forbidden(self._bundle_permission(status, entries, exc.text)) from exc
            if status in TOO_LARGE_STATUSES | UNSUPPORTED_STATUSES:
                self._switch(WriteStrategy.CHUNKED, f"transaction refused (HTTP {status})")
                self._learn_size(len(entries), exc.text)
                return None
            return [exc.text]
        answers = read_answers(response, len(entries))
        failures = self._record(plan.entries, answers[1:-1], plan, progress)
        if answers[0].ok and answers[0].location:
            self._device_ref = answers[0].location
        if not failures and answers[-1].ok:
            progress.provenance_done = True
            return []
        if all(not a.ok for a in answers):
            return failures or [answers[-1].text or "Provenance not written"]
        # Some entries committed, others not: the server does not keep transactions atomic.
        self._switch(WriteStrategy.CHUNKED, "transaction answered in part (entries failed, others committed)")
        if answers[-1].ok:
            progress.provenance_ref = answers[-1].location  # completed by a PUT once all are written
        return failures or [answers[-1].text or "Provenance not written"]

    # -- chunked, batch, single: dependency order -------------------------------------------------
    async def _ordered(self, plan: WritePlan, progress: _Progress) -> list[str]:
        resolved = {observation_full_url(o): r for o in plan.written if (r := progress.refs.get(_id(o)))}
        failures: list[str] = []
        pending = list(zip(plan.entries, plan.written, plan.kinds, strict=True))
        while pending:
            ready = [
                p
                for p in pending
                if all(not r.startswith("urn:") or r in resolved for r in _references(p[0]["resource"]))
            ]
            if not ready:
                break
            pending = [p for p in pending if p not in ready]
            entries = [{**e, "resource": _rewrite_references(e["resource"], resolved)} for e, _, _ in ready]
            answers = await self._send(entries)
            for (entry, written, kind), answer in zip(ready, answers, strict=True):
                if answer.ok:
                    ref = answer.location or await self._locate(
                        "Observation", codes.IDENTIFIER_ASSESSMENT, _id(written)
                    )
                    progress.wrote(_id(written), kind, ref)
                    if ref is not None and entry.get("fullUrl", "").startswith("urn:"):
                        resolved[entry["fullUrl"]] = ref
                else:
                    failures.append(self._entry_failure(entry, answer))
        if pending:
            failures.append(f"{len(pending)} result(s) not sent: they reference results that failed")
        return failures

    async def _provenance(
        self, plan: WritePlan, patient: PatientInput, tag: str, progress: _Progress
    ) -> list[str]:
        if self._device_ref is None:
            (answer,) = await self._send(
                [_conditional_create(device_full_url(self._version), service_device(self._version), "Device")]
            )
            device_ref = answer.location if answer.ok else None
            if answer.ok and device_ref is None:
                identifier = service_device(self._version)["identifier"][0]
                device_ref = await self._locate("Device", identifier["system"], identifier["value"])
            if device_ref is None:
                return [f"Device: {self._failure_text(answer)}"]
            self._device_ref = device_ref
        targets = list(progress.refs.values())
        provenance = self._provenance_resource(plan, patient, self._device_ref, targets, progress)
        entry = _provenance_entry(provenance, tag, progress.provenance_ref)
        (answer,) = await self._send([entry])
        if not answer.ok:
            return [self._entry_failure(entry, answer)]
        progress.provenance_done = True
        return []

    def _provenance_resource(
        self, plan: WritePlan, patient: PatientInput, device: str, targets: list[str], progress: _Progress
    ) -> JsonDict:
        created = "create" in plan.kinds or "created" in progress.outcome.values()
        return provenance_for(
            plan.written,
            patient,
            device_reference=device,
            version=self._version,
            recorded=self._clock(),
            targets=targets,
            activity="CREATE" if created else "UPDATE",
        )

    async def _send(self, entries: list[JsonDict]) -> list[EntryAnswer]:
        """Entries that do not reference each other, by the current strategy; one answer each."""
        if self.strategy is WriteStrategy.SINGLE:
            return [await self._single(entry) for entry in entries]
        answers: list[EntryAnswer] = []
        rest = list(entries)
        while rest:
            size = self.max_entries or len(rest)
            chunk, bundle_type = (
                rest[:size],
                "batch" if self.strategy is WriteStrategy.BATCH else "transaction",
            )
            bundle = {"resourceType": "Bundle", "type": bundle_type, "entry": chunk}
            try:
                response = await self._client.write_bundle(bundle, on_throttle=self._throttled)
            except FhirRejected as exc:
                status = exc.upstream_status or 0
                if status in PERMISSION_STATUSES:
                    raise _Forbidden(self._bundle_permission(status, chunk, exc.text)) from exc
                if status in CONFLICT_STATUSES:
                    raise _Conflict from exc
                if status in TOO_LARGE_STATUSES and len(chunk) > 1:
                    self._learn_size(len(chunk), exc.text)
                    continue
                if status in UNSUPPORTED_STATUSES and self._options.strategy is WriteStrategy.AUTO:
                    if self._fall_back(bundle_type, status) is WriteStrategy.SINGLE:
                        return [*answers, *[await self._single(entry) for entry in rest]]
                    continue
                answers.extend(EntryAnswer(status, None, exc.text) for _ in chunk)
                rest = rest[len(chunk) :]
                continue
            answers.extend(read_answers(response, len(chunk)))
            rest = rest[len(chunk) :]
        return answers

    async def _single(self, entry: JsonDict) -> EntryAnswer:
        return read_answers(
            {"entry": [await self._client.send_entry(entry, on_throttle=self._throttled)]}, 1
        )[0]

    async def _locate(self, resource_type: str, system: str, value: str) -> str | None:
        """The `Type/id` of a resource written without a `location` in the answer, by identifier."""
        async for resource in self._client.search(resource_type, {"identifier": f"{system}|{value}"}):
            if isinstance(resource.get("id"), str):
                return f"{resource_type}/{resource['id']}"
        return None

    # -- learning and reporting ------------------------------------------------------------------
    def _throttled(self, wait_s: float) -> None:
        self.pacer.slow_down("throttled")

    def _switch(self, strategy: WriteStrategy, reason: str) -> None:
        if self.strategy is not strategy:
            log.warning("fhir.write_strategy", strategy=strategy.value, reason=reason)
            self.strategy = strategy

    def _fall_back(self, bundle_type: str, status: int) -> WriteStrategy:
        to = WriteStrategy.BATCH if bundle_type == "transaction" else WriteStrategy.SINGLE
        self._switch(to, f"{bundle_type} Bundles refused (HTTP {status})")
        return to

    def _learn_size(self, sent: int, text: str) -> None:
        named = [int(n) for n in _LIMIT_IN_TEXT.findall(text) if 0 < int(n) < sent]
        self.max_entries = max(1, min(named) if named else sent // 2)
        log.warning("fhir.write_bundle_size", max_entries=self.max_entries)

    def _record(
        self, entries: list[JsonDict], answers: list[EntryAnswer], plan: WritePlan, progress: _Progress
    ) -> list[str]:
        failures = []
        for entry, written, kind, answer in zip(entries, plan.written, plan.kinds, answers, strict=True):
            if answer.ok:
                progress.wrote(_id(written), kind, answer.location)
            else:
                failures.append(self._entry_failure(entry, answer))
        return failures

    def _entry_failure(self, entry: JsonDict, answer: EntryAnswer) -> str:
        request = entry["request"]
        resource_type = entry["resource"]["resourceType"]
        if answer.status in PERMISSION_STATUSES:
            profiled = bool(entry["resource"].get("meta", {}).get("profile"))
            status = answer.status or 0
            raise _Forbidden(
                permission_hint(status, resource_type, request["method"], answer.text, profiled=profiled)
            )
        if answer.status == 409:
            self.pacer.slow_down("conflict")
        return f"{request['method']} {resource_type}: {self._failure_text(answer)}"

    @staticmethod
    def _failure_text(answer: EntryAnswer) -> str:
        status = f"HTTP {answer.status}" if answer.status is not None else "no status"
        return f"{status} {answer.text}".strip()

    @staticmethod
    def _bundle_permission(status: int, entries: list[JsonDict], text: str) -> str:
        """Which of the Bundle's writes the refusal most likely concerns: the results' first."""
        first = next(
            (e for e in entries if e["resource"]["resourceType"] == "Observation"),
            entries[0],
        )
        resource = first["resource"]
        profiled = bool(resource.get("meta", {}).get("profile"))
        return permission_hint(
            status, resource["resourceType"], first["request"]["method"], text, profiled=profiled
        )


def _id(observation: JsonDict) -> str:
    value: str = observation["identifier"][0]["value"]
    return value
