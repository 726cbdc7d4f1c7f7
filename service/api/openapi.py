"""Render the committed `openapi.yaml` from the app (a contract test fails when it drifts)."""

from __future__ import annotations

import yaml

from service.api.app import create_app
from service.config import Settings


def render_openapi() -> str:
    app = create_app(Settings(environment="test"))
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)
