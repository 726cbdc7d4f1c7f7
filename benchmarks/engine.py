"""What the response engine costs per patient: (a) in-process pipeline, (b) end-to-end sync over HTTP.

Run: `uv run python benchmarks/engine.py [--patients 500] [--repeat 7] [--seed 3] [--sync-patients 100]`.

Data: `service.synthetic.mixed_cohort` (every trajectory in rotation), each patient serialised once
to the bytes of a FHIR collection Bundle, as `POST /$assess` and `oncoresponse assess` receive it.

(a) In-process pipeline. Each patient goes through the whole path in turn; every stage is timed
with `time.perf_counter` and summed over the patients; the figures are the medians over repetitions
of the mean time per patient:

    parse      orjson.loads(bundle bytes)
    inbound    group_bundle_by_patient + patient_input (FHIR dicts -> PatientTimeline)
    engine     service.domain.engine.assess (the rules)
    outbound   assessment_bundle (Observations, Provenance, OperationOutcome as dicts)
    serialise  orjson.dumps(result Bundle)

In-process total = the sum of the five: no I/O at all, so this is the engine's share of the CPU the
service spends on a patient once the data is in memory (an upper bound on its share of any real
run). The anchor is what the simplest possible program does with the same bytes: orjson.loads plus
one walk over the dicts summing each timepoint's target diameters - no rules, no types.

(b) End-to-end sync. What `SyncPatients` does per patient against a FHIR server: the real
`FhirMeasurementSource.timeline_for` (read Patient, the six `patient=` searches, the `_id` fetch of
the BodyStructures; parse and inbound mapping inside), `engine.assess`, and the real
`FhirAssessmentWriter.write` (the identifier search for our earlier results, outbound mapping,
serialise, the transaction POST), over the production `FhirClient` and HTTP stack
(`create_http_client`, aiohttp transport). The server is a canned loopback FHIR stub on 127.0.0.1
in a child process (aiohttp; answers a bounded number of requests, has a deadline, stopped by this
script), serving the same patients' resources as search pages. Patients go one at a time, so the
wall time per patient is the latency a sync pays for it; the stub's own CPU runs on the other core
and is in that wall time as a real server's would be (a remote server adds network latency on top,
which only lowers the engine's share). The client-process CPU per patient is printed beside it.

The engine's share of both totals is printed against the goal (under 5 %).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import multiprocessing
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog
from aiohttp import web

if __package__ in (None, ""):  # `python benchmarks/engine.py` from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loopback import canned, searchset, serve, wait_for
from service import __version__
from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient, create_http_client
from service.adapters.fhir.inbound import group_bundle_by_patient, patient_input
from service.adapters.fhir.outbound import assessment_bundle
from service.adapters.fhir.source import PATIENT_SEARCHES, FhirMeasurementSource
from service.adapters.fhir.writer import FhirAssessmentWriter
from service.application.ports import PatientRef
from service.demo.sekmet import free_port
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.synthetic import cohort_bundle, mixed_cohort
from service.synthetic.cohorts import Cohort

STAGES = ("parse", "inbound", "engine", "outbound", "serialise")
ENGINE_SHARE_GOAL_PCT = 5
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)
_MM_PER_UNIT = {"mm": Decimal(1), "cm": Decimal(10)}


@dataclass(frozen=True, slots=True)
class Report:
    patients: int
    repetitions: int
    stage_ms: dict[str, float]  # median per-patient milliseconds of each stage
    anchor_ms: float

    @property
    def end_to_end_ms(self) -> float:
        return sum(self.stage_ms.values())

    @property
    def engine_share_pct(self) -> float:
        return 100 * self.stage_ms["engine"] / self.end_to_end_ms

    @property
    def engine_to_anchor(self) -> float:
        return self.stage_ms["engine"] / self.anchor_ms

    def lines(self) -> list[str]:
        labels = {
            "parse": "parse (orjson.loads)",
            "inbound": "inbound mapping",
            "engine": "engine (rules)",
            "outbound": "outbound Observations",
            "serialise": "serialise (orjson.dumps)",
        }
        out = [
            f"patients {self.patients}, repetitions {self.repetitions} (median of per-repetition means)",
            f"{'stage':<28}{'ms/patient':>12}{'share':>9}",
        ]
        for stage in STAGES:
            ms = self.stage_ms[stage]
            out.append(f"{labels[stage]:<28}{ms:>12.4f}{100 * ms / self.end_to_end_ms:>8.1f}%")
        out.append(f"{'in-process total':<28}{self.end_to_end_ms:>12.4f}{100:>8.1f}%")
        out.append(f"{'anchor (orjson + dict walk)':<28}{self.anchor_ms:>12.4f}")
        out.append(
            f"(a) engine share of the in-process pipeline: {self.engine_share_pct:.2f} % "
            f"({_verdict(self.engine_share_pct)})"
        )
        out.append(f"engine / anchor: {self.engine_to_anchor:.1f}x")
        return out


def _verdict(share_pct: float) -> str:
    met = share_pct < ENGINE_SHARE_GOAL_PCT
    return f"{'meets' if met else 'does NOT meet'} the under-{ENGINE_SHARE_GOAL_PCT} % goal"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """(b): per-patient means of one sequential sync over the loopback FHIR stub."""

    patients: int
    wall_ms: float  # read + assess + write, wall clock
    cpu_ms: float  # the same, CPU time of this (client) process
    engine_ms: float  # engine.assess alone (CPU time; it does no I/O)
    read_ms: float  # FhirMeasurementSource.timeline_for, wall clock
    write_ms: float  # FhirAssessmentWriter.write, wall clock
    requests: int  # HTTP exchanges with the stub

    @property
    def engine_share_pct(self) -> float:
        return 100 * self.engine_ms / self.wall_ms

    @property
    def engine_share_of_cpu_pct(self) -> float:
        return 100 * self.engine_ms / self.cpu_ms

    def lines(self) -> list[str]:
        return [
            f"(b) end-to-end sync: {self.patients} patients one at a time over HTTP to a loopback FHIR stub, "
            f"{self.requests / self.patients:.1f} requests per patient",
            f"{'read (source, HTTP + map)':<28}{self.read_ms:>12.4f}",
            f"{'engine (rules)':<28}{self.engine_ms:>12.4f}",
            f"{'write (writer, map + HTTP)':<28}{self.write_ms:>12.4f}",
            f"{'end-to-end sync (wall)':<28}{self.wall_ms:>12.4f}",
            f"{'  of which client CPU':<28}{self.cpu_ms:>12.4f}",
            f"engine share of end-to-end sync: {self.engine_share_pct:.2f} % ({_verdict(self.engine_share_pct)}); "
            f"of the client CPU alone: {self.engine_share_of_cpu_pct:.2f} %",
        ]


# --- the anchor: the least a program can do with the same bytes -------------------------------------------
def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return str(value["reference"]).rsplit("/", 1)[-1]
    return None


def anchor_target_sums(raw: bytes) -> dict[str, Decimal]:
    """orjson.loads + one walk: the sum of target diameters per scan date (no rules, no validation)."""
    bundle = orjson.loads(raw)
    targets: dict[str, bool] = {}  # BodyStructure id -> is lymph node
    sizes: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "BodyStructure":
            extensions = {e["url"]: e for e in resource.get("extension", ())}
            role = extensions.get(codes.EXT_LESION_ROLE, {}).get("valueCoding", {}).get("code")
            if role == "target":
                node = extensions.get(codes.EXT_LYMPH_NODE, {}).get("valueBoolean", False)
                targets[resource["id"]] = bool(node)
        elif kind == "Observation" and resource["code"]["coding"][0]["code"] == codes.LOINC_TUMOR_SIZE:
            sizes.append(resource)
    sums: dict[str, Decimal] = {}
    for obs in sizes:
        lesion = _ref_id(obs.get("focus", [None])[0])
        if lesion not in targets:
            continue
        wanted = codes.CODE_SHORT_AXIS if targets[lesion] else codes.LOINC_LONGEST_DIAMETER
        for component in obs.get("component", ()):
            if component["code"]["coding"][0]["code"] == wanted:
                quantity = component["valueQuantity"]
                value = Decimal(str(quantity["value"])) * _MM_PER_UNIT[quantity.get("code", "mm")]
                day = str(obs["effectiveDateTime"])[:10]
                sums[day] = sums.get(day, Decimal(0)) + value
    return sums


# --- the measured path --------------------------------------------------------------------------------------
def _as_of(cohort: Cohort) -> date:
    latest = max(
        max(p.truth.endpoints.last_contact_date, p.truth.endpoints.death_date or "") for p in cohort.patients
    )
    return date.fromisoformat(latest) + timedelta(days=1)


def _one_repetition(payloads: Sequence[bytes], as_of: date, params: AssessmentParameters) -> dict[str, float]:
    """Seconds per stage, summed over all patients; each patient goes through the whole path in turn
    (as a request would), so no stage pays for memory another one keeps alive."""
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    for raw in payloads:
        t0 = clock()
        bundle = orjson.loads(raw)
        t1 = clock()
        grouped, _ = group_bundle_by_patient(bundle)
        inputs = [patient_input(pid, resources) for pid, resources in grouped.items()]
        t2 = clock()
        results = [(assess(p.timeline, params, as_of=as_of), p) for p in inputs if p.timeline is not None]
        t3 = clock()
        answer = assessment_bundle(results, version=__version__, recorded=RECORDED)
        t4 = clock()
        orjson.dumps(answer)
        t5 = clock()
        spent["parse"] += t1 - t0
        spent["inbound"] += t2 - t1
        spent["engine"] += t3 - t2
        spent["outbound"] += t4 - t3
        spent["serialise"] += t5 - t4
    return spent


def run(patients: int = 500, repetitions: int = 7, seed: int = 3) -> Report:
    """Measure every stage and the anchor over the same `patients`, `repetitions` times."""
    if patients < 1 or repetitions < 1:
        raise ValueError("patients and repetitions must be >= 1")
    cohort = mixed_cohort(patients, seed)
    payloads = [
        orjson.dumps(cohort_bundle(Cohort(cohort.name, seed, (patient,)))) for patient in cohort.patients
    ]
    as_of = _as_of(cohort)
    params = AssessmentParameters()
    del cohort  # keep only the bytes: a server does not hold 500 patients' dicts while it works
    gc.collect()
    gc.freeze()  # what is alive now (modules, payloads) is not rescanned by every collection
    try:
        _one_repetition(payloads[: min(20, patients)], as_of, params)  # warm-up: imports, caches
        per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
        anchor: list[float] = []
        for _ in range(repetitions):
            spent = _one_repetition(payloads, as_of, params)
            for stage in STAGES:
                per_stage[stage].append(1000 * spent[stage] / patients)
            started = time.perf_counter()
            for raw in payloads:
                anchor_target_sums(raw)
            anchor.append(1000 * (time.perf_counter() - started) / patients)
    finally:
        gc.unfreeze()
    return Report(
        patients=patients,
        repetitions=repetitions,
        stage_ms={stage: statistics.median(values) for stage, values in per_stage.items()},
        anchor_ms=statistics.median(anchor),
    )


# --- (b) the end-to-end sync over HTTP -------------------------------------------------------------------------
def _serve(port: int, patients: list[list[dict[str, Any]]], max_requests: int, deadline_s: float) -> None:
    """The loopback FHIR stub (child process): canned reads and searches of `patients`, a transaction
    answer for POSTs, an empty CapabilityStatement (so no `_include`: the source fetches BodyStructures
    by `_id`, as on sekmet-fhir). Stops after `max_requests` requests or `deadline_s` seconds."""
    data = canned(patients)
    reads, pages = data.reads, data.pages
    empty = searchset([])
    capability = orjson.dumps({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]})

    async def handle(request: web.Request) -> web.Response:
        parts = request.path.removeprefix("/fhir/").split("/")
        query = request.query
        body = empty
        if parts == ["metadata"]:
            body = capability
        elif request.method == "POST":  # the writer's transaction
            entries = orjson.loads(await request.read()).get("entry", [])
            # Where each result now lives, as a server says it (the writer needs it for references).
            answer = [
                {"response": {"status": "201 Created", "location": f"{_entry_type(e)}/{uuid.uuid4().hex}"}}
                for e in entries
            ]
            body = orjson.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": answer})
        elif len(parts) == 2:
            body = orjson.dumps(reads.get((parts[0], parts[1]), {}))
        elif "identifier" in query:  # the writer's search for its earlier results: none yet
            body = empty
        elif "patient" in query:
            body = pages.get((parts[0], query["patient"]), empty)
        elif "_id" in query:
            wanted = (reads.get((parts[0], i)) for i in query["_id"].split(","))
            body = searchset([r for r in wanted if r is not None])
        return web.Response(body=body, content_type="application/fhir+json")

    serve(port, handle, max_requests, deadline_s)


def _entry_type(entry: dict[str, Any]) -> str:
    resource = entry.get("resource") or {}
    return str(resource.get("resourceType") or entry.get("request", {}).get("url", "Resource").split("?")[0])


async def _sync(base_url: str, ids: Sequence[str], as_of: date, params: AssessmentParameters) -> SyncReport:
    http = create_http_client(transport="aiohttp")  # the production stack (settings default)
    sent = 0

    async def count(request: httpx.Request) -> None:
        nonlocal sent
        sent += 1

    http.event_hooks["request"].append(count)
    try:
        client = FhirClient(http, base_url)
        source = FhirMeasurementSource(client)
        writer = FhirAssessmentWriter(client, version=__version__, clock=lambda: RECORDED)
        read_s = engine_s = write_s = wall_s = cpu_s = 0.0
        wall, cpu = time.perf_counter, time.process_time
        for pid in ids:
            w0, c0 = wall(), cpu()
            patient = await source.timeline_for(PatientRef(pid))
            w1, c1 = wall(), cpu()
            if patient.timeline is None:
                raise RuntimeError("a generated patient did not map")
            assessment = assess(patient.timeline, params, as_of=as_of)
            c2 = cpu()
            w2 = wall()
            await writer.write(assessment, patient)
            w3, c3 = wall(), cpu()
            read_s += w1 - w0
            engine_s += c2 - c1
            write_s += w3 - w2
            wall_s += w3 - w0
            cpu_s += c3 - c0
    finally:
        await http.aclose()
    n = len(ids)
    return SyncReport(
        patients=n,
        wall_ms=1000 * wall_s / n,
        cpu_ms=1000 * cpu_s / n,
        engine_ms=1000 * engine_s / n,
        read_ms=1000 * read_s / n,
        write_ms=1000 * write_s / n,
        requests=sent,
    )


def run_sync(patients: int = 100, seed: int = 3) -> SyncReport:
    """(b): `patients` of the mixed cohort synced one at a time against the loopback stub (best of 3
    rounds by wall time, after a warm-up round)."""
    if patients < 1:
        raise ValueError("patients must be >= 1")
    # The adapters log at info (e.g. `fhir.capabilities`); keep the report readable.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    cohort = mixed_cohort(patients, seed)
    as_of = _as_of(cohort)
    resources = [list(p.resources) for p in cohort.patients]
    ids = [p.patient_id for p in cohort.patients]
    rounds = 4  # one warm-up + three measured
    # Per patient: read Patient, the `patient=` searches, the `_id` fetches, the writer's searches and
    # one transaction per dependency level (CapabilityStatement once per round); the stub stops after
    # this many requests, a safety stop well above what a round needs.
    budget = rounds * (patients * (len(PATIENT_SEARCHES) + 24) + 1)
    port = free_port()
    # fork: the child needs nothing imported by name (this script may be loaded from a path)
    ctx = multiprocessing.get_context("fork")
    server = ctx.Process(target=_serve, args=(port, resources, budget, 600.0), daemon=True)
    server.start()
    try:
        wait_for(port, server.is_alive)
        base = f"http://127.0.0.1:{port}/fhir"
        params = AssessmentParameters()
        reports = [asyncio.run(_sync(base, ids, as_of, params)) for _ in range(rounds)][1:]
    finally:
        server.terminate()
        server.join(10)
    return min(reports, key=lambda r: r.wall_ms)


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (median reported)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--sync-patients",
        type=int,
        default=None,
        help="(b) patients synced over HTTP (default: min(100, --patients))",
    )
    args = parser.parse_args(argv)
    report = run(args.patients, args.repeat, args.seed)
    for line in report.lines():
        print(line)
    if not all(math.isfinite(v) and v > 0 for v in (*report.stage_ms.values(), report.anchor_ms)):
        raise SystemExit("a stage measured no time: too few patients for the clock")
    sync = run_sync(args.sync_patients or min(100, args.patients), args.seed)
    print()
    for line in sync.lines():
        print(line)
    return report


if __name__ == "__main__":
    main()
