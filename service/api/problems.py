"""RFC 9457 problem details: the one place that turns errors into `application/problem+json`.

Every error of the JSON API is answered here; no stack trace or upstream body reaches a
caller. The problem `instance` is the request id, which is also in the logs. On the path of a
FHIR operation (`$assess`) the same errors are answered as a FHIR OperationOutcome.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.application.errors import ApplicationError, UpstreamRejected

PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"
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


#: FHIR operations answer their errors as an OperationOutcome (FHIR R4 3.1.0.1.7 "Operation
#: Outcomes"), not problem+json: the paths and the issue type (R4 IssueType value set) per status.
FHIR_OPERATION_PATHS = frozenset({"/$assess"})
_ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    503: "transient",
}


def operation_outcome(status: int, detail: str, **extra: Any) -> Response:
    """An OperationOutcome with one error issue (`errors` of a validation failure become one
    issue each, with the parameter as its `expression`)."""
    code = _ISSUE_TYPE.get(status, "exception")
    issues: list[dict[str, Any]] = [{"severity": "error", "code": code, "diagnostics": detail}]
    for error in extra.get("errors", ()):
        issues.append(
            {
                "severity": "error",
                "code": code,
                "diagnostics": error["msg"],
                "expression": [".".join(error["loc"])],
            }
        )
    return Response(
        orjson.dumps({"resourceType": "OperationOutcome", "issue": issues}), status, media_type=FHIR_JSON
    )


def _answer(request: Request, *, status: int, type_: str, title: str, detail: str, **extra: Any) -> Response:
    """problem+json, or an OperationOutcome on a FHIR operation's path (but for 401 and 403, which
    the clinical API's token check answers alike on every path, with its `WWW-Authenticate`)."""
    if request.url.path in FHIR_OPERATION_PATHS and status not in (401, 403):
        return operation_outcome(status, detail, **extra)
    return problem(request, status=status, type_=type_, title=title, detail=detail, **extra)


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
    async def _application_error(request: Request, exc: ApplicationError) -> Response:
        extra: dict[str, Any] = {}
        if isinstance(exc, UpstreamRejected):
            extra["upstream_issues"] = list(exc.issue_codes)
        response = _answer(
            request, status=exc.status, type_=exc.problem_type, title=exc.title, detail=exc.detail, **extra
        )
        # e.g. `WWW-Authenticate: Bearer` on 401 (RFC 6750 section 3)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return _answer(
            request,
            status=422,
            type_="/problems/request-validation",
            title="Request validation failed",
            detail=f"{len(errors)} problem(s) in the request",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = _HTTP_TITLES.get(exc.status_code, "HTTP error")
        slug = title.lower().replace(" ", "-")
        return _answer(
            request, status=exc.status_code, type_=f"/problems/{slug}", title=title, detail=str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("request.unhandled_error", error_type=type(exc).__name__)
        return _answer(
            request,
            status=500,
            type_="/problems/internal-error",
            title="Internal error",
            detail="The service failed unexpectedly; the error was logged under this request id",
        )
