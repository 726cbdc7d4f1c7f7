"""What the response engine costs per patient, next to a plain-dict pipeline and the whole path.

Run: `uv run python benchmarks/engine.py [--patients 500] [--repeat 7] [--seed 3]`.

Data: `service.synthetic.mixed_cohort` (every trajectory in rotation), each patient serialised once
to the bytes of a FHIR collection Bundle, as `POST /$assess` and `oncoresponse assess` receive it.
Each patient goes through the whole path in turn; every stage is timed with `time.perf_counter` and
summed over the patients; the figures are the medians over repetitions of the mean time per patient:

    parse      orjson.loads(bundle bytes)
    inbound    group_bundle_by_patient + patient_input (FHIR dicts -> PatientTimeline)
    engine     service.domain.engine.assess (the rules)
    outbound   assessment_bundle (Observations, Provenance, OperationOutcome as dicts)
    serialise  orjson.dumps(result Bundle)

End-to-end = the sum of the five. The anchor is what the simplest possible program does with the
same bytes: orjson.loads plus one walk over the dicts summing each timepoint's target diameters
(long axis, short axis for nodes) - no rules, no types. `engine / anchor` says how many such
programs the rules cost; the engine's share of end-to-end says whether the rules matter to the
cost of serving a patient (issue 3 goal: under 5 %).
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # `python benchmarks/engine.py` from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service import __version__
from service.adapters.fhir import codes
from service.adapters.fhir.inbound import group_bundle_by_patient, patient_input
from service.adapters.fhir.outbound import assessment_bundle
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.synthetic import cohort_bundle, mixed_cohort
from service.synthetic.cohorts import Cohort

STAGES = ("parse", "inbound", "engine", "outbound", "serialise")
ENGINE_SHARE_GOAL_PCT = 5
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)
_MM_PER_UNIT = {"mm": Decimal(1), "cm": Decimal(10)}


@dataclass(frozen=True, slots=True)
class Report:
    patients: int
    repetitions: int
    stage_ms: dict[str, float]  # median per-patient milliseconds of each stage
    anchor_ms: float

    @property
    def end_to_end_ms(self) -> float:
        return sum(self.stage_ms.values())

    @property
    def engine_share_pct(self) -> float:
        return 100 * self.stage_ms["engine"] / self.end_to_end_ms

    @property
    def engine_to_anchor(self) -> float:
        return self.stage_ms["engine"] / self.anchor_ms

    def lines(self) -> list[str]:
        labels = {
            "parse": "parse (orjson.loads)",
            "inbound": "inbound mapping",
            "engine": "engine (rules)",
            "outbound": "outbound Observations",
            "serialise": "serialise (orjson.dumps)",
        }
        out = [
            f"patients {self.patients}, repetitions {self.repetitions} (median of per-repetition means)",
            f"{'stage':<28}{'ms/patient':>12}{'share':>9}",
        ]
        for stage in STAGES:
            ms = self.stage_ms[stage]
            out.append(f"{labels[stage]:<28}{ms:>12.4f}{100 * ms / self.end_to_end_ms:>8.1f}%")
        out.append(f"{'end-to-end':<28}{self.end_to_end_ms:>12.4f}{100:>8.1f}%")
        out.append(f"{'anchor (orjson + dict walk)':<28}{self.anchor_ms:>12.4f}")
        verdict = "under" if self.engine_share_pct < ENGINE_SHARE_GOAL_PCT else "ABOVE"
        out.append(
            f"engine share of end-to-end: {self.engine_share_pct:.2f} % "
            f"({verdict} the {ENGINE_SHARE_GOAL_PCT} % goal)"
        )
        out.append(f"engine / anchor: {self.engine_to_anchor:.1f}x")
        return out


# --- the anchor: the least a program can do with the same bytes -------------------------------------------
def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return str(value["reference"]).rsplit("/", 1)[-1]
    return None


def anchor_target_sums(raw: bytes) -> dict[str, Decimal]:
    """orjson.loads + one walk: the sum of target diameters per scan date (no rules, no validation)."""
    bundle = orjson.loads(raw)
    targets: dict[str, bool] = {}  # BodyStructure id -> is lymph node
    sizes: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "BodyStructure":
            extensions = {e["url"]: e for e in resource.get("extension", ())}
            role = extensions.get(codes.EXT_LESION_ROLE, {}).get("valueCoding", {}).get("code")
            if role == "target":
                node = extensions.get(codes.EXT_LYMPH_NODE, {}).get("valueBoolean", False)
                targets[resource["id"]] = bool(node)
        elif kind == "Observation" and resource["code"]["coding"][0]["code"] == codes.LOINC_TUMOR_SIZE:
            sizes.append(resource)
    sums: dict[str, Decimal] = {}
    for obs in sizes:
        lesion = _ref_id(obs.get("focus", [None])[0])
        if lesion not in targets:
            continue
        wanted = codes.CODE_SHORT_AXIS if targets[lesion] else codes.LOINC_LONGEST_DIAMETER
        for component in obs.get("component", ()):
            if component["code"]["coding"][0]["code"] == wanted:
                quantity = component["valueQuantity"]
                value = Decimal(str(quantity["value"])) * _MM_PER_UNIT[quantity.get("code", "mm")]
                day = str(obs["effectiveDateTime"])[:10]
                sums[day] = sums.get(day, Decimal(0)) + value
    return sums


# --- the measured path --------------------------------------------------------------------------------------
def _as_of(cohort: Cohort) -> date:
    latest = max(
        max(p.truth.endpoints.last_contact_date, p.truth.endpoints.death_date or "") for p in cohort.patients
    )
    return date.fromisoformat(latest) + timedelta(days=1)


def _one_repetition(payloads: Sequence[bytes], as_of: date, params: AssessmentParameters) -> dict[str, float]:
    """Seconds per stage, summed over all patients; each patient goes through the whole path in turn
    (as a request would), so no stage pays for memory another one keeps alive."""
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    for raw in payloads:
        t0 = clock()
        bundle = orjson.loads(raw)
        t1 = clock()
        grouped, _ = group_bundle_by_patient(bundle)
        inputs = [patient_input(pid, resources) for pid, resources in grouped.items()]
        t2 = clock()
        results = [(assess(p.timeline, params, as_of=as_of), p) for p in inputs if p.timeline is not None]
        t3 = clock()
        answer = assessment_bundle(results, version=__version__, recorded=RECORDED)
        t4 = clock()
        orjson.dumps(answer)
        t5 = clock()
        spent["parse"] += t1 - t0
        spent["inbound"] += t2 - t1
        spent["engine"] += t3 - t2
        spent["outbound"] += t4 - t3
        spent["serialise"] += t5 - t4
    return spent


def run(patients: int = 500, repetitions: int = 7, seed: int = 3) -> Report:
    """Measure every stage and the anchor over the same `patients`, `repetitions` times."""
    if patients < 1 or repetitions < 1:
        raise ValueError("patients and repetitions must be >= 1")
    cohort = mixed_cohort(patients, seed)
    payloads = [
        orjson.dumps(cohort_bundle(Cohort(cohort.name, seed, (patient,)))) for patient in cohort.patients
    ]
    as_of = _as_of(cohort)
    params = AssessmentParameters()
    del cohort  # keep only the bytes: a server does not hold 500 patients' dicts while it works
    gc.collect()
    gc.freeze()  # what is alive now (modules, payloads) is not rescanned by every collection
    try:
        _one_repetition(payloads[: min(20, patients)], as_of, params)  # warm-up: imports, caches
        per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
        anchor: list[float] = []
        for _ in range(repetitions):
            spent = _one_repetition(payloads, as_of, params)
            for stage in STAGES:
                per_stage[stage].append(1000 * spent[stage] / patients)
            started = time.perf_counter()
            for raw in payloads:
                anchor_target_sums(raw)
            anchor.append(1000 * (time.perf_counter() - started) / patients)
    finally:
        gc.unfreeze()
    return Report(
        patients=patients,
        repetitions=repetitions,
        stage_ms={stage: statistics.median(values) for stage, values in per_stage.items()},
        anchor_ms=statistics.median(anchor),
    )


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (median reported)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    report = run(args.patients, args.repeat, args.seed)
    for line in report.lines():
        print(line)
    if not all(math.isfinite(v) and v > 0 for v in (*report.stage_ms.values(), report.anchor_ms)):
        raise SystemExit("a stage measured no time: too few patients for the clock")
    return report


if __name__ == "__main__":
    main()
