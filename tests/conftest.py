"""Shared fixtures: a real FHIR server (sekmet-fhir) for end-to-end tests, and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from service.config import Settings
from service.demo import sekmet

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def sekmet_server() -> Iterator[sekmet.SekmetServer]:
    """A real sekmet-fhir on 127.0.0.1 (its own venv under var/), stopped by PID at the end.

    e2e tests share one server per xdist worker; mark them `xdist_group("sekmet")` so that they
    all run on the same worker.
    """
    version = Settings(environment="test").sekmet_version
    server = sekmet.start(ROOT / "var" / f"sekmet-{version}", version=version)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    # The clinical API without tokens; tests/unit/api/test_clinical_auth.py checks them.
    return Settings(
        environment="test", api_auth="off", database_url=f"sqlite:///{tmp_path / 'app.db'}", log_json=False
    )
