"""Ingestion benchmark (issue 4): prints, in one run, four ratios against their goals.

1. parse: a patient's FHIR search pages -> `PatientInput` (orjson, page walk, `inbound`
   mapping) against `orjson.loads` of the same bytes (goal <= 3x). fhir.resources model
   validation of the same resources is printed for reference (it is kept off the hot path).
2. serialise: a `PatientAssessment` -> transaction Bundle bytes (`outbound` + `writer` +
   orjson) against `orjson.dumps` of the finished Bundle (goal <= 2x).
3. HTTP client CPU per request: `FhirClient` over the production stack (httpx with the
   aiohttp transport) and over httpx's own transport, against a plain `aiohttp.ClientSession`,
   same loopback server, same concurrency (goal <= 3x).
4. patients per second end to end: `SyncPatients` (REST read, assess, write back) against a
   loopback FHIR server serving canned pages (goal >= 300 on one process).

The loopback server is a tiny aiohttp app in a child process on 127.0.0.1: it answers a
bounded number of requests, has a deadline, and is stopped by the parent when the run ends.
CPU is measured with `time.process_time()` in the client process only.

Usage: `uv run python benchmarks/ingest.py [--patients 300] [--requests 3000] [--concurrency 32]`;
`--smoke` runs tiny sizes (used by a test; no timing is asserted anywhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.adapters.fhir.client import FhirClient, create_http_client
from service.adapters.fhir.inbound import patient_input, patient_of
from service.adapters.fhir.resources import validate_resource
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.writer import FhirAssessmentWriter, transaction_bundle
from service.application.assess import AssessPatients, SyncPatients
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.synthetic import Trajectory, generate_patient

AS_OF = date(2026, 11, 1)
RECORDED = datetime(2026, 11, 1, 12, tzinfo=UTC)
CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "rest": [{"mode": "server", "resource": []}],
}


def cohort(n: int) -> list[list[dict[str, Any]]]:
    trajectories = list(Trajectory)
    return [
        generate_patient(trajectories[i % len(trajectories)], seed=1000 + i, patient_id=f"b{i:05d}").resources
        for i in range(n)
    ]


def searchset(resources: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        }
    )


def per_call(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


# --- 1 and 2: parse and serialise ------------------------------------------------------------------
def parse_and_serialise(patients: list[list[dict[str, Any]]], repeat: int) -> None:
    resources = patients[0]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    pages = [searchset(group) for group in by_type.values()]
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")

    def baseline() -> None:
        for page in pages:
            orjson.loads(page)

    def ours() -> None:
        found: list[dict[str, Any]] = []
        for page in pages:
            body = orjson.loads(page)
            for entry in body["entry"]:
                resource = entry.get("resource")
                if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                    found.append(resource)
        patient_input(patient_id, found)

    def models() -> None:
        for page in pages:
            for entry in orjson.loads(page)["entry"]:
                validate_resource(entry["resource"])

    base, mine = per_call(baseline, repeat), per_call(ours, repeat)
    model = per_call(models, max(1, repeat // 20))
    size = sum(len(p) for p in pages)
    print(f"parse       : {len(resources)} resources, {size / 1024:.0f} KiB in {len(pages)} pages")
    print(f"  orjson.loads            {base * 1e6:9.0f} us")
    print(f"  ours (pages -> input)   {mine * 1e6:9.0f} us   ratio {mine / base:5.2f}x  (goal <= 3x)")
    print(f"  fhir.resources models   {model * 1e6:9.0f} us   ratio {model / base:5.2f}x  (reference only)")

    patient = patient_input(patient_id, resources)
    assert patient.timeline is not None
    assessment = assess(patient.timeline, AssessmentParameters(), as_of=AS_OF)

    def build() -> bytes:
        bundle, _ = transaction_bundle(assessment, patient, version="bench", recorded=RECORDED)
        return orjson.dumps(bundle)

    finished, _ = transaction_bundle(assessment, patient, version="bench", recorded=RECORDED)
    base_s = per_call(lambda: orjson.dumps(finished), repeat)
    ours_s = per_call(build, repeat)
    print(f"serialise   : {len(finished['entry'])} entries, {len(orjson.dumps(finished)) / 1024:.0f} KiB")
    print(f"  orjson.dumps            {base_s * 1e6:9.0f} us")
    print(f"  ours (result -> bytes)  {ours_s * 1e6:9.0f} us   ratio {ours_s / base_s:5.2f}x  (goal <= 2x)")


# --- loopback server -------------------------------------------------------------------------------
def serve(port: int, patients: list[list[dict[str, Any]]], max_requests: int, deadline_s: float) -> None:
    """A canned FHIR server (child process): stops after `max_requests` or `deadline_s`."""
    pages: dict[tuple[str, str], bytes] = {}
    reads: dict[tuple[str, str], bytes] = {}
    everyone: list[dict[str, Any]] = []
    for resources in patients:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in resources:
            reads[(r["resourceType"], r["id"])] = orjson.dumps(r)
            if r["resourceType"] == "Patient":
                everyone.append(r)
            owner = r["id"] if r["resourceType"] == "Patient" else patient_of(r)
            if owner:
                groups.setdefault((r["resourceType"], owner), []).append(r)
        pages.update({key: searchset(group) for key, group in groups.items()})
    empty = searchset([])
    fixed = (
        b'{"resourceType":"Bundle","type":"searchset","entry":['
        + b",".join(
            [
                b'{"resource":{"resourceType":"Observation","id":"o%d","status":"final"}}' % i
                for i in range(40)
            ]
        )
        + b"]}"
    )
    served = 0
    stop = asyncio.Event()

    def answer(body: bytes) -> web.Response:
        nonlocal served
        served += 1
        if served >= max_requests:
            stop.set()
        return web.Response(body=body, content_type="application/fhir+json")

    async def handle(request: web.Request) -> web.Response:
        parts = request.path.removeprefix("/fhir/").split("/")
        query = request.query
        if parts == ["x"]:
            return answer(fixed)
        if parts == ["metadata"]:
            return answer(orjson.dumps(CAPABILITY))
        if request.method == "POST":
            bundle = orjson.loads(await request.read())
            entries = [{"response": {"status": "201 Created"}} for _ in bundle["entry"]]
            return answer(
                orjson.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
            )
        if len(parts) == 2:
            return answer(reads.get((parts[0], parts[1]), b"{}"))
        if "identifier" in query:
            return answer(empty)
        if "patient" in query:
            return answer(pages.get((parts[0], query["patient"]), empty))
        if "_id" in query:
            found = [
                orjson.loads(reads[(parts[0], i)]) for i in query["_id"].split(",") if (parts[0], i) in reads
            ]
            return answer(searchset(found))
        if parts == ["Patient"]:
            return answer(searchset(everyone))
        return answer(empty)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=deadline_s)
        await runner.cleanup()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("loopback server did not start")


# --- 3: HTTP client CPU per request ----------------------------------------------------------------
async def http_cpu(base: str, requests: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def timed(one: Callable[[], Any], count: int) -> float:
        async def guarded() -> None:
            async with gate:
                await one()

        await asyncio.gather(*(guarded() for _ in range(min(200, count))))
        start = time.process_time()
        await asyncio.gather(*(guarded() for _ in range(count)))
        return (time.process_time() - start) / count

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def plain() -> None:
            async with session.get(f"{base}/x") as response:
                await response.read()

        baseline = await timed(plain, requests)
    results = {}
    for transport in ("aiohttp", "httpx"):
        n = requests if transport == "aiohttp" else max(50, requests // 5)  # httpx's own is slow
        async with create_http_client(
            max_connections=concurrency, max_keepalive_connections=concurrency, transport=transport
        ) as http:
            client = FhirClient(http, base)

            async def ours(client: FhirClient = client) -> None:
                await client.send("GET", "x", resource_type="Observation")

            results[transport] = await timed(ours, n)
    print(f"http        : {requests} GETs of a 40-entry page, concurrency {concurrency}")
    print(f"  aiohttp.ClientSession   {baseline * 1e6:9.0f} us/request")
    production = results["aiohttp"]
    default = results["httpx"]
    print(
        f"  FhirClient httpx+aiohttp{production * 1e6:9.0f} us/request   ratio {production / baseline:5.2f}x  (goal <= 3x)"
    )
    print(
        f"  FhirClient httpx default{default * 1e6:9.0f} us/request   ratio {default / baseline:5.2f}x  (why: transport.py)"
    )


# --- 4: end to end ---------------------------------------------------------------------------------
async def end_to_end(base: str, n: int, concurrency: int) -> None:
    async with create_http_client(
        max_connections=concurrency, max_keepalive_connections=concurrency, transport="aiohttp"
    ) as http:
        client = FhirClient(http, base)
        sync = SyncPatients(
            FhirMeasurementSource(client),
            FhirAssessmentWriter(client, version="bench", clock=lambda: RECORDED),
            None,
            AssessPatients(AssessmentParameters(), key_salt="bench"),
            concurrency=concurrency,
            key_salt="bench",
        )
        wall, cpu = time.perf_counter(), time.process_time()
        report = await sync(as_of=AS_OF)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = report.patients_assessed / wall
    print(
        f"end to end  : {report.patients_seen} patients, {report.patients_assessed} assessed, {report.created} results"
    )
    print(
        f"  {rate:7.0f} patients/s  ({wall:.2f} s wall, {cpu / max(1, report.patients_seen) * 1e3:.2f} ms CPU per patient)  (goal >= 300)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.patients, args.requests, args.concurrency, args.repeat = 4, 60, 4, 3
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    patients = cohort(args.patients)
    parse_and_serialise(patients, args.repeat)
    port = free_port()
    budget = args.requests * 3 + args.patients * 20 + 1000
    server = multiprocessing.get_context("fork").Process(
        target=serve, args=(port, patients, budget, 600.0), daemon=True
    )
    server.start()
    try:
        wait_for(port)
        base = f"http://127.0.0.1:{port}/fhir"
        asyncio.run(http_cpu(base, args.requests, args.concurrency))
        asyncio.run(end_to_end(base, args.patients, args.concurrency))
    finally:
        server.terminate()
        server.join(10)


if __name__ == "__main__":
    main()
