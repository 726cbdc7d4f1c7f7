"""`benchmarks/engine.py` runs and reports (no timing is asserted: machines differ)."""

from __future__ import annotations

import math
from decimal import Decimal
from types import ModuleType

import orjson
import pytest

from service.synthetic import Trajectory, cohort_bundle, generate_patient
from service.synthetic.cohorts import Cohort
from tests.benchmark_scripts import load_benchmark


def _load() -> ModuleType:
    return load_benchmark("engine")


def test_engine_benchmark_reports_every_stage_the_anchor_and_the_engine_share(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _load()

    report = bench.main(["--patients", "10", "--repeat", "1"])

    figures = [*report.stage_ms.values(), report.anchor_ms, report.engine_share_pct, report.engine_to_anchor]
    assert all(math.isfinite(v) and v > 0 for v in figures)
    assert set(report.stage_ms) == {"parse", "inbound", "engine", "outbound", "serialise"}
    out = capsys.readouterr().out
    for label in ("engine (rules)", "end-to-end", "anchor", "engine share of end-to-end", "engine / anchor"):
        assert label in out


def test_anchor_sums_the_target_diameters_of_each_scan() -> None:
    # The anchor must do real work on the same data: per-scan target sums equal the generator's truth
    # (RECIST 1.1 section 4.3.2: long axis of non-nodal targets, short axis of nodal targets).
    bench = _load()
    for trajectory in (Trajectory.PR, Trajectory.DR_TARGET, Trajectory.HPD):
        patient = generate_patient(trajectory, seed=1, patient_id=f"bench-{trajectory.value}")
        sums = bench.anchor_target_sums(orjson.dumps(cohort_bundle(Cohort("b", 1, (patient,)))))
        truth = patient.truth
        got = [sums[day] for day in sorted(sums) if day >= truth.baseline_date]
        assert got == [Decimal(s) for s in (truth.baseline_sum_mm, *truth.target_sums_mm)]
