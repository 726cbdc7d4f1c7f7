"""`oncoresponse assess` says how many patients were assessed on their lesion data, and why not the others.

The hand-written contract patient (tests/fixtures/fhir) three times in one Bundle: as it is; with
every lesion reference pointing at nothing (all its measurements lost: NE, not an assessment of
its scans); and without its ICI administrations (no treatment start, nothing to assess against).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from service.cli import app as cli
from tests.unit.fhir.conftest import patient_resources


def _copy_of_patient(suffix: str) -> list[dict[str, Any]]:
    resources = patient_resources()
    for resource in resources:
        resource["id"] = f"{resource['id']}-{suffix}"
        for element in ("subject", "patient", "focus", "derivedFrom"):
            value = resource.get(element)
            for ref in value if isinstance(value, list) else [value] if value else []:
                ref["reference"] = f"{ref['reference']}-{suffix}"
    return resources


def test_the_summary_counts_only_patients_whose_lesions_were_used(tmp_path: Path) -> None:
    lost = _copy_of_patient("lost")
    for resource in lost:
        for ref in resource.get("focus", []):
            ref["reference"] = "BodyStructure/elsewhere"
    untreated = [r for r in _copy_of_patient("noici") if r["resourceType"] != "MedicationAdministration"]
    entries = [{"resource": copy.deepcopy(r)} for r in [*patient_resources(), *lost, *untreated]]
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))

    result = CliRunner().invoke(
        cli, ["assess", str(source), "--out", str(tmp_path / "out.json"), "--as-of", "2024-12-31"]
    )

    assert result.exit_code == 0, result.output
    assert (
        "assessed 1 patient(s), 2 not assessed; not assessed: 1 lesion-not-found, 1 no-ici-start"
        in result.output
    )
