"""`benchmarks/stats.py` runs and reports (no timing is asserted: machines differ), and its API
overhead figure is robust to load that slows both calls of a pair alike."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest
import structlog

from tests.benchmark_scripts import load_benchmark


def _load() -> ModuleType:
    return load_benchmark("stats")


def test_pair_ratio_ignores_load_that_hits_both_calls_of_a_pair() -> None:
    bench = _load()
    rng = np.random.default_rng(11)
    direct = rng.uniform(5e-3, 6e-3, size=41)
    overhead = rng.uniform(1.05, 1.15, size=41)
    load = rng.choice([1.0, 1.0, 1.0, 3.0, 8.0], size=41)  # other processes slow some pairs down
    quiet = bench.pair_ratios(list(direct * overhead), list(direct))
    loaded = bench.pair_ratios(list(direct * overhead * load), list(direct * load))
    assert quiet == pytest.approx(loaded)
    assert quiet[0] == pytest.approx(statistics.median(overhead))
    assert quiet[1] <= quiet[0] <= quiet[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The script configures logging for its process; put the test session's back afterwards."""
    configured, config = structlog.is_configured(), structlog.get_config()
    loggers = [logging.getLogger(name) for name in ("", "httpx", "httpcore", "uvicorn.access")]
    saved = [(lg, lg.level, lg.handlers[:]) for lg in loggers]
    yield
    if configured:
        structlog.configure(**config)
    else:
        structlog.reset_defaults()
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


@pytest.mark.usefixtures("restore_logging")
def test_stats_benchmark_reports_every_goal_without_access_log_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _load()

    report = bench.main(["--patients", "2000", "--api-patients", "300", "--pairs", "3", "--repeat", "1"])

    figures = [
        report.cox_s,
        report.cox_ph_s,
        report.api_ratio,
        report.api_layer_ratio,
        report.api_ms,
        report.direct_ms,
        report.lifelines_ms,
    ]
    assert all(math.isfinite(v) and v > 0 for v in [*figures, *report.km_ms.values()])
    assert sorted(report.km_ms) == [177, 2000]
    out, err = capsys.readouterr()
    labels = (
        "1. Cox PH",
        "2. Kaplan-Meier + log-rank",
        "3. API overhead",
        "ratios API/lifelines",
        "ratios API/direct",
    )
    for label in labels:
        assert label in out
    assert "http.request" not in out + err
