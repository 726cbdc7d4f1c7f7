"""The loopback FHIR stub shared by `engine.py` and `ingest.py`: canned pages, the serve loop, start-up wait.

Each script builds its own request handler from `canned(...)` and runs `serve(...)` in a forked
child process on 127.0.0.1; the stub stops by itself after `max_requests` requests or
`deadline_s` seconds, and the parent terminates it when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from service.adapters.fhir.inbound import patient_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def searchset(resources: list[dict[str, Any]]) -> bytes:
    """A searchset Bundle of `resources` as the server sends it."""
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


@dataclass(frozen=True, slots=True)
class Canned:
    """Every resource by (type, id), and each patient's search page by (type, patient id)."""

    reads: dict[tuple[str, str], dict[str, Any]]
    pages: dict[tuple[str, str], bytes]


def canned(patients: list[list[dict[str, Any]]]) -> Canned:
    reads: dict[tuple[str, str], dict[str, Any]] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for resources in patients:
        for r in resources:
            reads[(r["resourceType"], r["id"])] = r
            owner = r["id"] if r["resourceType"] == "Patient" else patient_of(r)
            if owner:
                groups.setdefault((r["resourceType"], owner), []).append(r)
    return Canned(reads, {key: searchset(group) for key, group in groups.items()})


def serve(port: int, handle: Handler, max_requests: int, deadline_s: float) -> None:
    """Answer with `handle` on 127.0.0.1:`port` until `max_requests` requests or `deadline_s` seconds."""
    served = 0
    stop = asyncio.Event()

    async def counted(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if served >= max_requests:
            stop.set()
        return await handle(request)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", counted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=deadline_s)
        await runner.cleanup()

    asyncio.run(main())


def wait_for(port: int, is_alive: Callable[[], bool] = lambda: True, timeout_s: float = 30) -> None:
    """Return once 127.0.0.1:`port` accepts connections; raise if it does not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and is_alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the loopback FHIR stub did not start")
