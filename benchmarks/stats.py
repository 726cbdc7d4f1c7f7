"""Benchmarks of the outcome statistics (issue 6), each against a direct lifelines call in the same run.

    uv run python benchmarks/stats.py [--patients 100000] [--repeat 3]

Prints, with the goal of each:
1. Cox, 12 covariates, 100 000 patients (whole days): our Efron fit (`analytics.survival.cox_fit`,
   with and without the proportional-hazards check) vs `lifelines.CoxPHFitter` -- goal <= 1 s and
   <= 100 MiB extra (peak traced allocations during the fit).
2. Kaplan-Meier + log-rank, 3 groups: `analytics.survival.km_analysis` (curves, survival tables,
   overall and pairwise log-rank) vs lifelines `KaplanMeierFitter` x 3 + `multivariate_logrank_test`
   -- goal <= 50 ms; at the seed study's size (177), 10 000 and 100 000 patients.
3. API overhead: `GET /stats/survival` over ASGI (token check, data version, filter, fit in a
   thread, JSON, audit write; cache misses forced by distinct filters) vs calling
   `reports.survival_report` directly on the same table -- goal <= 1.2x.

Not a unit test: timings depend on the machine (2 cores here) and on its load. Minimum of
`--repeat` runs is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MIB = 1024 * 1024


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mib(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / MIB


def cohort(n: int, p: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    x[:, : p // 2] = x[:, : p // 2] > 0
    hazard = np.exp(x @ (rng.normal(size=p) * 0.2))
    event_day = np.ceil(rng.exponential(365 / hazard))
    censor_day = np.ceil(rng.exponential(500, size=n))
    return np.minimum(event_day, censor_day), (event_day <= censor_day).astype(float), x


def bench_cox(n: int, repeat: int) -> None:
    from lifelines import CoxPHFitter

    from service.analytics.survival import cox_fit

    durations, events, x = cohort(n)
    names = [f"x{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names).assign(T=durations, E=events)
    ours = best_of(repeat, lambda: cox_fit(durations, events, x, names, check_ph=False))
    ours_ph = best_of(repeat, lambda: cox_fit(durations, events, x, names, check_ph=True))
    direct = best_of(repeat, lambda: CoxPHFitter().fit(frame, "T", "E"))
    ours_mem = peak_mib(lambda: cox_fit(durations, events, x, names, check_ph=True))
    direct_mem = peak_mib(lambda: CoxPHFitter().fit(frame, "T", "E"))
    fitted = cox_fit(durations, events, x, names, check_ph=False)
    reference = CoxPHFitter().fit(frame, "T", "E").params_.to_numpy()
    gap = float(np.max(np.abs(np.array([t.coef for t in fitted.terms]) - reference)))
    print(f"1. Cox PH, {x.shape[1]} covariates, {n} patients, {len(np.unique(durations))} distinct days")
    print(f"   ours (Efron, no PH check)   {ours:7.3f} s   goal <= 1 s   {'OK' if ours <= 1 else 'MISSED'}")
    print(
        f"   ours (Efron + PH check)     {ours_ph:7.3f} s   goal <= 1 s   {'OK' if ours_ph <= 1 else 'MISSED'}"
    )
    print(f"   lifelines CoxPHFitter       {direct:7.3f} s   ratio ours/lifelines {ours / direct:.2f}x")
    print(f"   peak extra memory: ours {ours_mem:.1f} MiB (goal <= 100), lifelines {direct_mem:.1f} MiB")
    print(f"   max |coef(ours) - coef(lifelines)| = {gap:.2e}")


def bench_km(sizes: list[int], repeat: int) -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    from service.analytics.survival import km_analysis

    print("2. Kaplan-Meier + log-rank, 3 groups (goal <= 50 ms)")
    for n in sizes:
        durations, events, _ = cohort(n, p=2, seed=n)
        groups = np.array(["DR", "SD", "PD"])[np.random.default_rng(1).integers(0, 3, n)]
        frame = pd.DataFrame(
            {"duration_days": durations.astype(int), "event": events.astype(int), "group": groups}
        )

        def direct(frame: pd.DataFrame = frame) -> None:
            for g in ("DR", "SD", "PD"):
                part = frame[frame["group"] == g]
                KaplanMeierFitter().fit(part["duration_days"], part["event"])
            multivariate_logrank_test(frame["duration_days"], frame["group"], frame["event"])

        def ours_call(frame: pd.DataFrame = frame) -> None:
            km_analysis(frame)

        ours_call()  # warm-up
        ours = best_of(repeat, ours_call)
        base = best_of(repeat, direct)
        verdict = "OK" if ours <= 0.05 else "MISSED"
        print(
            f"   n={n:>6}: ours {1000 * ours:7.1f} ms (+3 pairwise tests, tables)  "
            f"lifelines {1000 * base:7.1f} ms  ratio {ours / base:.2f}x  {verdict}"
        )


async def bench_api(n: int, repeat: int) -> None:
    import httpx
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from service.adapters.persistence.database import migrate
    from service.analytics import reports
    from service.analytics.cohort import CohortFilter, apply_filter
    from service.api.app import create_app
    from service.api.auth import StatsConfig
    from service.bootstrap import Container
    from service.config import Settings
    from service.domain.model import ClinicalProfile, TumourType
    from service.domain.results import Endpoints, PatientAssessment, ResponseGroup

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "bench", "iss": "bench-idp", "aud": "oncoresponse-stats", "scope": "stats.read"}
    token = jwt.encode({**claims, "exp": datetime.now(UTC) + timedelta(hours=1)}, key, algorithm="RS256")
    rng = np.random.default_rng(3)
    groups = list(ResponseGroup)[:5]
    assessments = []
    for i in range(n):
        group = groups[int(rng.integers(0, 5))]
        os_days = int(rng.exponential(500)) + 1
        assessments.append(
            PatientAssessment(
                patient_id=f"bench-{i}",
                treatment_start=date(2021, 1, 1),
                baseline_date=None,
                timepoints=(),
                immune_timepoints=(),
                lesions=(),
                best_response=None,
                best_response_confirmed=None,
                immune_best_response=None,
                atypical=(),
                response_group=group,
                endpoints=Endpoints(os_days, True, os_days, True, os_days, bool(rng.random() < 0.7), None),
                auto_selected_targets=(),
                issues=(),
                traces=(),
                profile=ClinicalProfile(sex="male", tumour_type=TumourType.NSCLC),
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            environment="test", database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", log_json=True
        )
        migrate(settings.database_url)
        async with Container(settings) as box:
            assert box.store is not None
            await box.store.record(assessments, run_id="bench")
            app = create_app(settings, container=box)
            app.state.stats_config = StatsConfig(jwt_public_key_pem=pem.decode(), jwt_issuer="bench-idp")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                headers = {"Authorization": f"Bearer {token}"}
                await http.get("/stats/survival", headers=headers)  # loads the table, warms imports
                runtime = app.state.stats_runtime
                _, table = runtime.table
                counter = iter(range(10_000))

                async def one() -> None:
                    day = date(2030, 1, 1) + timedelta(days=next(counter))  # distinct key: a cache miss
                    r = await http.get(f"/stats/survival?start_to={day}", headers=headers)
                    assert r.status_code == 200

                api_times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    await one()
                    api_times.append(time.perf_counter() - start)
                api = min(api_times)

                def direct() -> None:
                    frame = apply_filter(table, CohortFilter(start_to=date(2030, 1, 1)))
                    reports.survival_report(frame, "os", 11)

                base = best_of(repeat, direct)
    print(f"3. API overhead, GET /stats/survival on {n} stored patients (cache misses)")
    print(
        f"   through the API {1000 * api:8.1f} ms   direct {1000 * base:8.1f} ms   ratio {api / base:.2f}x   "
        f"goal <= 1.2x   {'OK' if api / base <= 1.2 else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--api-patients", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench_cox(args.patients, args.repeat)
    bench_km([177, 10_000, args.patients], args.repeat)
    asyncio.run(bench_api(args.api_patients, max(args.repeat, 15)))


if __name__ == "__main__":
    main()
