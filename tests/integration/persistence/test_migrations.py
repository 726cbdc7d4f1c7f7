"""Alembic migrations: the same revisions build SQLite and PostgreSQL, idempotently, and go back."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from service.adapters.persistence.database import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    migrate_engine,
    normalise_url,
)
from service.adapters.persistence.tables import Base

TABLES = {
    "assessment_runs",
    "patient_assessments",
    "alert_outbox",
    "audit_log",
    "cds_token_uses",
    "store_version",
    "patient_leases",
}


def table_names(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_head_from_empty_creates_every_table_and_a_second_run_changes_nothing(
    database_url: str,
) -> None:
    assert table_names(database_url) == set()
    migrate(database_url)
    assert table_names(database_url) == TABLES
    migrate(database_url)  # idempotent: already at head, nothing to do, no error
    assert table_names(database_url) == TABLES
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(engine: Engine) -> None:
    # Autogenerate finds nothing to do when the ORM models and the migrations agree.
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_base_drops_every_table_and_upgrade_rebuilds_them(database_url: str) -> None:
    migrate(database_url)
    downgrade(database_url)
    assert table_names(database_url) == set()
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()
    migrate(database_url)
    assert table_names(database_url) == TABLES


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    # SQLite only checks foreign keys when the connection turns them on (make_engine does).
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO patient_assessments (fhir_patient_id, patient_key, run_id, assessed_at,"
                " data_version, response_group, atypical, result_json)"
                " VALUES ('p1', 'k', 'no-such-run', '2024-01-01 00:00:00', 'v', 'SD', false, '{}')"
            )
        )


def test_sqlite_file_gets_its_directory_and_wal_journal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "oncoresponse.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_failed_sqlite_migration_step_rolls_back(tmp_path: Path) -> None:
    # DDL runs inside the transaction on SQLite too: a table created before a failure is gone.
    engine = make_engine(f"sqlite:///{tmp_path / 'tx.db'}")

    def create_table_then_fail() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")

    try:
        with pytest.raises(IntegrityError):
            create_table_then_fail()
        assert "t" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@db:5432/x", "postgresql+psycopg"),  # psycopg 3 is the only PostgreSQL driver
        ("postgresql+psycopg://u@db:5432/x", "postgresql+psycopg"),
        ("sqlite:///./var/oncoresponse.db", "sqlite"),
    ],
)
def test_urls_map_onto_the_installed_drivers(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@db/x", "postgresql+psycopg2://u@db/x"])
def test_unsupported_backends_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="psycopg"):
        normalise_url(url)


def test_in_memory_sqlite_is_migrated_on_the_engine_that_keeps_it() -> None:
    engine = make_engine("sqlite://")
    try:
        migrate_engine(engine)
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == TABLES
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
