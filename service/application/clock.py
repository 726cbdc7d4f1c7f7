"""The one place that reads the clock (the domain never does)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def now() -> datetime:
    return datetime.now(tz=UTC)


def today() -> date:
    return now().date()
