"""Request bodies are limited while they stream in; a large `$assess` does not hold the event loop.

- A declared Content-Length above `ONCORESPONSE_API_MAX_BODY_BYTES` is answered 413 before the
  application reads a byte (the ASGI `receive` is never called).
- A chunked body without a length is cut off as soon as it passes the limit: the client's
  remaining chunks are never pulled.
- `$assess` answers its 413 as a FHIR OperationOutcome (issue type `too-long`), the JSON API as
  problem+json.
- A 20,000-entry Bundle is parsed, read, assessed and rendered off the event loop (in a worker
  thread), and `/healthz` is answered while it runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.bootstrap import Container
from service.config import Settings
from service.synthetic import Trajectory, generate_patient

FHIR = {"Content-Type": "application/fhir+json"}
LIMIT = 64 * 1024
CHUNK = 8 * 1024


@pytest.fixture
async def limited(app_settings: Settings) -> AsyncIterator[tuple[Any, Container]]:
    settings = app_settings.model_copy(update={"api_max_body_bytes": LIMIT})
    migrate(settings.database_url)
    async with Container(settings) as box:
        yield create_app(settings, container=box), box


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
    )


async def _raw(
    app: Any, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Call the ASGI app with a receive that fails the test if the body is read."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_declared_length_over_the_limit_is_413_before_any_byte_is_read(
    limited: tuple[Any, Container],
) -> None:
    app, _ = limited
    declared = [(b"content-type", b"application/fhir+json"), (b"content-length", str(300 * 1024**2).encode())]
    status, headers, body = await _raw(app, "/$assess", declared)
    assert status == 413
    assert headers[b"content-type"] == b"application/fhir+json"
    outcome = orjson.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-long"


@pytest.mark.parametrize(
    ("length", "status"),
    [(LIMIT - 1, 400), (LIMIT, 400), (LIMIT + 1, 413)],  # just below, at and just above the limit
)
async def test_the_limit_is_inclusive(limited: tuple[Any, Container], length: int, status: int) -> None:
    app, _ = limited
    async with _client(app) as http:
        r = await http.post("/$assess", content=b" " * length, headers=FHIR)  # blank: not JSON
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(limited: tuple[Any, Container]) -> None:
    app, _ = limited
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):  # 8 MB in total
            pulled += 1
            yield b" " * CHUNK

    async with _client(app) as http:
        r = await http.post("/$assess", content=chunks(), headers=FHIR)
    assert r.status_code == 413
    assert r.json()["issue"][0]["code"] == "too-long"
    assert pulled <= LIMIT // CHUNK + 2  # the chunk that passed the limit, and at most one more


async def test_json_api_answers_413_as_problem_json(limited: tuple[Any, Container]) -> None:
    app, _ = limited
    declared = [(b"content-type", b"application/json"), (b"content-length", str(LIMIT + 1).encode())]
    status, headers, body = await _raw(app, "/alerts/1/acknowledge", declared)
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert orjson.loads(body)["type"] == "/problems/body-too-large"


def _bundle_of(entries_wanted: int) -> tuple[bytes, int]:
    """Generated patients (PR trajectories) until the Bundle has `entries_wanted` entries."""
    entries: list[dict[str, Any]] = []
    i = 0
    while len(entries) < entries_wanted:
        patient = generate_patient(Trajectory.PR, seed=i, patient_id=f"big-{i}")
        entries += [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in patient.resources]
        i += 1
    body = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return orjson.dumps(body), len(entries)


def _recording(calls: list[bool], method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            calls.append(True)  # on the event loop's thread
        except RuntimeError:
            calls.append(False)
        return method(*args, **kwargs)

    return wrapper


async def test_a_20000_entry_assess_runs_off_the_event_loop(app_settings: Settings) -> None:
    body, entries = _bundle_of(20_000)
    assert entries >= 20_000
    migrate(app_settings.database_url)
    async with Container(app_settings) as box:
        on_loop: list[bool] = []
        box.read_bundle = _recording(on_loop, box.read_bundle)  # type: ignore[method-assign]
        box.render_collection = _recording(on_loop, box.render_collection)  # type: ignore[method-assign]
        app = create_app(app_settings, container=box)
        done = threading.Event()
        async with _client(app) as http:

            async def assess() -> httpx.Response:
                try:
                    return await http.post("/$assess?as_of=2026-11-01", content=body, headers=FHIR)
                finally:
                    done.set()

            task = asyncio.create_task(assess())
            answered_meanwhile = 0
            while not done.is_set():
                health = await http.get("/healthz")
                assert health.status_code == 200
                answered_meanwhile += not done.is_set()
                await asyncio.sleep(0.01)
            r = await task
    assert r.status_code == 200
    assert r.json()["resourceType"] == "Bundle"
    assert on_loop == [False, False]  # reading and rendering ran in a worker thread
    assert answered_meanwhile >= 1  # the loop answered health checks during the assessment
