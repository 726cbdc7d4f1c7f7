"""Fixtures of the alert tests: a migrated SQLite database, its outbox, a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service.adapters.persistence.database import make_engine, migrate
from service.adapters.persistence.outbox import SqlAlertOutbox

SALT = "alerts-test-salt"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2024, 5, 3, 8, 30, tzinfo=UTC))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    migrate(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def outbox(engine: Engine, clock: Clock) -> SqlAlertOutbox:
    return SqlAlertOutbox(engine, patient_key_salt=SALT, clock=clock)
