"""What a change of the response rules changes: `mixed_cohort(500)` assessed by two versions, per patient.

Why: a rule change (docs/rules/) must say how many assessments it changes, not only that its tests
pass. This script runs in two steps so the two versions can be different checkouts:

    uv run --frozen python benchmarks/rule_changes.py dump /tmp/new.json
    PYTHONPATH=/path/to/other/checkout uv run --frozen python benchmarks/rule_changes.py dump /tmp/old.json
    uv run --frozen python benchmarks/rule_changes.py compare /tmp/old.json /tmp/new.json

`dump` assesses the cohort on the `oncoresponse assess` path (one FHIR Bundle, split by patient,
mapped by the inbound adapter, `engine.assess` with the default parameters, as of the day after the
latest data) and writes each patient's clinical results: RECIST 1.1 timepoints (reported and strict),
iRECIST timepoints, the three best responses, atypical findings, response group and PFS/iPFS. It uses
only calls that also exist in older versions, so `PYTHONPATH` may point at any checkout.
`compare` prints, per result field, how many patients and timepoints differ, and the patients.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from service.adapters.fhir.inbound import group_bundle_by_patient, patient_input
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import BestResponse, PatientAssessment
from service.synthetic import cohort_bundle, mixed_cohort

PATIENTS = 500
SEED = 3
TIMEPOINT_FIELDS = ("recist_reported", "recist_strict", "irecist")


def _best(best: BestResponse | None) -> str | None:
    return None if best is None else f"{best.response.value}@{best.response_date}"


def summary(a: PatientAssessment) -> dict[str, Any]:
    """The clinical results of one patient, as plain JSON values."""
    return {
        "recist_reported": [t.reported.value for t in a.timepoints],
        "recist_strict": [t.overall.value for t in a.timepoints],
        "irecist": [t.overall.value for t in a.immune_timepoints],
        "bor": _best(a.best_response),
        "bor_confirmed": _best(a.best_response_confirmed),
        "ibor": _best(a.immune_best_response),
        "atypical": sorted(f"{f.kind.value}/{f.definition}@{f.timepoint_index}" for f in a.atypical),
        "group": a.response_group.value,
        "pfs": [a.endpoints.pfs_days, a.endpoints.pfs_event],
        "ipfs": [a.endpoints.ipfs_days, a.endpoints.ipfs_event],
    }


def dump(path: Path) -> None:
    cohort = mixed_cohort(PATIENTS, SEED)
    latest = max(
        date.fromisoformat(max(p.truth.endpoints.last_contact_date, p.truth.endpoints.death_date or ""))
        for p in cohort.patients
    )
    as_of = latest + timedelta(days=1)
    grouped, _ = group_bundle_by_patient(cohort_bundle(cohort))
    out: dict[str, Any] = {}
    for patient_id, resources in sorted(grouped.items()):
        mapped = patient_input(patient_id, resources)
        if mapped.timeline is not None:
            out[patient_id] = summary(assess(mapped.timeline, AssessmentParameters(), as_of=as_of))
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"{len(out)} patients assessed -> {path}")


def _changed_timepoints(old: list[str], new: list[str]) -> int:
    return sum(1 for a, b in zip(old, new, strict=False) if a != b) + abs(len(old) - len(new))


def compare(old_path: Path, new_path: Path) -> list[str]:
    old: dict[str, dict[str, Any]] = orjson.loads(old_path.read_bytes())
    new: dict[str, dict[str, Any]] = orjson.loads(new_path.read_bytes())
    lines = [f"patients: {len(old)} old, {len(new)} new"]
    changed = sorted(p for p in old.keys() & new.keys() if old[p] != new[p])
    lines.append(f"patients with any change: {len(changed)}")
    for field in sorted({k for s in old.values() for k in s}):
        patients = [p for p in changed if old[p].get(field) != new[p].get(field)]
        extra = ""
        if field in TIMEPOINT_FIELDS:
            n = sum(_changed_timepoints(old[p][field], new[p][field]) for p in patients)
            extra = f", {n} timepoints"
        lines.append(f"  {field}: {len(patients)} patients{extra}")
    for p in changed:
        diff = {k: (old[p].get(k), new[p].get(k)) for k in new[p] if old[p].get(k) != new[p].get(k)}
        lines.append(f"{p}: {diff}")
    return lines


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "dump":
        dump(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        print("\n".join(compare(Path(argv[1]), Path(argv[2]))))
        return 0
    print("usage: rule_changes.py dump OUT.json | compare OLD.json NEW.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
