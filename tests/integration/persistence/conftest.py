"""Every test here runs twice: on a SQLite file and on PostgreSQL (marker `postgres`).

PostgreSQL is the server at 127.0.0.1:5432, database `test`, user `postgres` (trust auth).
Each test gets a schema of its own (`search_path` set through the URL), dropped afterwards,
so parallel workers and repeated runs never see each other's tables. When the server cannot
be reached the PostgreSQL cases are skipped with the reason, except under CI (`CI` set), where
they fail: CI machines always run that server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from service.adapters.persistence.database import make_engine, migrate

POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(POSTGRES_SERVER_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL at 127.0.0.1:5432/test is unreachable: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an EMPTY database (no tables), on each backend."""
    if request.param == "sqlite":
        # A directory that does not exist yet: make_engine creates it.
        yield f"sqlite:///{tmp_path / 'var' / 'oncoresponse.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"oncoresponse_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_SERVER_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    migrate(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
