"""FHIR Bulk Data ingestion (HL7 FHIR Bulk Data Access 2.0, "$export"), and local NDJSON folders.

Flow (`FhirBulkExport.run`):

1. Kick-off `GET [base]/Patient/$export` or `[base]/Group/<id>/$export` with
   `Prefer: respond-async`, `_type` = the contract's resource types (contract section 1) and
   optional `_since`; the server answers 202 with `Content-Location` (the status URL).
2. Poll the status URL: 202 means in progress (`X-Progress` is logged, `Retry-After` honoured
   between `min_poll_s` and `max_poll_s`, default 2 s); 200 carries the manifest; errors end
   the export (`FhirRejected`/`FhirUnavailable`). The whole wait is bounded by `max_wait_s`.
3. Download each `output` file streamed (`FhirClient.stream_pages`): pages of at most
   `page_lines` lines are parsed with orjson, each line filed under its patient in an
   on-disk spool (`NdjsonSpool`, SQLite in a temporary file; a patient's lines of one page are
   one row), and the page is dropped, so at most one page of parsed objects is alive however
   big the export. The price of that bound: a line is parsed twice, once to find its patient
   and once when the patient is read back (all of a patient's rows at once: decoded by
   `typed.read_resources` into the typed Structs of a REST sync where the usual shapes fit, the
   rest as orjson dicts; `patient_items`); benchmarks/ingest.py prints both steps. The bearer token goes
   with the files only when the manifest says `requiresAccessToken` and they are on the
   server's origin.
4. Each `error` file (NDJSON OperationOutcomes) becomes `DataIssue`s (`export-error`).
5. `BulkMeasurementSource` then serves the exported patients one at a time to the ordinary
   `SyncPatients` use case: their resources are read back from the spool and mapped by
   `inbound.patient_input`, exactly as a REST read would be.

Decisions:
- sekmet-fhir 0.1.1 exports a patient's compartment by indexed references only: BodyStructure
  (its `patient` is not a search parameter there) and Medication (no patient at all) are
  missing from `Patient/$export`. Whatever a patient's Observations and medication records
  reference but the export lacks is fetched over REST with `_id=a,b` searches (as the REST
  reader does), so bulk and REST give the same timelines. Without a FHIR client (a local
  folder only) the missing lesions are reported by the mapper (`lesion-not-found`).
- Resources without a patient (other than Medication) are ignored; a line that is not a JSON
  resource is a `malformed-resource` issue naming the file and line, never an abort.
- The spool is deleted when closed; it holds patient data only for the length of a run.
"""

from __future__ import annotations

import sqlite3
import tempfile
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import orjson
import structlog

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient, Sleep
from service.adapters.fhir.errors import FhirRejected, FhirUnavailable, outcome_summary
from service.adapters.fhir.inbound import patient_input, patient_of
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.typed import TypedResource, read_resources
from service.application.ports import PatientInput, PatientRef
from service.domain.results import DataIssue

__all__ = [
    "EXPORT_TYPES",
    "BulkMeasurementSource",
    "ExportManifest",
    "FhirBulkExport",
    "NdjsonSpool",
]

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]

EXPORT_TYPES: Final = codes.READ_TYPES
_SHARED_TYPES: Final = frozenset({"Medication"})


@dataclass(frozen=True, slots=True)
class ExportFile:
    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True, slots=True)
class ExportManifest:
    transaction_time: str | None
    requires_access_token: bool
    output: tuple[ExportFile, ...]
    error: tuple[ExportFile, ...]

    @classmethod
    def parse(cls, body: Any) -> ExportManifest:
        if not isinstance(body, dict) or not isinstance(body.get("output"), list):
            raise FhirRejected(("structure",), "bulk export manifest has no output list")

        def files(key: str) -> tuple[ExportFile, ...]:
            items = body.get(key)
            return tuple(
                ExportFile(i["type"], i["url"], i.get("count") if isinstance(i.get("count"), int) else None)
                for i in (items if isinstance(items, list) else [])
                if isinstance(i, dict) and isinstance(i.get("type"), str) and isinstance(i.get("url"), str)
            )

        time = body.get("transactionTime")
        return cls(
            transaction_time=time if isinstance(time, str) else None,
            requires_access_token=bool(body.get("requiresAccessToken", True)),
            output=files("output"),
            error=files("error"),
        )


