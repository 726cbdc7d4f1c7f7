#!/usr/bin/env bash
# The demo on the embedded default (SQLite): starts sekmet-fhir, loads the synthetic pan-tumour cohort,
# assesses it, writes the Observations back and serves the API until Ctrl-C.
# Extra arguments go to `oncoresponse demo` (e.g. --once to run the whole path and exit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec uv run --frozen oncoresponse demo "$@"
