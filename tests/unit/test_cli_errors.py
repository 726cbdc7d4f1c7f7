"""A user's mistake on the command line is one line on stderr and a non-zero exit, never a traceback.

Each case runs the installed `oncoresponse` command in a process of its own, as a user would,
with no ONCORESPONSE_ENVIRONMENT set (a checkout works without knowing about environments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fhir" / "patient-nsclc-pembrolizumab.json"
CLOSED_PORT_FHIR = "http://127.0.0.1:9/fhir"  # the discard port: nothing listens there


def run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONCORESPONSE_")}
    clean["ONCORESPONSE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    clean["ONCORESPONSE_FHIR_MAX_RETRIES"] = "0"
    clean.update(env)
    command = [sys.executable, "-c", "from service.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=clean, timeout=120, check=False)  # noqa: S603


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if line.startswith(("oncoresponse:", "configuration error", "refusing", "sync aborted"))
    ]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_assess_of_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle.json"
    line = one_line_error(run("assess", str(missing), tmp_path=tmp_path))
    assert str(missing) in line
    assert "No such file" in line


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "15/03/2024"])
def test_assess_with_a_bad_as_of_says_which_option_and_the_format(tmp_path: Path, bad: str) -> None:
    result = run("assess", str(FIXTURE), "--as-of", bad, tmp_path=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2
    assert "--as-of" in line
    assert "YYYY-MM-DD" in line


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-01T00:00:00", "2026-13-01T00:00:00+00:00"])
def test_sync_since_needs_an_instant_with_an_offset(tmp_path: Path, bad: str) -> None:
    result = run("sync", "--fhir-base-url", CLOSED_PORT_FHIR, "--since", bad, tmp_path=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2
    assert "--since" in line
    assert "+00:00" in line


def test_sync_against_an_unreachable_fhir_server_says_so_and_the_fix(tmp_path: Path) -> None:
    result = run("sync", "--fhir-base-url", CLOSED_PORT_FHIR, tmp_path=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 3  # the run was aborted and marked failed (docs/fhir/write-back.md)
    assert "cannot reach the FHIR server" in line
    assert "ONCORESPONSE_FHIR_BASE_URL" in line
    assert "ExceptionGroup" not in result.stderr


def test_logs_stay_json_throughout_including_the_migrations(tmp_path: Path) -> None:
    """Alembic logs through the standard library; its lines are JSON like ours."""
    result = run("sync", "--fhir-base-url", CLOSED_PORT_FHIR, tmp_path=tmp_path, ONCORESPONSE_LOG_JSON="true")
    error = one_line_error(result)
    logs = [line for line in result.stderr.splitlines() if line.strip() and line != error]
    records = [json.loads(line) for line in logs]
    assert any(r.get("logger", "").startswith("alembic") for r in records)
    assert all("event" in r and "level" in r for r in records)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "assess", str(tmp_path / "missing.json"), tmp_path=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "FileNotFoundError" in result.stderr


def test_a_wrong_setting_names_the_variable_on_one_line(tmp_path: Path) -> None:
    result = run("sync", tmp_path=tmp_path, ONCORESPONSE_FHIR_TIMEOUT_S="-1")
    line = one_line_error(result)
    assert result.returncode == 2
    assert line.startswith("configuration error: ONCORESPONSE_FHIR_TIMEOUT_S:")


def test_production_placeholder_secret_names_the_variable_and_the_fix(tmp_path: Path) -> None:
    result = run("sync", tmp_path=tmp_path, ONCORESPONSE_ENVIRONMENT="production")
    line = one_line_error(result)
    assert "ONCORESPONSE_PATIENT_KEY_SALT" in line
    assert "ONCORESPONSE_ENVIRONMENT=development" in line
    assert "pydantic" not in result.stderr


def test_serve_with_development_settings_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    """Development settings (placeholders, no tokens) never listen beyond this machine."""
    line = one_line_error(run("serve", "--host", "0.0.0.0", tmp_path=tmp_path))  # noqa: S104
    assert "ONCORESPONSE_ENVIRONMENT=production" in line


def test_demo_with_an_unknown_scenario_lists_the_scenarios(tmp_path: Path) -> None:
    result = run(
        "demo", "--once", "--scenario", "drr", "--workdir", str(tmp_path / "demo"), tmp_path=tmp_path
    )
    line = one_line_error(result)
    assert result.returncode == 2
    assert "--scenario" in line
    assert "dr or none" in line
    assert not (tmp_path / "demo").exists()  # refused before anything starts
