"""Audit log: append-only entries with aware UTC times and a JSON detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import StatementError

from service.adapters.persistence.audit import AuditLogRepository, SqlAuditLog

NEW_YORK = ZoneInfo("America/New_York")


def test_audit_entries_are_appended_and_read_back_newest_first(engine: Engine) -> None:
    times = iter(
        [datetime(2024, 3, 9, 12, 0, tzinfo=NEW_YORK), datetime(2024, 3, 11, 12, 0, tzinfo=NEW_YORK)]
    )
    audit = AuditLogRepository(engine, clock=lambda: next(times))
    first = audit.record("oncologist@example.org", "assessment.read", {"patient_key": "3f2a9c0d1e4b5a69"})
    second = audit.record("svc-sync", "sync.started", {"patients": 12, "since": None})
    assert second.id > first.id
    entries = audit.recent()
    assert [e.action for e in entries] == ["sync.started", "assessment.read"]
    assert entries[0].detail == {"patients": 12, "since": None}
    # New York moved to daylight saving time on 2024-03-10: 12:00 is 17:00 UTC, then 16:00 UTC.
    assert [e.at for e in entries] == [
        datetime(2024, 3, 11, 16, 0, tzinfo=UTC),
        datetime(2024, 3, 9, 17, 0, tzinfo=UTC),
    ]
    assert audit.recent(limit=1) == entries[:1]


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    audit = AuditLogRepository(engine, clock=lambda: datetime(2024, 3, 9, 12, 0))  # noqa: DTZ001 - on purpose
    with pytest.raises(StatementError, match="timezone-aware"):
        audit.record("someone", "x.y", {})
    assert audit.recent() == []


async def test_async_audit_log_records(engine: Engine) -> None:
    audit = SqlAuditLog(engine)
    before = datetime.now(UTC)
    entry = await audit.record("admin", "alerts.held", {"reason": "no recipient"})
    assert before - timedelta(seconds=1) <= entry.at <= datetime.now(UTC) + timedelta(seconds=1)
    assert await audit.recent() == [entry]
