"""Engines and migrations.

Two backends are supported, chosen by URL: SQLite (`sqlite:///./var/oncoresponse.db`, the
default) and PostgreSQL through psycopg 3 (`postgresql+psycopg://user@host:5432/db`; a plain
`postgresql://` URL is read as psycopg 3, the only PostgreSQL driver installed). The same Alembic
migrations (`migrations/versions/`) build both schemas.

Decision (sync engine): the repositories use a synchronous engine and `Session`, and their async
facades run each call in a worker thread (`anyio.to_thread.run_sync`). Calls are short and few
per request, SQLite has no bundled async driver (aiosqlite is not installed), and one code path
for the CLI, the tests and the API is simpler than two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def normalise_url(database_url: str | URL) -> URL:
    """Parse a database URL, mapping `postgresql://` onto the psycopg 3 driver."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql+psycopg")
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if backend == "postgresql" and url.get_driver_name() != "psycopg":
        raise ValueError("PostgreSQL URLs must use the psycopg 3 driver (postgresql+psycopg://...)")
    return url


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or (url.database or "").startswith("file::memory:")


#: How long a SQLite connection waits for another process's write lock before "database is
#: locked": long enough for a concurrent sync's batch write (two syncs on one file then share the
#: patients through leases and wait for each other's writes instead of failing).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _on_sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (SQLAlchemy's
    # pysqlite recipe): DDL then runs inside transactions too, so a failed migration rolls back.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def make_engine(database_url: str | URL, *, echo: bool = False) -> Engine:
    """Create an engine for `database_url`.

    SQLite: the parent directory of the file is created, and every connection gets foreign keys
    on, WAL journaling (readers do not block the writer), a 30 s busy timeout and real
    transactions (`BEGIN` issued by SQLAlchemy, DDL included). An in-memory
    SQLite URL shares one connection across threads, so that the async facades see one database.
    PostgreSQL: pre-ping pooled connections, so that /readyz notices a restarted server, and
    a 5 s connect timeout unless the URL sets `connect_timeout`.
    """
    url = normalise_url(database_url)
    if url.get_backend_name() == "sqlite":
        if _is_sqlite_memory(url):
            engine = create_engine(
                url, echo=echo, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, echo=echo)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    # A bounded connect time, so that /readyz answers instead of hanging on an unreachable host.
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 5}
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = engine
    return config


def migrate(database_url: str | URL, *, revision: str = "head") -> None:
    """Run `alembic upgrade <revision>` (default head) programmatically; a no-op when up to date.

    Safe to call from several replicas at once on PostgreSQL: the migration environment takes a
    transaction-scoped advisory lock first.
    """
    engine = make_engine(database_url)
    try:
        migrate_engine(engine, revision=revision)
    finally:
        engine.dispose()


def migrate_engine(engine: Engine, *, revision: str = "head") -> None:
    """`migrate` on an engine the caller keeps (needed for in-memory SQLite, `sqlite://`)."""
    command.upgrade(_alembic_config(engine), revision)


def downgrade(database_url: str | URL, *, revision: str = "base") -> None:
    """Run `alembic downgrade <revision>` (default base: drop every table)."""
    engine = make_engine(database_url)
    try:
        command.downgrade(_alembic_config(engine), revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in `migrations/versions/`."""
    head = ScriptDirectory(SCRIPT_LOCATION).get_current_head()
    if head is None:
        raise RuntimeError("no migration revisions found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def utc_now() -> datetime:
    """The default clock of the repositories (injectable for tests)."""
    return datetime.now(UTC)


def dialect_insert(session: Session, entity: type[Any]) -> SqliteInsert | PostgresInsert:
    """An INSERT for the session's backend that supports `ON CONFLICT` (both do, same API)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgres_insert(entity)
    return sqlite_insert(entity)
