"""The `oncoresponse` command line."""

from __future__ import annotations

import gc
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import anyio
import orjson
import typer

from service.application.assess import SyncReport
from service.config import Settings

app = typer.Typer(
    name="oncoresponse",
    help="Tumour response (RECIST 1.1, iRECIST, dissociated response, pseudoprogression) over HL7 FHIR.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
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
    typer.echo(
        f"patients {report.patients_seen}, assessed {report.patients_assessed}, "
        f"failed {report.patients_failed}, created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, issues {len(report.issues) + extra_issues}"
    )


@app.command()
def assess(
    file: Annotated[Path, typer.Argument(help="A FHIR Bundle (JSON) of one or more patients; '-' for stdin")],
    out: Annotated[Path | None, typer.Option(help="Write the result Bundle here (default: stdout)")] = None,
    as_of: Annotated[str | None, typer.Option(help="Ignore data after this date (YYYY-MM-DD)")] = None,
) -> None:
    """Assess a FHIR Bundle and print the result Bundle (Observations + OperationOutcome). Writes nothing."""
    from service.application.clock import today
    from service.application.errors import InvalidInput
    from service.bootstrap import Container

    settings = _settings(environment="development")
    _configure_logging(settings)
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    reference = date.fromisoformat(as_of) if as_of else today()
    box = Container(settings)
    try:
        data = orjson.loads(raw)
        patients, issues = box.read_bundle(data)
    except (orjson.JSONDecodeError, InvalidInput) as exc:
        typer.echo(f"invalid input: {exc}", err=True)
        raise typer.Exit(1) from None
    outcomes = box.assessor(patients, as_of=reference)
    body = orjson.dumps(box.render_collection(outcomes, issues), option=orjson.OPT_INDENT_2)
    if out is None:
        sys.stdout.buffer.write(body + b"\n")
    else:
        out.write_bytes(body)
    failed = sum(1 for o in outcomes if o.assessment is None)
    typer.echo(f"assessed {len(outcomes) - failed} patient(s), {failed} not assessable", err=True)


@app.command()
def sync(
    fhir_base_url: Annotated[
        str | None, typer.Option(help="FHIR server (default: ONCORESPONSE_FHIR_BASE_URL)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only patients changed after this ISO instant")] = None,
) -> None:
    """Pull patients from the FHIR server, assess them and write the Observations back."""
    from sqlalchemy.exc import OperationalError

    from service.application.clock import today
    from service.bootstrap import Container

    settings = _fhir_command_settings(fhir_base_url)
    since_dt = datetime.fromisoformat(since) if since else None

    async def run() -> None:
        async with Container(settings) as box:
            report = await box.require_sync()(as_of=today(), since=since_dt)
        _echo_report(report)

    try:
        anyio.run(run)
    except OperationalError as exc:  # SQLite still locked after its busy timeout: say so in one line
        if "database is locked" not in str(exc):
            raise
        typer.echo(
            "error: the database is locked by another process (another sync is running on the same "
            "SQLite file); run again when it has finished, or use PostgreSQL for concurrent syncs",
            err=True,
        )
        raise typer.Exit(1) from None


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
    since_dt = datetime.fromisoformat(since) if since else None

    async def run() -> None:
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
        _echo_report(report, extra_issues=export_issues)

    anyio.run(run)


@app.command("deliver-alerts")
def deliver_alerts() -> None:
    """Deliver the due alerts once (FHIR Communication + Flag, signed webhooks); for cron."""
    import os

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
    _configure_logging(settings)
    migrate(settings.database_url)
    app = create_app(settings)
    # What is alive now (modules, settings, the app) lives as long as the process: move it out of
    # the cyclic collector's generations, so the full collections that ingestion's many short-lived
    # dicts trigger do not walk it again each time. benchmarks/ measure in the same state.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


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
) -> None:
    """Start sekmet-fhir, load a synthetic cohort, assess it, write back, and serve the API."""
    from service.demo.runner import DemoFailed, run_demo

    settings = _settings(environment="development")
    try:
        run_demo(
            once=once,
            cohort=cohort,
            limit=patients,
            port=port,
            workdir=workdir,
            sekmet_version=settings.sekmet_version,
        )
    except DemoFailed as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
