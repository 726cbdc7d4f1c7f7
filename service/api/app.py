"""`create_app(settings)`: the FastAPI application factory (there is no module-level app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from service import __version__
from service.api import problems
from service.api.auth import stats_config_from
from service.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.api.routers import (
    alerts,
    assess,
    cds_hooks,
    health,
    patient_view,
    patients,
    smart_launch,
    stats,
    subscriptions,
    sync,
    web,
)
from service.api.security import ApiAuthConfig
from service.bootstrap import Container
from service.config import Settings

DESCRIPTION = """\
Derives tumour response for patients on immune checkpoint inhibitors from a hospital FHIR R4
server: RECIST 1.1, iRECIST, dissociated response (DR), pseudoprogression (PsPD) and
hyperprogression, and writes the assessments back as FHIR Observations.

Errors are RFC 9457 `application/problem+json`; FHIR-shaped operations (`/$assess`) answer FHIR.
"""


def create_app(settings: Settings, *, container: Container | None = None) -> FastAPI:
    """Build the app. `container` lets tests pass pre-built adapters (fakes or real ones)."""
    box = container or Container(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await box.start()
        box.start_alert_worker()
        try:
            async with anyio.create_task_group() as background:
                box.start_reassessment(background)  # notifications and polling fallback
                yield
                background.cancel_scope.cancel()
        finally:
            await box.stop()

    app = FastAPI(
        title="oncoresponse",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by routers/web.py from vendored assets (no CDN)
        redoc_url=None,
        openapi_tags=[
            {"name": "assessments", "description": "Tumour response assessment"},
            {"name": "sync", "description": "Pull from the FHIR server, assess and write back"},
            {"name": "operations", "description": "Health, readiness and metrics"},
            {"name": "alerts", "description": "Alerts on dissociated response and pseudoprogression"},
            {"name": "patients", "description": "A patient's latest stored assessment, lesion by lesion"},
            {"name": "cds-hooks", "description": "CDS Hooks 2.0 service for EHRs (patient-view)"},
            {"name": "subscriptions", "description": "FHIR Subscription notifications (rest-hook)"},
            {
                "name": "stats",
                "description": "Aggregate outcome statistics for the research portal (bearer JWT, "
                "counts perturbed by the cell-key method and small cells suppressed except for "
                "trusted analysts, every query audited)",
            },
        ],
    )
    app.state.container = box
    app.state.stats_config = stats_config_from(settings)
    app.state.api_auth = ApiAuthConfig.from_settings(settings)
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)  # inside the access log
    app.add_middleware(RequestContextMiddleware, metrics=box.metrics)
    for module in (assess, sync, health, alerts, patients, cds_hooks, stats, subscriptions):
        app.include_router(module.router)
    app.include_router(web.router)
    app.include_router(patient_view.router)
    app.include_router(patient_view.pages)
    app.include_router(smart_launch.router)
    app.state.smart_demo = smart_launch.SmartDemoIssuer() if settings.smart_demo_launch else None
    app.mount("/static", web.static_files(), name="static")
    return app
