"""openapi.yaml at the root is generated from the app; this fails when it drifts (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.api.openapi import render_openapi

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi.yaml").read_text()
    assert committed == render_openapi(), "openapi.yaml is stale: run `uv run oncoresponse openapi`"


def test_operation_ids_follow_tag_name_convention() -> None:
    doc = yaml.safe_load(render_openapi())
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            tag = op["tags"][0]
            assert op["operationId"].startswith(f"{tag}-"), (path, method, op["operationId"])
