#!/usr/bin/env bash
# The whole test suite: lint, format, types, layer contracts, then every test (end-to-end included:
# the suite starts its own sekmet-fhir and uses PostgreSQL at 127.0.0.1:5432, database test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
source scripts/browser.sh     # Debian chromium + chromium-driver for tests/browser
echo "== ruff";         uv run --frozen ruff check .
echo "== ruff format";  uv run --frozen ruff format --check .
echo "== mypy";         uv run --frozen mypy
echo "== import-linter"; uv run --frozen lint-imports
echo "== pytest"
# -p no:cacheprovider keeps a clean checkout clean; CI=true selects the derandomised Hypothesis profile.
exec uv run --frozen pytest -p no:cacheprovider -n 2 --dist loadgroup "$@"
