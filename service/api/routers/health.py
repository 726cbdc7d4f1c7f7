"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES, problem
from service.api.schemas.health import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="operations-healthz")
async def healthz() -> Health:
    """The process is up (liveness probe). Touches nothing else."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="operations-readyz",
    responses={503: PROBLEM_RESPONSES[503]},
)
async def readyz(request: Request, container: ContainerDep) -> Response:
    """Ready to serve: the database answers and the FHIR server's `/metadata` answers (when configured)."""
    checks = await container.readiness()
    if all(v == "ok" for v in checks.values()):
        return JSONResponse(Readiness(status="ready", checks=checks).model_dump())
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem(
        request,
        status=503,
        type_="/problems/not-ready",
        title="Not ready",
        detail=f"Dependencies not ready ({failing})",
        checks=checks,
    )


@router.get(
    "/metrics",
    operation_id="operations-metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(container: ContainerDep) -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)
