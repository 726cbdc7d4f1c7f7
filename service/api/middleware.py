"""Pure ASGI middlewares: request ids, access logging and Prometheus metrics
(`RequestContextMiddleware`); the request body limit, enforced while the body streams in
(`BodyLimitMiddleware`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
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


_FHIR_PATHS = ("/$assess", "/fhir/")


class BodyLimitMiddleware:
    """Refuse request bodies larger than `max_bytes` without holding them in memory.

    A declared Content-Length above the limit is answered 413 before any byte of the body is
    read; a body without one (chunked) is counted as it arrives and answered 413 as soon as it
    passes the limit: the application then sees a disconnect and whatever it answers is dropped.
    FHIR paths answer an OperationOutcome (issue code `too-long`), the others problem+json.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        refused = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not response_started:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 has been sent; the application's own answer is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise  # e.g. the body reader's ClientDisconnect after a refusal is expected

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"The request body is larger than {self.max_bytes} bytes"
        body: dict[str, Any]
        if any(str(scope.get("path", "")).startswith(p) for p in _FHIR_PATHS):
            media = b"application/fhir+json"
            body = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "too-long", "diagnostics": detail}],
            }
        else:
            media = b"application/problem+json"
            body = {
                "type": "/problems/body-too-large",
                "title": "Body too large",
                "status": 413,
                "detail": detail,
                "instance": scope.get("state", {}).get("request_id"),
            }
        content = orjson.dumps(body)
        headers = [
            (b"content-type", media),
            (b"content-length", str(len(content)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": content})
