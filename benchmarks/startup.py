"""Start-up: `oncoresponse assess` of one patient, against `python -c pass`, in the same run.

`uv run python benchmarks/startup.py [--repeat 7]`

Both are run as fresh processes, alternately, `--repeat` times; medians of wall time are printed
with their ratio and the command's own phase line (start-up, read, assess, write; printed by
`oncoresponse assess`). Goal: the assess command starts and exits within 0.6 s on this machine.
The patient is a generated DR patient (one transaction Bundle, as `oncoresponse generate` writes
it). The heavy stacks `assess` must not load (database, HTTP client, web framework) are checked
by tests/unit/test_cli_imports.py, not here.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from service.demo.runner import transaction_bundle
from service.synthetic import Trajectory, generate_patient

GOAL_S = 0.6


@dataclass(frozen=True, slots=True)
class StartupReport:
    assess_s: float
    anchor_s: float
    phases: str

    @property
    def ratio(self) -> float:
        return self.assess_s / self.anchor_s


def _wall(command: Sequence[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return time.perf_counter() - started, done.stderr


def main(argv: Sequence[str] | None = None) -> StartupReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    patient = generate_patient(Trajectory.DR_NEW_LESION, seed=11, patient_id="startup-1")
    command = Path(sys.executable).with_name("oncoresponse")
    with tempfile.TemporaryDirectory() as work:
        bundle = Path(work) / "patient.json"
        bundle.write_bytes(orjson.dumps(transaction_bundle(patient.resources)))
        assess_runs, anchor_runs, phases = [], [], ""
        for _ in range(args.repeat):
            anchor_runs.append(_wall([sys.executable, "-c", "pass"])[0])
            seconds, stderr = _wall(
                [str(command), "assess", str(bundle), "--out", str(Path(work) / "out.json")]
            )
            assess_runs.append(seconds)
            phases = next((line for line in stderr.splitlines() if line.startswith("phases:")), "")
    report = StartupReport(statistics.median(assess_runs), statistics.median(anchor_runs), phases)
    print(f"python -c pass (anchor)        {report.anchor_s * 1000:7.0f} ms  (median of {args.repeat})")
    print(
        f"oncoresponse assess, 1 patient {report.assess_s * 1000:7.0f} ms  ({report.ratio:.1f}x the anchor)"
    )
    print(f"  last run's {report.phases}")
    verdict = "PASS" if report.assess_s <= GOAL_S else "MISS"
    print(f"goal: within {GOAL_S:.1f} s -> {verdict}")
    return report


if __name__ == "__main__":
    main()
