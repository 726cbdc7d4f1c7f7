"""Shared fixtures of the FHIR adapter tests: the hand-written contract-shaped patient bundle."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

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
