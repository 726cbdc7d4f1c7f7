"""Write-back against a loopback FHIR server that behaves like Medplum (aiohttp on 127.0.0.1).

Medplum, unless a project turns atomic transactions on, runs a `transaction` Bundle entry by
entry (its batch processor rewrites a `urn:uuid:` only to entries that succeeded before it) and
answers HTTP 200 with 409 "could not serialize access" entries when writes overlap; with atomic
transactions on it limits transactions holding conditional operations to a few entries; it
throttles with 429 and only the IETF `RateLimit`/`RateLimit-Policy` fields; it may commit and
answer after the client gave up; and it answers 403 when the caller may not resolve
`meta.profile`. The stub reproduces each; the writer is the real one, over real HTTP.

For every behaviour: no result lost and none duplicated (Provenance included) compared with a
reference run against the same stub behaving well, no dangling reference, a truthful summary,
and a second sync that changes nothing (no `amended`). docs/fhir/write-back.md describes the
guarantees tested here.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import pytest
from aiohttp import web

from service.adapters.fhir import codes
from service.adapters.fhir.client import FhirClient, RetryPolicy, create_http_client
from service.adapters.fhir.inbound import patient_input
from service.adapters.fhir.writer import FhirAssessmentWriter, WriteOptions, WriteStrategy
from service.application.assess import AssessPatients, SyncPatients, SyncReport
from service.application.ports import PatientInput
from service.domain.parameters import AssessmentParameters
from service.synthetic import Trajectory, generate_patient
from tests.fakes import FakeAssessmentStore, FakeMeasurementSource
from tests.unit.fhir.conftest import serving

AS_OF = date(2026, 1, 1)
JsonDict = dict[str, Any]
SERIALISATION_FAILURE = "could not serialize access due to concurrent update"


def outcome(status_text: str, code: str = "processing") -> JsonDict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "details": {"text": status_text}}],
    }


@dataclass
class MedplumLike:
    """The parts of Medplum's FHIR API the writer uses, with its production behaviours as switches."""

    atomic: bool = False
    conditional_limit: int | None = None  # atomic transactions with conditional entries: at most this
    throttled_writes: int = 0  # the next writes answered 429 with only RateLimit fields
    slow_writes: int = 0  # the next writes are committed, then answered after `slow_s`
    slow_s: float = 0.0
    forbid_profiles: bool = False  # 403 for resources naming a meta.profile
    store: dict[str, dict[str, JsonDict]] = field(default_factory=dict)
    conflicts: int = 0
    bundle_sizes: list[int] = field(default_factory=list)
    in_flight: int = 0
    next_id: int = 0
    singles: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/fhir/{type}", self.search)
        app.router.add_post("/fhir/", self.bundle)
        app.router.add_post("/fhir/{type}", self.single)
        app.router.add_put("/fhir/{type}/{id}", self.single)
        return app

    async def single(self, request: web.Request) -> web.Response:
        """A plain REST create or update, with `If-None-Exist` / `If-Match` as Medplum reads them."""
        self.singles += 1
        url = request.path.removeprefix("/fhir/")
        entry_request = {"method": request.method, "url": url}
        if "If-None-Exist" in request.headers:
            entry_request["ifNoneExist"] = request.headers["If-None-Exist"]
        if "If-Match" in request.headers:
            entry_request["ifMatch"] = request.headers["If-Match"]
        answer = self.apply({"resource": await request.json(), "request": entry_request}, {})["response"]
        status = int(answer["status"])
        headers = {"Location": answer["location"]} if "location" in answer else None
        return self.json(answer.get("outcome") or {}, status=status, headers=headers)

    # -- reads ------------------------------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        found = list(self.store.get(request.match_info["type"], {}).values())
        patient = request.query.get("patient")
        if patient:
            found = [r for r in found if r.get("subject", {}).get("reference") == f"Patient/{patient}"]
        if "identifier" in request.query:
            system, _, value = request.query["identifier"].partition("|")
            found = [
                r
                for r in found
                if any(i["system"] == system and value in ("", i["value"]) for i in r.get("identifier", []))
            ]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in found]
        return self.json({"resourceType": "Bundle", "type": "searchset", "entry": entries})

    def matches(self, resource_type: str, criterion: str) -> list[JsonDict]:
        name, _, token = criterion.partition("=")
        system, _, value = token.partition("|")
        out = []
        for resource in self.store.get(resource_type, {}).values():
            if name == "identifier":
                pairs = [(i["system"], i["value"]) for i in resource.get("identifier", [])]
            else:  # _tag
                pairs = [(t["system"], t["code"]) for t in resource.get("meta", {}).get("tag", [])]
            if (system, value) in pairs:
                out.append(resource)
        return out

    # -- writes -----------------------------------------------------------------------------------
    async def bundle(self, request: web.Request) -> web.Response:
        body = await request.json()
        entries = body["entry"]
        if self.throttled_writes:
            self.throttled_writes -= 1
            return self.json(
                outcome("Too many requests", "throttled"),
                status=429,
                headers={
                    "RateLimit": '"fhirInteractions";r=0;t=52',
                    "RateLimit-Policy": '"fhirInteractions";q=50000;w=60',
                },
            )
        self.bundle_sizes.append(len(entries))
        conditional = [e for e in entries if e["request"].get("ifNoneExist") or e["request"].get("ifMatch")]
        if self.atomic and self.conditional_limit is not None and len(conditional) > self.conditional_limit:
            text = f"Transaction with conditional operations is limited to {self.conditional_limit} entries"
            return self.json(outcome(text, "too-costly"), status=400)
        answers = await (self.atomically(entries) if self.atomic else self.entry_by_entry(entries))
        if self.slow_writes:  # committed; the answer comes late
            self.slow_writes -= 1
            await asyncio.sleep(self.slow_s)
        kind = f"{body['type']}-response"
        return self.json({"resourceType": "Bundle", "type": kind, "entry": answers})

    async def atomically(self, entries: list[JsonDict]) -> list[JsonDict]:
        saved = {rtype: dict(rows) for rtype, rows in self.store.items()}  # `apply` replaces, never edits
        answers, ids = [], {}
        for entry in entries:
            answer = self.apply(self.rewrite(entry, ids), ids)
            answers.append(answer)
            if not answer["response"]["status"].startswith("2"):
                self.store = saved  # all or nothing (a real atomic server answers 4xx; see tests)
                return [answer for _ in entries]
        return answers

    async def entry_by_entry(self, entries: list[JsonDict]) -> list[JsonDict]:
        self.in_flight += 1
        try:
            answers, ids = [], {}
            for entry in entries:
                await asyncio.sleep(0.002)  # other requests run between entries
                if self.in_flight > 1 and entry["resource"]["resourceType"] in ("Observation", "Provenance"):
                    self.conflicts += 1
                    answers.append({"response": {"status": "409", "outcome": outcome(SERIALISATION_FAILURE)}})
                    continue
                answers.append(self.apply(self.rewrite(entry, ids), ids))
            return answers
        finally:
            self.in_flight -= 1

    @staticmethod
    def rewrite(entry: JsonDict, ids: dict[str, str]) -> JsonDict:
        """Medplum's batch processor: `urn:uuid:` references to entries that succeeded become ids."""
        text = orjson.dumps(entry).decode()
        for urn, ref in ids.items():
            text = text.replace(f'"{urn}"', f'"{ref}"')
        rewritten: JsonDict = orjson.loads(text)
        return rewritten

    def apply(self, entry: JsonDict, ids: dict[str, str]) -> JsonDict:
        resource, request = copy.deepcopy(entry["resource"]), entry["request"]
        rtype = resource["resourceType"]
        if self.forbid_profiles and resource.get("meta", {}).get("profile"):
            return {"response": {"status": "403", "outcome": outcome("Forbidden", "forbidden")}}
        table = self.store.setdefault(rtype, {})
        if request["method"] == "PUT":
            rid = request["url"].split("/")[1]
            current = table.get(rid)
            if current is None:
                return {"response": {"status": "404", "outcome": outcome("Not found", "not-found")}}
            if request.get("ifMatch") and request["ifMatch"] != f'W/"{current["meta"]["versionId"]}"':
                return {"response": {"status": "412", "outcome": outcome("Version mismatch", "conflict")}}
            version = str(int(current["meta"]["versionId"]) + 1)
            resource["id"] = rid
            resource["meta"] = {**resource.get("meta", {}), "versionId": version}
            table[rid] = resource
            return {"response": {"status": "200", "location": f"{rtype}/{rid}/_history/{version}"}}
        if request.get("ifNoneExist"):
            existing = self.matches(rtype, request["ifNoneExist"])
            if existing:
                ref = f"{rtype}/{existing[0]['id']}"
                if entry.get("fullUrl", "").startswith("urn:"):
                    ids[entry["fullUrl"]] = ref
                return {"response": {"status": "200", "location": ref}}
        self.next_id += 1
        resource["id"] = f"{rtype[:3].lower()}{self.next_id}"
        resource["meta"] = {**resource.get("meta", {}), "versionId": "1"}
        table[resource["id"]] = resource
        ref = f"{rtype}/{resource['id']}"
        if entry.get("fullUrl", "").startswith("urn:"):
            ids[entry["fullUrl"]] = ref
        return {"response": {"status": "201", "location": f"{ref}/_history/1"}}

    @staticmethod
    def json(body: JsonDict, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            body=orjson.dumps(body), status=status, headers=headers, content_type="application/fhir+json"
        )

    def of_type(self, resource_type: str) -> list[JsonDict]:
        return list(self.store.get(resource_type, {}).values())


