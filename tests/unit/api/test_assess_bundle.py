"""`POST /$assess` (contract section 4) and `oncoresponse assess FILE` on generated patients.

a Bundle with one bad patient still returns results for the others plus an
OperationOutcome naming the bad one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from service.adapters.fhir import codes
from service.cli import app as cli
from service.synthetic import Trajectory, generate_patient

FHIR = {"Content-Type": "application/fhir+json"}
AS_OF = "2026-11-01"


def collection(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


def patient_without_ici(pid: str) -> list[dict[str, Any]]:
    """A patient with a scan but no PD-1/PD-L1 inhibitor: nothing to assess against (contract section 1)."""
    return [
        {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-05-01"},
        {
            "resourceType": "ImagingStudy",
            "id": f"{pid}-study",
            "status": "available",
            "subject": {"reference": f"Patient/{pid}"},
            "started": "2024-01-02",
        },
    ]


def by_code(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    out = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        codings = (
            resource.get("code", {}).get("coding", []) if resource["resourceType"] == "Observation" else []
        )
        if any(c.get("code") == code for c in codings):
            out.append(resource)
    return out


def value_code(observation: dict[str, Any]) -> str:
    code: str = observation["valueCodeableConcept"]["coding"][0]["code"]
    return code


async def test_one_bad_patient_does_not_hide_the_others(client: httpx.AsyncClient) -> None:
    pr = generate_patient(Trajectory.PR, seed=7, patient_id="api-pr")
    dr = generate_patient(Trajectory.DR_NEW_LESION, seed=8, patient_id="api-dr")
    body = collection([*pr.resources, *patient_without_ici("api-bad"), *dr.resources])

    r = await client.post(f"/$assess?as_of={AS_OF}", content=orjson.dumps(body), headers=FHIR)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    result = r.json()
    assert result["resourceType"] == "Bundle"
    assert result["type"] == "collection"
    groups = {o["subject"]["reference"]: value_code(o) for o in by_code(result, codes.CODE_RESPONSE_GROUP)}
    # the generator's intended groups come back; the bad patient has no result at all
    assert groups == {"Patient/api-pr": pr.truth.response_group, "Patient/api-dr": dr.truth.response_group}
    outcomes = [e["resource"] for e in result["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
    assert len(outcomes) == 1
    bad = [i for i in outcomes[0]["issue"] if "Patient/api-bad" in orjson.dumps(i).decode()]
    assert bad, outcomes[0]
    assert all(i["severity"] in ("error", "fatal") for i in bad)


async def test_first_evaluation_of_a_partial_responder_is_pr(client: httpx.AsyncClient) -> None:
    pr = generate_patient(Trajectory.PR, seed=11, patient_id="api-pr2")
    r = await client.post(
        f"/$assess?as_of={AS_OF}", content=orjson.dumps(collection(pr.resources)), headers=FHIR
    )
    tprs = by_code(r.json(), codes.CODE_RECIST11_TPR)
    first = next(
        o
        for o in tprs
        if any(
            c["code"]["coding"][0]["code"] == codes.COMP_TIMEPOINT_INDEX and c["valueInteger"] == 1
            for c in o["component"]
        )
    )
    # RECIST 1.1 section 4.3.1: >= 30 % decrease of the sum from baseline is PR
    assert value_code(first) == pr.truth.recist_timepoints[0] == "PR"


def test_cli_assess_file_prints_the_result_bundle(tmp_path: Path) -> None:
    dr = generate_patient(Trajectory.DR_TARGET, seed=9, patient_id="cli-dr")
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(collection(dr.resources)))
    out = tmp_path / "out.json"

    result = CliRunner().invoke(cli, ["assess", str(source), "--out", str(out), "--as-of", AS_OF])

    assert result.exit_code == 0, result.output
    bundle = orjson.loads(out.read_bytes())
    atypical = by_code(bundle, codes.CODE_ATYPICAL_RESPONSE)
    assert "DR" in {value_code(o) for o in atypical}


def test_cli_assess_refuses_a_file_that_is_not_a_bundle(tmp_path: Path) -> None:
    source = tmp_path / "patient.json"
    source.write_text('{"resourceType": "Patient", "id": "x"}')
    result = CliRunner().invoke(cli, ["assess", str(source)])
    assert result.exit_code == 1
    assert "Expected a FHIR Bundle" in result.output
