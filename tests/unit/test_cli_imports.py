"""`oncoresponse assess` loads neither the database stack nor the HTTP client nor the web framework.

Start-up time is import time (benchmarks/startup.py); a command pays only for what it uses.
The command runs in a fresh interpreter, and the modules it loaded are listed afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from service.demo.runner import transaction_bundle
from service.synthetic import Trajectory, generate_patient

HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "httpx", "uvicorn", "psycopg", "prometheus_client")

PROBE = """
import sys
from typer.testing import CliRunner
from service.cli import app
result = CliRunner().invoke(app, ["assess", sys.argv[1], "--out", sys.argv[2]])
assert result.exit_code == 0, result.output
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[3].split(",")))
print(",".join(heavy))
"""


def test_assess_of_one_patient_loads_no_database_http_or_web_stack(tmp_path: Path) -> None:
    patient = generate_patient(Trajectory.DR_NEW_LESION, seed=11, patient_id="imports-1")
    bundle = tmp_path / "patient.json"
    bundle.write_bytes(orjson.dumps(transaction_bundle(patient.resources)))
    out = tmp_path / "out.json"
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE, str(bundle), str(out), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == ""
    assert orjson.loads(out.read_bytes())["resourceType"] == "Bundle"  # it did assess


def test_assess_prints_its_phase_timings(tmp_path: Path) -> None:
    patient = generate_patient(Trajectory.PR, seed=12, patient_id="imports-2")
    bundle = tmp_path / "patient.json"
    bundle.write_bytes(orjson.dumps(transaction_bundle(patient.resources)))
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "service", "assess", str(bundle), "--out", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("phases:")]
    for phase in ("start-up", "read", "assess", "write"):
        assert f"{phase} " in line
