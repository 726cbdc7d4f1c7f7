"""Request ids, access logging and Prometheus metrics as a pure ASGI middleware."""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import Metrics

log = structlog.get_logger(__name__)
_HEADER = b"x-request-id"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(_HEADER, b"").decode("latin-1")
        # Accept a caller's id only if it is short and plain; otherwise make our own.
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else None
        request_id = request_id or f"req-{uuid.uuid4().hex[:12]}"
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((_HEADER, request_id.encode()))
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.http_requests.labels(template, scope["method"], f"{status // 100}xx").inc()
            self.metrics.http_latency.labels(template).observe(elapsed)
            log.info(
                "http.request",
                method=scope["method"],
                route=template,
                status=status,
                elapsed_ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.unbind_contextvars("request_id")