# --- spool ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class SpoolStats:
    lines: int = 0
    resources: int = 0
    pages: int = 0
    max_page: int = 0
    issues: list[DataIssue] = field(default_factory=list)


class NdjsonSpool:
    """Exported resources filed by patient in a temporary SQLite file (see module doc)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="oncoresponse-bulk-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "spool.sqlite3")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # One row per patient and page: the patient's lines of that page joined by commas (the inside
        # of a JSON array, read back with one `orjson.loads`), and the length of each line.
        self._db.execute("CREATE TABLE res (patient TEXT, body BLOB, sizes BLOB)")
        # resources_of() reads one patient at a time: without this index every read scans the spool.
        self._db.execute("CREATE INDEX res_patient ON res (patient)")
        self._db.execute("CREATE TABLE shared (rtype TEXT, rid TEXT, body BLOB, PRIMARY KEY (rtype, rid))")
        self._db.execute("CREATE TABLE patients (patient TEXT PRIMARY KEY)")
        self.stats = SpoolStats()
        self._patient_by_reference: dict[str, str | None] = {}

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> NdjsonSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_page(self, lines: list[bytes], source: str, first_line: int = 1) -> None:
        """Parse one page of NDJSON lines and file each resource; the parsed objects are dropped.

        Parsing is needed to find each line's patient; the line itself is stored, unchanged, and
        parsed again when its patient is read (`resources_of`): the spool bounds memory by holding
        bytes, never a whole export of parsed objects.
        """
        by_patient: dict[str, list[bytes]] = {}
        shared: list[tuple[str, str, bytes]] = []
        patients: list[tuple[str]] = []
        issues = self.stats.issues
        resources = 0
        for offset, line in enumerate(lines):
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError:
                where = f"{source} line {first_line + offset}"
                issues.append(DataIssue("error", "malformed-resource", "line is not JSON", where))
                continue
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            rid = resource.get("id") if isinstance(resource, dict) else None
            if not isinstance(rtype, str) or not isinstance(rid, str) or not rid:
                where = f"{source} line {first_line + offset}"
                issues.append(
                    DataIssue("error", "malformed-resource", "line is not a resource with an id", where)
                )
                continue
            if rtype in _SHARED_TYPES:
                shared.append((rtype, rid, line))
                continue
            if rtype == "Patient":
                patient = rid
                patients.append((rid,))
            else:
                owner = self._patient_of(resource)
                if owner is None:
                    continue
                patient = owner
            resources += 1
            group = by_patient.get(patient)
            if group is None:
                by_patient[patient] = [line]
            else:
                group.append(line)
        self._db.executemany(
            "INSERT INTO res VALUES (?, ?, ?)",
            [
                (patient, b",".join(group), array("Q", map(len, group)).tobytes())
                for patient, group in by_patient.items()
            ],
        )
        self._db.executemany("INSERT OR REPLACE INTO shared VALUES (?, ?, ?)", shared)
        self._db.executemany("INSERT OR IGNORE INTO patients VALUES (?)", patients)
        self.stats.lines += len(lines)
        self.stats.resources += resources + len(shared)
        self.stats.pages += 1
        self.stats.max_page = max(self.stats.max_page, len(lines))

    def _patient_of(self, resource: JsonDict) -> str | None:
        """`inbound.patient_of`, remembering the patient of each reference text: an export names
        each patient in every one of their resources."""
        for key in ("subject", "patient"):
            value = resource.get(key)
            if isinstance(value, dict):
                reference = value.get("reference")
                if isinstance(reference, str):
                    known = self._patient_by_reference
                    if reference in known:
                        return known[reference]
                    found = known[reference] = patient_of({key: value})
                    return found
        return None

    def add_error_page(self, lines: list[bytes], source: str) -> None:
        """Lines of an export error file (OperationOutcomes) -> `export-error` issues."""
        for line in lines:
            try:
                body = orjson.loads(line)
            except orjson.JSONDecodeError:
                body = None
            _, text = outcome_summary(body)
            self.stats.issues.append(
                DataIssue("warning", "export-error", text or "the server reported an export error", source)
            )

    def load_folder(self, folder: Path, *, page_lines: int = 1000) -> None:
        """Every `*.ndjson` file of a local folder (a downloaded export), line by line in pages."""
        files = sorted(folder.glob("*.ndjson"))
        if not files:
            raise FileNotFoundError(f"no .ndjson files in {folder}")
        for path in files:
            is_error = path.stem.lower().startswith(("error", "operationoutcome"))
            with path.open("rb") as handle:
                page: list[bytes] = []
                first = 1
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    if not page:
                        first = number
                    page.append(line)
                    if len(page) >= page_lines:
                        self._file(page, path.name, first, is_error)
                        page = []
                if page:
                    self._file(page, path.name, first, is_error)

    def _file(self, page: list[bytes], source: str, first: int, is_error: bool) -> None:
        if is_error:
            self.add_error_page(page, source)
        else:
            self.add_page(page, source, first)

    def patient_ids(self) -> Iterator[str]:
        for (patient,) in self._db.execute("SELECT patient FROM patients ORDER BY patient"):
            yield patient

    def resources_of(self, patient_id: str) -> list[JsonDict]:
        """The patient's resources, in the order they were filed, parsed with one `orjson.loads`."""
        rows = self._db.execute(
            "SELECT body, sizes FROM res WHERE patient = ? ORDER BY rowid", (patient_id,)
        ).fetchall()
        if not rows:
            return []
        try:  # every stored line parsed alone as an object: so they do as elements of one array
            found: list[JsonDict] = orjson.loads(b"[" + b",".join([body for body, _ in rows]) + b"]")
        except orjson.JSONDecodeError:  # only at orjson's nesting limit, one level deeper here
            return [orjson.loads(line) for body, sizes in rows for line in _lines(body, sizes)]
        return found

    def patient_items(self, patient_id: str) -> list[JsonDict | TypedResource]:
        """`patient_resources`, with the usual shapes as typed resources where they fit
        (`typed.read_resources`; `inbound` maps both kinds alike, tests/unit/fhir/test_bulk_spool.py):
        what `BulkMeasurementSource` maps."""
        rows = self._db.execute(
            "SELECT body FROM res WHERE patient = ? ORDER BY rowid", (patient_id,)
        ).fetchall()
        items: list[JsonDict | TypedResource] = []
        if rows:
            typed_items = read_resources(b"[" + b",".join([body for (body,) in rows]) + b"]")
            items = list(self.resources_of(patient_id)) if typed_items is None else typed_items
        items.extend(self.shared("Medication", _medication_ids(items)))
        return items

    def patient_resources(self, patient_id: str) -> list[JsonDict]:
        """What the spool holds for one patient: their resources and the Medications they reference."""
        resources = self.resources_of(patient_id)
        resources.extend(self.shared("Medication", _medication_ids(resources)))
        return resources

    def shared(self, resource_type: str, ids: Iterable[str]) -> list[JsonDict]:
        found: list[JsonDict] = []
        for rid in ids:
            row = self._db.execute(
                "SELECT body FROM shared WHERE rtype = ? AND rid = ?", (resource_type, rid)
            ).fetchone()
            if row is not None:
                found.append(orjson.loads(row[0]))
        return found


