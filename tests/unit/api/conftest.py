from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.bootstrap import Container
from service.config import Settings


@pytest.fixture
async def client(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI with a started container (SQLite in tmp, no FHIR server configured)."""
    migrate(app_settings.database_url)
    async with Container(app_settings) as box:
        app = create_app(app_settings, container=box)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
