"""RFC 9457 problem details: the one place that turns errors into `application/problem+json`.

Every error of the JSON API is answered here; no stack trace or upstream body reaches a
caller. The problem `instance` is the request id, which is also in the logs.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.application.errors import ApplicationError, UpstreamRejected

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    request: Request,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": getattr(request.state, "request_id", None),
    }
    body.update(extra)
    return ProblemResponse(body, status_code=status)


_PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "nullable": True},
    },
    "required": ["type", "title", "status", "detail"],
}


def _doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("The request body cannot be used"),
    422: _doc("The request does not match the schema"),
    502: _doc("The FHIR server rejected our request"),
    503: _doc("The FHIR server or the database is unavailable"),
}

_HTTP_TITLES = {
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    415: "Unsupported media type",
}


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(ApplicationError)
    async def _application_error(request: Request, exc: ApplicationError) -> ProblemResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, UpstreamRejected):
            extra["upstream_issues"] = list(exc.issue_codes)
        response = problem(
            request, status=exc.status, type_=exc.problem_type, title=exc.title, detail=exc.detail, **extra
        )
        # e.g. `WWW-Authenticate: Bearer` on 401 (RFC 6750 section 3)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return problem(
            request,
            status=422,
            type_="/problems/request-validation",
            title="Request validation failed",
            detail=f"{len(errors)} problem(s) in the request",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        title = _HTTP_TITLES.get(exc.status_code, "HTTP error")
        slug = title.lower().replace(" ", "-")
        return problem(
            request, status=exc.status_code, type_=f"/problems/{slug}", title=title, detail=str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.error("request.unhandled_error", error_type=type(exc).__name__)
        return problem(
            request,
            status=500,
            type_="/problems/internal-error",
            title="Internal error",
            detail="The service failed unexpectedly; the error was logged under this request id",
        )