# --- export client ----------------------------------------------------------------------------------
class FhirBulkExport:
    """Kick-off, polling, manifest and streamed download of one export (see module doc)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        sleep: Sleep = anyio.sleep,
        page_lines: int = 1000,
        max_wait_s: float = 3600.0,
        min_poll_s: float = 0.5,
        max_poll_s: float = 60.0,
        default_poll_s: float = 2.0,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._page_lines = page_lines
        self._max_wait_s = max_wait_s
        self._min_poll_s = min_poll_s
        self._max_poll_s = max_poll_s
        self._default_poll_s = default_poll_s

    async def kickoff(
        self,
        level: Literal["patient", "group"],
        *,
        group_id: str | None = None,
        since: datetime | None = None,
        types: Iterable[str] = EXPORT_TYPES,
    ) -> str:
        """Start an export; the status URL (`Content-Location`)."""
        if level == "group" and not group_id:
            raise ValueError("a group export needs a group id")
        path = "Patient/$export" if level == "patient" else f"Group/{group_id}/$export"
        params = {"_type": ",".join(types), "_outputFormat": "application/fhir+ndjson"}
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware")
            params["_since"] = since.isoformat()
        response = await self._client.send(
            "GET",
            path,
            resource_type="Bundle",
            params=params,
            headers={"Prefer": "respond-async"},
        )
        location: str | None = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise FhirRejected(
                ("not-supported",),
                f"bulk export kick-off answered {response.status_code} without a status location",
                status=response.status_code,
            )
        log.info("bulk.kicked_off", level=level)
        return location

    async def wait(self, status_url: str) -> ExportManifest:
        """Poll until the manifest is ready (bounded by `max_wait_s` of accumulated waits)."""
        waited = 0.0
        while True:
            response = await self._client.send(
                "GET", status_url, resource_type="Bundle", accept="application/json"
            )
            if response.status_code == 200:
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    raise FhirRejected(("structure",), "bulk export manifest is not JSON") from None
                manifest = ExportManifest.parse(body)
                log.info("bulk.ready", files=len(manifest.output), error_files=len(manifest.error))
                return manifest
            if response.status_code != 202:
                raise FhirRejected(
                    (), f"bulk export status answered {response.status_code}", status=response.status_code
                )
            delay = self._poll_delay(response.headers.get("Retry-After"))
            if waited + delay > self._max_wait_s:
                raise FhirUnavailable(f"bulk export not finished within {self._max_wait_s:.0f} s")
            log.info("bulk.in_progress", progress=response.headers.get("X-Progress", "")[:40], delay_s=delay)
            await self._sleep(delay)
            waited += delay

    def _poll_delay(self, retry_after: str | None) -> float:
        if retry_after is not None and retry_after.strip().isdigit():
            return min(self._max_poll_s, max(self._min_poll_s, float(retry_after.strip())))
        return self._default_poll_s

    async def download(self, manifest: ExportManifest, spool: NdjsonSpool) -> None:
        """Stream every output file into the spool; error files become issues."""
        for item in manifest.output:
            line = 1
            async for page in self._client.stream_pages(
                item.url, page_lines=self._page_lines, authorise=manifest.requires_access_token
            ):
                spool.add_page(page, f"{item.type} export", line)
                line += len(page)
        for item in manifest.error:
            async for page in self._client.stream_pages(
                item.url, page_lines=self._page_lines, authorise=manifest.requires_access_token
            ):
                spool.add_error_page(page, f"{item.type} export errors")
        log.info(
            "bulk.downloaded",
            resources=spool.stats.resources,
            pages=spool.stats.pages,
            issues=len(spool.stats.issues),
        )

    async def run(
        self,
        spool: NdjsonSpool,
        level: Literal["patient", "group"],
        *,
        group_id: str | None = None,
        since: datetime | None = None,
    ) -> ExportManifest:
        status_url = await self.kickoff(level, group_id=group_id, since=since)
        manifest = await self.wait(status_url)
        await self.download(manifest, spool)
        return manifest


# --- source -----------------------------------------------------------------------------------------
class BulkMeasurementSource:
    """`MeasurementSource` over a filled spool; missing lesions/medications come over REST (module doc)."""

    def __init__(self, spool: NdjsonSpool, rest: FhirMeasurementSource | None = None) -> None:
        """`rest`: a `FhirMeasurementSource` used to fetch referenced resources the export lacks."""
        self._spool = spool
        self._rest = rest

    async def patients(self, *, since: datetime | None = None) -> AsyncIterator[PatientRef]:
        for patient_id in self._spool.patient_ids():
            yield PatientRef(patient_id)

    async def timeline_for(self, patient: PatientRef) -> PatientInput:
        resources = self._spool.patient_items(patient.patient_id)
        if self._rest is not None:
            return await self._rest.complete(patient.patient_id, resources, [])
        return patient_input(patient.patient_id, resources)


def _lines(body: bytes, sizes: bytes) -> Iterator[bytes]:
    """The lines of one stored row (`NdjsonSpool.add_page`): lengths in `sizes`, joined by commas."""
    start = 0
    for size in array("Q", sizes):
        yield body[start : start + size]
        start += size + 1


def _medication_ids(resources: Sequence[JsonDict | TypedResource]) -> list[str]:
    ids: dict[str, None] = {}
    for resource in resources:
        if isinstance(resource, TypedResource):
            typed_reference = getattr(resource, "medicationReference", None)
            ref = None if typed_reference is None else typed_reference.reference
        else:
            reference = resource.get("medicationReference")
            ref = reference.get("reference") if isinstance(reference, dict) else None
        if isinstance(ref, str) and "Medication/" in ref:
            ids[ref.rsplit("/", 1)[-1]] = None
    return list(ids)
