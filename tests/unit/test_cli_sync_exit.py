"""The sync command's summary and exit codes (docs/fhir/write-back.md): truthful, one line on abort."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio
import pytest
import typer

from service.application.assess import SyncReport
from service.application.errors import UpstreamUnavailable
from service.application.ports import RunState
from service.cli import EXIT_ABORTED, EXIT_WRITES_FAILED, _run_sync
from service.domain.results import DataIssue


def finished(report: SyncReport) -> Callable[[], Awaitable[SyncReport]]:
    async def body() -> SyncReport:
        return report

    return body


def test_all_written_exits_0_and_reports_the_previous_run(capsys: pytest.CaptureFixture[str]) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    report = SyncReport(run_id="r2", patients_seen=2, patients_assessed=2, created=18)
    report.previous_run = RunState("r1", "running", started, None, 0)
    _run_sync(finished(report))
    out = capsys.readouterr()
    assert "previous run r1: running: still going elsewhere, or it ended without closing (crashed)" in out.out
    assert "patients 2, assessed 2, failed 0, created 18" in out.out
    assert out.err == ""


def test_failed_writes_exit_1_with_the_permission_once(capsys: pytest.CaptureFixture[str]) -> None:
    permission = "HTTP 403 on create Observation; likely missing scope system/StructureDefinition.rs"
    report = SyncReport(run_id="r", patients_seen=3, patients_failed=3, writes_failed=3)
    report.issues = [DataIssue("error", "write-forbidden", permission, f"Patient/p{i}") for i in range(3)]
    report.permissions = [permission]
    with pytest.raises(typer.Exit) as caught:
        _run_sync(finished(report))
    assert caught.value.exit_code == EXIT_WRITES_FAILED
    err = capsys.readouterr().err
    assert err.count("permission refused:") == 1
    assert "results not (all) written for 3 patient(s)" in err


def test_an_aborted_sync_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    async def body() -> SyncReport:
        async with anyio.create_task_group() as tg:  # as SyncPatients runs patients
            tg.start_soon(_unavailable)
        raise AssertionError("not reached")

    with pytest.raises(typer.Exit) as caught:
        _run_sync(body)
    assert caught.value.exit_code == EXIT_ABORTED
    err = capsys.readouterr().err
    assert err.startswith(
        "sync aborted, run marked failed: cannot reach the FHIR server (FHIR server unreachable)"
    )
    assert err.count("\n") == 1


async def _unavailable() -> None:
    raise UpstreamUnavailable("FHIR server unreachable")