# --- the patients and the sync -------------------------------------------------------------------
def cohort(n: int) -> list[PatientInput]:
    trajectories = list(Trajectory)
    out = []
    for i in range(n):
        generated = generate_patient(
            trajectories[i % len(trajectories)], seed=300 + i, patient_id=f"wb-{i:02d}"
        )
        out.append(patient_input(f"wb-{i:02d}", generated.resources))
    return out


PATIENTS = cohort(10)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@dataclass
class Run:
    report: SyncReport
    writer: FhirAssessmentWriter
    sleeps: Sleeps


async def sync(
    base_url: str,
    *,
    strategy: WriteStrategy = WriteStrategy.AUTO,
    concurrency: int = 8,
    write_timeout_s: float = 10.0,
    max_wait_s: float = 120.0,
    patients: list[PatientInput] = PATIENTS,
) -> Run:
    sleeps = Sleeps()
    async with create_http_client(timeout_s=10.0) as http:
        client = FhirClient(
            http,
            base_url,
            retry=RetryPolicy(max_wait_s=max_wait_s),
            sleep=sleeps,
            write_timeout_s=write_timeout_s,
        )
        writer = FhirAssessmentWriter(
            client, version="0.1.0", options=WriteOptions(strategy=strategy, concurrency=concurrency)
        )
        assessor = AssessPatients(AssessmentParameters(), key_salt="t")
        use_case = SyncPatients(
            FakeMeasurementSource(patients),
            writer,
            FakeAssessmentStore(),
            assessor,
            concurrency=concurrency,
            key_salt="t",
        )
        report = await use_case(as_of=AS_OF)
    return Run(report, writer, sleeps)


