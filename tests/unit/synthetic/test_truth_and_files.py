"""Ground-truth rules, determinism and the files written for loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.synthetic import cohort_bundle, mixed_cohort, write_cohort
from service.synthetic.truth import confirmed_bor, irecist_bor, response_group


@pytest.mark.parametrize(
    ("responses", "days", "expected"),
    [
        (["PR", "PR"], [56, 112], "PR"),  # W17a: PR wk8, PR wk16
        (["PR", "SD"], [56, 112], "SD"),  # W17b
        (["PR", "PD"], [56, 112], "SD"),  # W17c: PR unconfirmed, >= 42 d -> SD
        (["PR", "PD"], [28, 56], "PD"),  # W17d: PR at day 28 < min SD duration -> PD
        (["CR", "CR"], [50, 80], "CR"),
        (["SD", "PR", "PR"], [50, 100, 150], "PR"),
        (["SD"], [40], "NE"),  # SD before 42 days does not count
        (["PR", "PR"], [50, 77], "SD"),  # 27 days: not confirmed (RECIST-tracker 27 vs 28 d)
    ],
)
def test_confirmed_bor_follows_recist_table_3(responses: list[str], days: list[int], expected: str) -> None:
    # RECIST 1.1 Table 3 / admiralonco derive_param_confirmed_bor (ref_confirm 28, min SD 42 days);
    # worked cases W17 of the project's response-criteria reference.
    assert confirmed_bor(responses, days) == expected


@pytest.mark.parametrize(
    ("responses", "expected"),
    [
        (["iUPD", "iCPD"], "iCPD"),  # iRECIST Table 3 example 6
        (["iUPD", "iSD", "iPR"], "iPR"),  # example 4
        (["iUPD", "iSD"], "iSD"),  # example 5
        (["iUPD", "NE", "NE"], "iUPD"),  # example 8
    ],
)
def test_irecist_bor_follows_table_3(responses: list[str], expected: str) -> None:
    assert irecist_bor(responses, [50 + 50 * i for i in range(len(responses))]) == expected


def test_response_group_precedence_is_dr_then_pspd_then_bor() -> None:
    # Contract section 2.
    assert response_group(dr=True, pspd=True, confirmed="PD") == "DR"
    assert response_group(dr=False, pspd=True, confirmed="SD") == "PsPD"
    assert response_group(dr=False, pspd=False, confirmed="PR") == "CR-PR"
    assert response_group(dr=False, pspd=False, confirmed="NE") == "NE"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    write_cohort(mixed_cohort(12, seed=3), tmp_path / "a")
    write_cohort(mixed_cohort(12, seed=3), tmp_path / "b")
    write_cohort(mixed_cohort(12, seed=4), tmp_path / "c")
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert a == b
    assert a["bundles/mix-3-0001.json"] != c["bundles/mix-4-0001.json"]


def test_written_cohort_has_manifest_bundles_and_truth_files(tmp_path: Path) -> None:
    cohort = mixed_cohort(10, seed=9)
    manifest = json.loads(write_cohort(cohort, tmp_path).read_text())
    assert manifest["patient_count"] == 10
    for row in manifest["patients"]:
        bundle = json.loads((tmp_path / row["bundle"]).read_text())
        truth = json.loads((tmp_path / row["truth"]).read_text())
        assert bundle["type"] == "transaction"
        assert len(bundle["entry"]) == row["resources"]
        assert truth["patient_id"] == row["patient_id"]
        assert truth["response_group"] == row["response_group"]
        assert set(truth["endpoints"]) >= {
            "pfs_days",
            "pfs_event",
            "os_days",
            "os_event",
            "last_contact_date",
        }


def test_cohort_bundle_holds_every_resource_once() -> None:
    cohort = mixed_cohort(10, seed=9)
    bundle = cohort_bundle(cohort)
    assert bundle["type"] == "collection"
    keys = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert len(keys) == len(set(keys)) == sum(len(p.resources) for p in cohort.patients)
    assert "request" in cohort_bundle(cohort, bundle_type="transaction")["entry"][0]
