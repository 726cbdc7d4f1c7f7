"""Patient leases shared through the database (migration 0005), on SQLite and PostgreSQL: a run
skips a patient whose lease was live at any time since the run started, and takes over leases that
ended (finished or expired) before it started. The ttl is tested just before, at and after expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from service.adapters.persistence.leases import SqlPatientLeases

T0 = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)


def _leases(engine: Engine, now: list[datetime]) -> SqlPatientLeases:
    return SqlPatientLeases(engine, ttl=TTL, clock=lambda: now[0])


def test_a_live_lease_belongs_to_its_run_only(engine: Engine) -> None:
    now = [T0]
    replica_a, replica_b = _leases(engine, now), _leases(engine, now)
    assert replica_a.try_acquire("p1", "run-a", T0) is True
    assert replica_b.try_acquire("p1", "run-b", T0) is False
    assert replica_a.try_acquire("p1", "run-a", T0) is True  # the holder again: still its lease
    assert replica_b.try_acquire("p2", "run-b", T0) is True


def test_a_concurrent_run_does_not_redo_a_patient_after_the_holder_finished(engine: Engine) -> None:
    now = [T0]
    replica_a, replica_b = _leases(engine, now), _leases(engine, now)
    assert replica_a.try_acquire("p1", "run-a", T0) is True
    now[0] = T0 + timedelta(seconds=30)
    replica_a.release_all("run-a")
    now[0] = T0 + timedelta(seconds=31)
    # run-b started at T0 + 10 s, while run-a held p1: run-a has done p1
    assert replica_b.try_acquire("p1", "run-b", T0 + timedelta(seconds=10)) is False
    # a run started after run-a finished takes p1 again (a new sync re-assesses everyone)
    assert replica_b.try_acquire("p1", "run-c", T0 + timedelta(seconds=31)) is True


@pytest.mark.parametrize(
    ("started_after_expiry", "taken"),
    [(timedelta(seconds=-1), False), (timedelta(0), False), (timedelta(seconds=1), True)],
)
def test_the_lease_of_a_dead_process_is_taken_over_once_it_expired(
    engine: Engine, started_after_expiry: timedelta, taken: bool
) -> None:
    now = [T0]
    dead, alive = _leases(engine, now), _leases(engine, now)
    assert dead.try_acquire("p1", "run-dead", T0) is True  # never released
    expiry = T0 + TTL
    now[0] = expiry + timedelta(seconds=5)
    assert alive.try_acquire("p1", "run-new", expiry + started_after_expiry) is taken
