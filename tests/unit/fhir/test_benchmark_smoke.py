"""`benchmarks/ingest.py --smoke` runs end to end and prints every ratio (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_ingest_benchmark_prints_every_ratio_in_one_run() -> None:
    run = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "benchmarks" / "ingest.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    for goal in ("(goal <= 3x)", "(goal <= 2x)", "(goal >= 300)"):
        assert goal in out
    assert out.count("ratio") >= 4
    assert "patients/s" in out


def test_ingest_benchmark_runs_one_measure_with_only() -> None:
    run = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "benchmarks" / "ingest.py"), "--smoke", "--only", "http"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split(":")[0].strip() for line in run.stdout.splitlines() if not line.startswith(" ")]
    assert lines == ["http"]  # the http section only: no parse, serialise or end-to-end section
    assert "FhirClient httpx+aiohttp" in run.stdout
