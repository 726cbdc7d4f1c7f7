"""`oncoresponse demo --once`: the README's demo, whole path, as a user runs it ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo")]

ROOT = Path(__file__).resolve().parents[2]


def test_demo_once_loads_assesses_writes_back_and_is_idempotent(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCORESPONSE_")}
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "service", "demo", "--once", "--workdir", str(workdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stderr
    assert "demo path complete" in out
    # the second sync of the demo created nothing: conditional creates on our identifiers
    assert "second sync: 0 created" in out
    # every generated patient of the pan-tumour cohort (seed study Table 1: 177) was assessed
    assert "177/177 patients assessed" in out
    # the research portal answers the token the demo prints (a key pair of its own, no set-up)
    assert "research portal: /stats/response answered" in out
    # the operator sees where the time went (service/phases.py)
    (phases,) = [line for line in out.splitlines() if line.startswith("phases:")]
    for phase in ("FHIR server start", "load", "first sync", "second sync", "check"):
        assert f"{phase} " in phases