_REFERENCE: dict[str, JsonDict] = {}


@pytest.fixture
async def reference() -> dict[str, JsonDict]:
    """Our results as a well-behaved (atomic, unthrottled) server stores them (one run per module)."""
    if not _REFERENCE:
        server = MedplumLike(atomic=True)
        async with serving(server.app(), "/fhir") as base:
            run = await sync(base)
        assert run.report.writes_failed == 0
        _REFERENCE.update(results(server))
    return copy.deepcopy(_REFERENCE)


def results(server: MedplumLike) -> dict[str, JsonDict]:
    """Our Observations by identifier: content without server fields, our references by identifier."""
    by_ref = {f"Observation/{o['id']}": identifier(o) for o in server.of_type("Observation")}
    out = {}
    for observation in server.of_type("Observation"):
        content = {k: v for k, v in observation.items() if k not in ("id", "meta", "status")}
        for key in ("derivedFrom", "hasMember"):
            if key in content:
                content[key] = [by_ref.get(r["reference"], r["reference"]) for r in content[key]]
        out[identifier(observation)] = content
    return out


def identifier(observation: JsonDict) -> str:
    return next(i["value"] for i in observation["identifier"] if i["system"] == codes.IDENTIFIER_ASSESSMENT)


def assert_complete(server: MedplumLike, reference: dict[str, JsonDict], *, writing_runs: int = 1) -> None:
    observations = server.of_type("Observation")
    counts = Counter(identifier(o) for o in observations)
    assert max(counts.values()) == 1, "a result was written twice"
    assert results(server) == reference, "a result is missing, extra or different"
    ids = {f"Observation/{o['id']}" for o in observations}
    for observation in observations:
        for ref in observation.get("derivedFrom", []) + observation.get("hasMember", []):
            assert not ref["reference"].startswith("urn:"), "a reference to a result that was never stored"
    provenances = server.of_type("Provenance")
    assert len(provenances) == writing_runs * len(PATIENTS), "Provenance missing or duplicated"
    (device,) = server.of_type("Device")
    for provenance in provenances:
        assert {t["reference"] for t in provenance["target"]} <= ids
        assert provenance["agent"][0]["who"]["reference"] == f"Device/{device['id']}"
    assert all(o["status"] == "final" for o in observations), "a result marked amended without a change"


async def assert_converged(base: str, server: MedplumLike, reference: dict[str, JsonDict]) -> None:
    """The next sync finds everything in place and writes nothing."""
    before = copy.deepcopy(server.store)
    again = await sync(base, concurrency=8)
    assert (again.report.created, again.report.updated, again.report.writes_failed) == (0, 0, 0)
    assert again.report.unchanged == len(reference)
    assert server.store == before


# --- behaviours ----------------------------------------------------------------------------------
async def test_non_atomic_transactions_with_409_entries_at_concurrency_8_end_with_every_result(
    reference: dict[str, JsonDict],
) -> None:
    server = MedplumLike(atomic=False)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, concurrency=8)
        assert server.conflicts > 0, "the stub produced no serialisation conflict"
        assert run.writer.pacer.lowest < 8  # fewer patients written at once after the 409s
        assert (run.report.writes_failed, run.report.patients_failed) == (0, 0)
        assert run.report.created == len(reference)
        assert_complete(server, reference)
        await assert_converged(base, server, reference)


