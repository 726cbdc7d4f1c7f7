"""The `oncoresponse` command line.

Each command imports what it uses inside its function, so that a command pays only for its own
stack: `assess` never loads the database, the HTTP client or the web framework
(benchmarks/startup.py keeps it honest), and prints how long each phase took.
"""

from __future__ import annotations

import gc
import ipaddress
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from pydantic import ValidationError

from service.cli_errors import (
    describe,
    describe_configuration_error,
    exit_code_of,
    parse_date_option,
    parse_instant_option,
)
from service.config import Settings
from service.phases import PhaseTimer

if TYPE_CHECKING:
    from service.application.assess import SyncReport

_STARTED = time.perf_counter()

app = typer.Typer(
    name="oncoresponse",
    help=(
        "Tumour response (RECIST 1.1, iRECIST, dissociated response, pseudoprogression) over HL7 FHIR. "
        "Errors are one line; add --debug to any command to see the traceback."
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        typer.echo(describe_configuration_error(exc), err=True)
        raise typer.Exit(2) from None


def _configure_logging(settings: Settings) -> None:
    from service.observability import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)


def _fhir_command_settings(fhir_base_url: str | None) -> Settings:
    """Settings for a command that talks to the FHIR server: logging on, server required, DB migrated."""
    from service.adapters.persistence.database import migrate

    settings = _settings(fhir_base_url=fhir_base_url)
    _configure_logging(settings)
    if settings.fhir_base_url is None:
        typer.echo("no FHIR server: set ONCORESPONSE_FHIR_BASE_URL or --fhir-base-url", err=True)
        raise typer.Exit(2)
    migrate(settings.database_url)
    return settings


def _echo_report(report: SyncReport, *, extra_issues: int = 0) -> None:
    if report.stale_runs_closed:
        typer.echo(f"{report.stale_runs_closed} earlier run(s) never finished (crashed): marked failed")
    previous = report.previous_run
    if previous is not None:
        state = previous.status
        if previous.finished_at is None:
            state = "running: still going elsewhere, or it ended without closing (crashed)"
        typer.echo(f"previous run {previous.run_id}: {state}")
    typer.echo(
        f"patients {report.patients_seen}, assessed {report.patients_assessed}, "
        f"failed {report.patients_failed}, created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, issues {len(report.issues) + extra_issues}"
        + _why_not_assessed(report.not_assessed)
    )
    if report.writes_failed:
        typer.echo(
            f"results not (all) written for {report.writes_failed} patient(s); the next sync repairs them",
            err=True,
        )
        first = next((i.message for i in report.issues if i.code in _WRITE_FAILURES), None)
        if first is not None and not report.permissions:
            typer.echo(f"first failure: {first}", err=True)
    for permission in report.permissions:
        typer.echo(f"permission refused: {permission}", err=True)


_WRITE_FAILURES = frozenset({"write-failed", "write-forbidden"})
# Exit codes of sync and ingest-bulk (docs/fhir/write-back.md): 0 every assessable patient's results
# are on the server, 1 some were not written, 3 the run was aborted (marked failed), 130 interrupted.
EXIT_WRITES_FAILED = 1
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130


def _run_sync(body: Callable[[], Awaitable[SyncReport]], extra_issues: Callable[[], int] = lambda: 0) -> None:
    """Run a sync to its end: its summary and a truthful exit code; one line, never a traceback, on abort."""
    import anyio

    try:
        report = anyio.run(body)
    except KeyboardInterrupt:
        typer.echo("sync interrupted, run marked failed", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # task groups wrap the error in exception groups; describe() looks inside
        reason = describe(exc)
        if reason is None:
            raise
        typer.echo(f"sync aborted, run marked failed: {reason}", err=True)
        raise typer.Exit(EXIT_ABORTED) from None
    _echo_report(report, extra_issues=extra_issues())
    if report.writes_failed:
        raise typer.Exit(EXIT_WRITES_FAILED)


def _why_not_assessed(reasons: dict[str, int]) -> str:
    """`; not assessed: 2 no-ici-start, 1 lesion-not-found` (empty when every patient was)."""
    if not reasons:
        return ""
    return "; not assessed: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items())


@app.command()
def assess(
    file: Annotated[Path, typer.Argument(help="A FHIR Bundle (JSON) of one or more patients; '-' for stdin")],
    out: Annotated[Path | None, typer.Option(help="Write the result Bundle here (default: stdout)")] = None,
    as_of: Annotated[str | None, typer.Option(help="Ignore data after this date (YYYY-MM-DD)")] = None,
) -> None:
    """Assess a FHIR Bundle and print the result Bundle (Observations + OperationOutcome). Writes nothing."""
    timer = PhaseTimer(started=_STARTED)
    from service.adapters.fhir.collection import read_patients, render_collection
    from service.application.assess import AssessPatients, not_assessed_reasons
    from service.application.clock import now, today
    from service.application.errors import InvalidInput

    settings = _settings(environment="development")
    _configure_logging(settings)
    timer.done("start-up")
    reference = parse_date_option("--as-of", as_of) if as_of else today()
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()  # OSError: main() says it
    try:
        posted = read_patients(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidInput) as exc:
        typer.echo(f"invalid input: {exc}", err=True)
        raise typer.Exit(1) from None
    timer.done("read")
    assessor = AssessPatients(
        settings.assessment_parameters(), key_salt=settings.patient_key_salt.get_secret_value()
    )
    outcomes = assessor(posted.patients, as_of=reference)
    timer.done("assess")
    bundle = render_collection(outcomes, posted.issues, recorded=now())
    body = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
    if out is None:
        sys.stdout.buffer.write(body + b"\n")
    else:
        out.write_bytes(body)
    timer.done("write")
    reasons = not_assessed_reasons(outcomes)
    failed = sum(reasons.values())
    typer.echo(
        f"assessed {len(outcomes) - failed} patient(s), {failed} not assessed" + _why_not_assessed(reasons),
        err=True,
    )
    typer.echo(timer.line(), err=True)


@app.command()
def sync(
    fhir_base_url: Annotated[
        str | None, typer.Option(help="FHIR server (default: ONCORESPONSE_FHIR_BASE_URL)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only patients changed after this ISO instant")] = None,
) -> None:
    """Pull patients from the FHIR server, assess them and write the Observations back."""
    from service.application.clock import today
    from service.bootstrap import Container

    settings = _fhir_command_settings(fhir_base_url)
    since_dt = parse_instant_option("--since", since) if since else None

    async def run() -> SyncReport:
        async with Container(settings) as box:
            return await box.require_sync()(as_of=today(), since=since_dt)

    _run_sync(run)


@app.command("ingest-bulk")
def ingest_bulk(
    group: Annotated[
        str | None, typer.Option(help="Export Group/<id>/$export instead of Patient/$export")
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(help="Read a local folder of .ndjson files (a downloaded export) instead of exporting"),
    ] = None,
    since: Annotated[str | None, typer.Option(help="_since of the export (ISO instant with offset)")] = None,
    fhir_base_url: Annotated[
        str | None, typer.Option(help="FHIR server (default: ONCORESPONSE_FHIR_BASE_URL)")
    ] = None,
) -> None:
    """Bulk Data ingestion: $export (or a local NDJSON folder), assess, write back.

    The export is streamed page by page into a temporary on-disk spool; each patient is then
    assessed and written back exactly like `sync` (conditional creates, amended updates).
    """

    from service.adapters.fhir.bulk import BulkMeasurementSource, NdjsonSpool
    from service.application.clock import today
    from service.bootstrap import Container

    settings = _fhir_command_settings(fhir_base_url)
    since_dt = parse_instant_option("--since", since) if since else None

    export_issues = 0

    async def run() -> SyncReport:
        nonlocal export_issues
        async with Container(settings) as box:
            with NdjsonSpool() as spool:
                if from_dir is not None:
                    spool.load_folder(from_dir, page_lines=settings.fhir_bulk_page_lines)
                else:
                    await box.bulk_export().run(
                        spool, "group" if group else "patient", group_id=group, since=since_dt
                    )
                report = await box.bulk_sync(BulkMeasurementSource(spool, box.fhir_source))(
                    as_of=today(), trigger="cli"
                )
                export_issues = len(spool.stats.issues)
                return report

    _run_sync(run, lambda: export_issues)


@app.command("deliver-alerts")
def deliver_alerts() -> None:
    """Deliver the due alerts once (FHIR Communication + Flag, signed webhooks); for cron."""
    import os

    import anyio

    from service.adapters.alerts import fault_injection
    from service.adapters.persistence.database import migrate
    from service.application.errors import NotConfigured
    from service.bootstrap import Container

    settings = _settings()
    _configure_logging(settings)
    # Test-only fault injection (crash tests kill this process at a pause point): NOT a setting,
    # read here and nowhere else, ignored unless ONCORESPONSE_ENVIRONMENT is test or development.
    # See service/adapters/alerts/fault_injection.py.
    try:
        pause_at = fault_injection.pause_point(
            os.environ.get(fault_injection.PAUSE_ENV), environment=settings.environment
        )
    except fault_injection.UnknownPausePoint as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    migrate(settings.database_url)

    async def run() -> None:
        async with Container(settings) as box:
            try:
                deliver = box.require_alert_delivery()
                if pause_at is not None:
                    deliver = fault_injection.with_pause(deliver, pause_at)
                report = await deliver()
            except NotConfigured as exc:
                typer.echo(f"not configured: {exc.detail}", err=True)
                raise typer.Exit(2) from None
        typer.echo(
            f"delivered {report.delivered}, retrying {report.retrying}, failed {report.failed}, "
            f"held {report.held}"
        )

    anyio.run(run)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from service.adapters.persistence.database import migrate
    from service.api.app import create_app

    settings = _settings(host=host, port=port)
    if settings.environment != "production" and not _is_loopback(settings.host):
        typer.echo(
            f"refusing to serve {settings.environment} settings on {settings.host}: set "
            "ONCORESPONSE_ENVIRONMENT=production (with real secrets) to listen beyond this machine",
            err=True,
        )
        raise typer.Exit(2)
    _configure_logging(settings)
    migrate(settings.database_url)
    app = create_app(settings)
    # What is alive now (modules, settings, the app) lives as long as the process: move it out of
    # the cyclic collector's generations, so the full collections that ingestion's many short-lived
    # dicts trigger do not walk it again each time. benchmarks/ measure in the same state.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def migrate() -> None:
    """Apply the database migrations (SQLite or PostgreSQL, from ONCORESPONSE_DATABASE_URL)."""
    from service.adapters.persistence.database import migrate as run_migrations

    settings = _settings()
    run_migrations(settings.database_url)
    typer.echo("database at head")


@app.command()
def openapi(
    out: Annotated[Path, typer.Option(help="Where to write the document")] = Path("openapi.yaml"),
    check: Annotated[bool, typer.Option(help="Exit 1 if the file differs instead of writing it")] = False,
) -> None:
    """Write (or check) openapi.yaml from the app."""
    from service.api.openapi import render_openapi

    text = render_openapi()
    if check:
        if not out.exists() or out.read_text() != text:
            typer.echo(f"{out} is out of date: run `oncoresponse openapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is up to date")
        return
    out.write_text(text)
    typer.echo(f"wrote {out}")


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Directory to write the cohort into")],
    cohort: Annotated[str, typer.Option(help="pan-tumour | nsclc | mixed")] = "pan-tumour",
    n: Annotated[int, typer.Option(help="Patients (mixed cohort only)")] = 50,
    seed: Annotated[int, typer.Option()] = 2024,
) -> None:
    """Write a synthetic cohort: one transaction Bundle per patient plus ground-truth side files."""
    from service.demo.runner import make_cohort
    from service.synthetic import write_cohort

    generated = make_cohort(cohort, seed=seed, n=n)
    write_cohort(generated, out)
    typer.echo(f"wrote {len(generated.patients)} patients to {out}")


@app.command()
def demo(
    once: Annotated[bool, typer.Option("--once", help="Run the whole path, verify it, and exit")] = False,
    cohort: Annotated[str, typer.Option(help="pan-tumour | nsclc | mixed")] = "pan-tumour",
    patients: Annotated[int | None, typer.Option(help="Load only the first N patients")] = None,
    port: Annotated[int, typer.Option(help="Port of the API")] = 8000,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its server and database")] = Path(
        "var/demo"
    ),
    scenario: Annotated[
        str, typer.Option(help="dr: after the sync, a new scan and its live alert, timed | none")
    ] = "dr",
) -> None:
    """Start sekmet-fhir, load a synthetic cohort, assess it, write back, and serve the API."""
    from service.demo.runner import SCENARIOS, DemoFailed, run_demo

    if scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"{scenario!r} is not a scenario: use {' or '.join(SCENARIOS)}", param_hint="--scenario"
        )
    settings = _settings(environment="development")
    try:
        run_demo(
            once=once,
            cohort=cohort,
            limit=patients,
            port=port,
            workdir=workdir,
            scenario=scenario,
            sekmet_version=settings.sekmet_version,
        )
    except DemoFailed as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Run a command; a user's mistake is one line on stderr (the traceback with `--debug`)."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        line = describe(exc)
        if debug or line is None:
            raise
        typer.echo(f"oncoresponse: {line}", err=True)
        sys.exit(exit_code_of(exc))
    sys.exit(code if isinstance(code, int) else 0)
