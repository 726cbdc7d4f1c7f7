#!/usr/bin/env bash
# Install what the project needs on a fresh machine: uv (from PyPI) and the locked environment in .venv.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export UV_PYTHON_DOWNLOADS=never   # use the machine's CPython 3.11; never download an interpreter
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
  export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
source scripts/web-assets.sh   # Swagger UI, ReDoc, axe-core from web/package-lock.json (no CDN)