async def test_whole_patient_transactions_on_a_non_atomic_server_are_repaired_without_amending(
    reference: dict[str, JsonDict],
) -> None:
    server = MedplumLike(atomic=False)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, strategy=WriteStrategy.TRANSACTION, concurrency=8)
        assert server.conflicts > 0
        assert run.writer.strategy is WriteStrategy.CHUNKED  # switched on the first partial answer
        assert run.report.writes_failed == 0
        assert_complete(server, reference)
        await assert_converged(base, server, reference)


@pytest.mark.parametrize("strategy", [WriteStrategy.BATCH, WriteStrategy.SINGLE])
async def test_batch_and_single_requests_on_a_non_atomic_server_end_with_every_result(
    reference: dict[str, JsonDict], strategy: WriteStrategy
) -> None:
    server = MedplumLike(atomic=False)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, strategy=strategy, concurrency=8)
        assert run.report.writes_failed == 0
        assert (server.singles > 0) is (strategy is WriteStrategy.SINGLE)
        assert_complete(server, reference)
        await assert_converged(base, server, reference)


@pytest.mark.parametrize("strategy", [WriteStrategy.AUTO, WriteStrategy.TRANSACTION])
async def test_transactions_over_the_servers_entry_limit_are_split(
    reference: dict[str, JsonDict], strategy: WriteStrategy
) -> None:
    server = MedplumLike(atomic=True, conditional_limit=8)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, strategy=strategy)
        assert run.writer.max_entries == 8  # the number in the server's OperationOutcome
        assert run.report.writes_failed == 0
        assert_complete(server, reference)
        await assert_converged(base, server, reference)
    accepted = [size for size in server.bundle_sizes if size <= 8]
    assert accepted, "nothing was sent within the limit"


async def test_429_with_only_ratelimit_fields_waits_what_the_server_says(
    reference: dict[str, JsonDict],
) -> None:
    server = MedplumLike(atomic=True, throttled_writes=3)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base)
        # RateLimit: "fhirInteractions";r=0;t=52 -> 52 s (draft-ietf-httpapi-ratelimit-headers)
        assert run.sleeps.calls.count(52.0) == 3
        assert run.writer.pacer.lowest < 8
        assert run.report.writes_failed == 0
        assert_complete(server, reference)
        await assert_converged(base, server, reference)


async def test_throttling_longer_than_the_wait_budget_fails_patients_not_the_sync(
    reference: dict[str, JsonDict],
) -> None:
    server = MedplumLike(atomic=True, throttled_writes=10_000)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, max_wait_s=100.0)  # one wait of 52 s fits, a second does not
        report = run.report
        assert report.writes_failed == report.patients_failed == len(PATIENTS)
        assert report.created == 0
        messages = {i.message for i in report.issues if i.code == "write-failed"}
        assert all(m.startswith("server unavailable: Too many requests") for m in messages)
        assert all(call == 52.0 for call in run.sleeps.calls)
        server.throttled_writes = 0
        repaired = await sync(base)
        assert (repaired.report.writes_failed, repaired.report.created) == (0, len(reference))
        assert_complete(server, reference)
        await assert_converged(base, server, reference)


@pytest.mark.parametrize("strategy", [WriteStrategy.AUTO, WriteStrategy.TRANSACTION])
async def test_a_commit_answered_after_the_timeout_creates_nothing_twice(
    reference: dict[str, JsonDict], strategy: WriteStrategy
) -> None:
    server = MedplumLike(atomic=True, slow_writes=4, slow_s=0.8)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, strategy=strategy, write_timeout_s=0.25)
        assert server.slow_writes == 0
        assert run.report.writes_failed == 0
        assert run.report.created == len(reference)  # what the lost answers committed is counted
        assert_complete(server, reference)  # one Provenance per patient, no duplicated result
        await assert_converged(base, server, reference)


async def test_403_on_writes_names_the_missing_scope_once(reference: dict[str, JsonDict]) -> None:
    server = MedplumLike(atomic=False, forbid_profiles=True)
    async with serving(server.app(), "/fhir") as base:
        run = await sync(base, concurrency=1)
        report = run.report
        assert report.writes_failed == report.patients_failed == len(PATIENTS)
        (permission,) = report.permissions
        assert "create Observation" in permission
        assert "system/StructureDefinition.rs" in permission
        assert "Forbidden" in permission
        assert {i.code for i in report.issues} >= {"write-forbidden"}
        assert server.of_type("Observation") == []
        server.forbid_profiles = False  # the scope granted
        await sync(base, concurrency=1)
        assert_complete(server, reference)
        await assert_converged(base, server, reference)
