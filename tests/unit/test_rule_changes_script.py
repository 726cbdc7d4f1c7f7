"""`benchmarks/rule_changes.py compare` counts the patients and timepoints two dumps differ on."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.benchmark_scripts import load_benchmark


def _summary(recist: list[str], group: str = "SD") -> dict[str, object]:
    return {
        "recist_reported": recist,
        "recist_strict": recist,
        "irecist": ["iSD"] * len(recist),
        "bor": None,
        "bor_confirmed": None,
        "ibor": None,
        "atypical": [],
        "group": group,
        "pfs": [None, None],
        "ipfs": [None, None],
    }


def test_compare_counts_changed_patients_and_timepoints(tmp_path: Path) -> None:
    script = load_benchmark("rule_changes")
    old = {"a": _summary(["SD", "PD", "SD", "PR"]), "b": _summary(["SD"]), "c": _summary(["PR"])}
    new = {"a": _summary(["SD", "PD", "PD", "PD"]), "b": _summary(["SD"]), "c": _summary(["PR"], "PR")}
    (tmp_path / "old.json").write_bytes(orjson.dumps(old))
    (tmp_path / "new.json").write_bytes(orjson.dumps(new))

    lines = script.compare(tmp_path / "old.json", tmp_path / "new.json")

    assert "patients with any change: 2" in lines
    assert "  recist_reported: 1 patients, 2 timepoints" in lines
    assert "  group: 1 patients" in lines
    assert "  irecist: 0 patients, 0 timepoints" in lines
