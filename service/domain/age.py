"""Age in completed years, the way clinical tables count it (a birthday on the day counts)."""

from __future__ import annotations

from datetime import date


def completed_years(birth: date, on: date) -> int:
    """Whole years from `birth` to `on`; 29 February birthdays complete on 1 March in other years."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
