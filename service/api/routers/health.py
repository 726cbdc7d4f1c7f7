"""Liveness, readiness and metrics.

/healthz and /readyz are open (Kubernetes probes send no credentials; they answer only "ok" or
which dependency is not ready). Readiness is gated by the database alone: the hospital's FHIR
server is checked and reported (`degraded`), but a FHIR outage must not take `$assess`, the
alerts API or the portal out of the Service (docs/operations.md). /metrics is open unless
`ONCORESPONSE_METRICS_TOKEN` is set; then it needs that bearer token (compared in constant time).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES, _doc, problem
from service.api.schemas.health import Health, Readiness
from service.application.errors import ApplicationError

router = APIRouter(tags=["operations"])

# Dependencies without which this instance cannot serve. Every other check (the FHIR server, our
# FHIR Subscription) only makes it "degraded": `$assess`, alerts and the portal need no FHIR server,
# and with a Subscription in `error` the polling fallback keeps re-assessing
# (docs/operations.md, docs/fhir/subscriptions.md); taking the instance out of the load balancer
# would help nobody.
GATING_CHECKS = frozenset({"database"})


class MetricsNotAuthenticated(ApplicationError):
    problem_type = "/problems/not-authenticated"
    title = "Not authenticated"
    status = 401
    headers: Mapping[str, str] = {"WWW-Authenticate": 'Bearer realm="oncoresponse-metrics"'}


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
    """Ready to serve when the database answers. The FHIR server's `/metadata` and our FHIR
    Subscription are checked too: a failure there is `status: degraded` (still 200), named under
    `degraded`."""
    checks = await container.readiness()
    gating = {k: v for k, v in checks.items() if k in GATING_CHECKS}
    if all(v == "ok" for v in gating.values()):
        degraded = sorted(k for k, v in checks.items() if v != "ok")
        status = "degraded" if degraded else "ready"
        return JSONResponse(Readiness(status=status, checks=checks, degraded=degraded).model_dump())
    failing = ", ".join(f"{k}: {v}" for k, v in gating.items() if v != "ok")
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
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        401: _doc("ONCORESPONSE_METRICS_TOKEN is set and the bearer token is missing or wrong"),
    },
)
async def metrics(request: Request, container: ContainerDep) -> Response:
    """Prometheus text exposition. Needs `Authorization: Bearer <ONCORESPONSE_METRICS_TOKEN>`
    when that is set."""
    token = container.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise MetricsNotAuthenticated("/metrics needs the metrics bearer token")
    return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)
