"""Shared fixtures of the FHIR adapter tests: the hand-written contract-shaped patient bundle."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
_PATIENT_BUNDLE: dict[str, Any] = orjson.loads((FIXTURES / "patient-nsclc-pembrolizumab.json").read_bytes())


def patient_resources() -> list[dict[str, Any]]:
    """A fresh copy of every resource of patient p1 (safe to edit in a test)."""
    return [copy.deepcopy(entry["resource"]) for entry in _PATIENT_BUNDLE["entry"]]


def by_id(resources: list[dict[str, Any]], resource_id: str) -> dict[str, Any]:
    return next(r for r in resources if r["id"] == resource_id)


@pytest.fixture
def resources() -> list[dict[str, Any]]:
    return patient_resources()


@asynccontextmanager
async def serving(app: web.Application, prefix: str = "") -> AsyncIterator[str]:
    """Run an aiohttp app on a free port of 127.0.0.1 for the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{prefix}"
    finally:
        await runner.cleanup()
