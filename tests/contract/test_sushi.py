"""The FSH sources of fhir_profiles/ compile with SUSHI, the FHIR community's FSH compiler.

SUSHI and the R4 core definitions come from the npm registry (scripts/fhir-tools.sh, versions and
checksums in fhir_profiles/tools/package-lock.json), so the profiles are checked by a tool this
project did not write. The compiled StructureDefinitions must also declare what our package
declares: the same canonical URL, base and differential elements for every profile and extension.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "fhir_profiles"

pytestmark = pytest.mark.xdist_group("sushi")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = subprocess.run(  # noqa: S603
        ["bash", str(ROOT / "scripts" / "fhir-tools.sh")],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.strip()
    project = tmp_path_factory.mktemp("sushi")
    shutil.copytree(PROFILES / "input", project / "input")
    shutil.copy(PROFILES / "sushi-config.yaml", project)
    sushi = PROFILES / "tools" / "node_modules" / ".bin" / "sushi"
    result = subprocess.run(  # noqa: S603
        [str(sushi), "build", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": home},
        timeout=600,
        check=False,
    )
    return result, project / "fsh-generated" / "resources"


def test_sushi_compiles_the_fsh_with_no_error(
    compiled: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _ = compiled
    summary = re.search(r"(\d+) Errors?\s+(\d+) Warnings?", result.stdout)
    assert summary is not None, result.stdout[-3000:]
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert summary.group(1) == "0", "\n".join(errors[:20])
    assert result.returncode == 0


def test_every_profile_sushi_compiles_declares_what_our_package_declares(
    compiled: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, resources = compiled
    ours = sorted((PROFILES / "package").glob("StructureDefinition-*.json"))
    assert ours
    for path in ours:
        mine = json.loads(path.read_text())
        theirs = json.loads((resources / path.name).read_text())
        assert theirs["url"] == mine["url"]
        assert theirs["baseDefinition"] == mine["baseDefinition"]
        assert theirs["type"] == mine["type"]
        # SUSHI leaves out elements whose rules restate the base (e.g. BodyStructure.patient's type).
        their_ids = {e["id"] for e in theirs["differential"]["element"]}
        my_ids = {e["id"] for e in mine["differential"]["element"]}
        assert their_ids <= my_ids, (
            f"{path.name}: SUSHI constrains {sorted(their_ids - my_ids)} that we do not"
        )
