"""Liveness, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.bootstrap import Container
from service.config import Settings

FIXTURES = Path(__file__).parents[2] / "fixtures" / "fhir"


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok"}, "degraded": []}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert 'oncoresponse_http_requests_total{method="GET",route="/healthz",status="2xx"} 1.0' in r.text


async def test_metrics_need_the_metrics_token_when_one_is_set(app_settings: Settings) -> None:
    """ONCORESPONSE_METRICS_TOKEN: without it or with another token, 401 problem+json (RFC 9457,
    with a Bearer challenge as RFC 6750 section 3 asks); with it, the exposition. Probes stay open."""
    settings = app_settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    migrate(settings.database_url)
    async with Container(settings) as box:
        transport = httpx.ASGITransport(app=create_app(settings, container=box))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            missing = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-not"})
            right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            probe = await http.get("/healthz")
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "oncoresponse_http_requests_total" not in refused.text
    assert right.status_code == 200
    assert "oncoresponse_http_requests_total" in right.text
    assert probe.status_code == 200


async def test_readyz_stays_ready_and_reports_an_unreachable_fhir_server(app_settings: Settings) -> None:
    """A FHIR outage is reported, not gating: `$assess` and the portal need no FHIR server, so the
    instance stays in the Service (docs/operations.md, probes)."""
    settings = app_settings.model_copy(
        update={"fhir_base_url": "http://127.0.0.1:9/fhir", "fhir_max_retries": 0}
    )
    migrate(settings.database_url)
    async with Container(settings) as box:
        transport = httpx.ASGITransport(app=create_app(settings, container=box))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            r = await http.get("/readyz")
            assessed = await http.post(
                "/$assess",
                content=(FIXTURES / "patient-nsclc-pembrolizumab.json").read_bytes(),
                headers={"Content-Type": "application/fhir+json"},
            )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["fhir"] != "ok"
    assert body["degraded"] == ["fhir"]
    assert assessed.status_code == 200


async def test_readyz_is_503_when_the_database_is_unreachable(app_settings: Settings) -> None:
    """The database gates readiness: without it no alert, sync or portal request can be served."""
    settings = app_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/test"}
    )
    async with Container(settings) as box:
        transport = httpx.ASGITransport(app=create_app(settings, container=box))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            r = await http.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["checks"]["database"] != "ok"
    assert "database" in r.json()["detail"]
