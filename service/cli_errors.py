"""What the command line says when a user's command cannot run: one line, and the fix where there is one.

A mistake (a missing file, a bad date, a FHIR server that cannot be reached, a setting that is
wrong) is not a bug, so it gets a sentence on stderr and a non-zero exit, never a traceback;
`--debug` shows the traceback. Anything not recognised here is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from datetime import date, datetime

import typer
from pydantic import ValidationError

from service.application.errors import ApplicationError, UpstreamRejected, UpstreamUnavailable

USAGE_EXIT = 2
FAILURE_EXIT = 1


def parse_date_option(option: str, value: str) -> date:
    """A calendar date given on the command line (`--as-of 2024-03-15`)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD", param_hint=option) from None


def parse_instant_option(option: str, value: str) -> datetime:
    """An instant with its UTC offset (`--since 2026-11-01T00:00:00+00:00`): FHIR's `_since` needs the zone."""
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise typer.BadParameter(
            f"{value!r} is not an instant with an offset: use e.g. 2026-11-01T00:00:00+00:00",
            param_hint=option,
        )
    return instant


def describe_configuration_error(error: ValidationError) -> str:
    """Each wrong setting as `ONCORESPONSE_<NAME>: what is wrong`, on one line."""
    parts = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"ONCORESPONSE_{name}: {message}" if name else message)
    return "configuration error: " + "; ".join(parts)


def describe(error: BaseException) -> str | None:
    """One line for a user's mistake, None for anything else (a bug)."""
    if isinstance(error, BaseExceptionGroup):
        described = [line for inner in error.exceptions if (line := describe(inner)) is not None]
        return described[0] if described else None
    if isinstance(error, typer.TyperException) and hasattr(error, "format_message"):
        return f"error: {error.format_message()} (see --help)"  # usage errors of the command line
    if isinstance(error, ValidationError):
        return describe_configuration_error(error)
    if isinstance(error, OSError) and error.filename is not None:
        return f"cannot read {error.filename}: {error.strerror or error}"
    if _is_locked_sqlite(error):
        return (
            "the database is locked by another process (another sync on the same SQLite file): run "
            "again when it has finished, or use PostgreSQL for concurrent syncs"
        )
    if isinstance(error, UpstreamUnavailable):
        return (
            f"cannot reach the FHIR server ({error.detail}): check ONCORESPONSE_FHIR_BASE_URL "
            "(or --fhir-base-url) and that the server is up"
        )
    if isinstance(error, UpstreamRejected):
        return f"the FHIR server refused the request: {error.detail}"
    if isinstance(error, ApplicationError):
        return f"{error.title.lower()}: {error.detail}"
    return None


def _is_locked_sqlite(error: BaseException) -> bool:
    """SQLite still locked after its busy timeout. SQLAlchemy is looked up, not imported: a command
    that never loaded it (assess) cannot have raised its errors."""
    database_errors = sys.modules.get("sqlalchemy.exc")
    return (
        database_errors is not None
        and isinstance(error, database_errors.OperationalError)
        and "database is locked" in str(error)
    )


def exit_code_of(error: BaseException) -> int:
    if isinstance(error, ValidationError):
        return USAGE_EXIT
    code = getattr(error, "exit_code", FAILURE_EXIT)  # a usage error carries 2
    return code if isinstance(code, int) and code > 0 else FAILURE_EXIT
