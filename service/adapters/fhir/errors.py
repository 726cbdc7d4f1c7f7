"""Errors of the FHIR adapter (docs/architecture.md sections 4 and 6).

`FhirUnavailable` (API: 503), `FhirRejected` (API: 502 with `upstream_issues`, codes only) and
`FhirNotFound` (404) are raised by the client; they subclass the application's
`UpstreamUnavailable`/`UpstreamRejected`/`UpstreamNotFound`, so use cases and the API never
import this package; `MalformedResource` marks a resource that cannot be
used and is turned into a `DataIssue` by the caller (skipped and counted, never a failed
request). Messages come from `OperationOutcome.issue[].details.text` or `diagnostics`, never
from the raw response body, and never contain patient data.
"""

from __future__ import annotations

from typing import Any

from service.application.errors import UpstreamNotFound, UpstreamRejected, UpstreamUnavailable


class FhirError(Exception):
    """Marker base of every FHIR adapter error; `text` is safe to show (never a raw body)."""

    text: str


class FhirUnavailable(UpstreamUnavailable, FhirError):
    """The server could not be reached or kept failing with temporary errors (retries exhausted)."""

    def __init__(self, text: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.upstream_status = status  # `status` is the problem's own HTTP status (503)
        self.retry_after_s = retry_after_s


class FhirOutcomeUnknown(FhirUnavailable):
    """A write whose request may have reached the server but whose answer never came (a read
    timeout, a dropped connection): it may or may not have been committed. Not repeated blind;
    the writer reads the server's state again (writer.py)."""


class FhirRejected(UpstreamRejected, FhirError):
    """The server refused the request (4xx other than 404/410, or 501)."""

    def __init__(self, issue_codes: tuple[str, ...], text: str, *, status: int | None = None) -> None:
        super().__init__(text, issue_codes)
        self.text = text
        self.upstream_status = status  # `status` is the problem's own HTTP status (502)


class FhirNotFound(UpstreamNotFound, FhirError):
    """404 or 410: the resource does not exist (any more)."""

    def __init__(self, ref: str, text: str = "") -> None:
        super().__init__(text or "resource not found")
        self.text = self.detail
        self.ref = ref


class MalformedResource(FhirError):
    """A resource (or page) that cannot be parsed or used; `ref` names it (`Type/id` or a page label).

    Not an application error: callers turn it into a `DataIssue` (skipped and counted).
    """

    def __init__(self, ref: str, reason: str = "malformed resource") -> None:
        super().__init__(f"{ref}: {reason}")
        self.text = reason
        self.ref = ref
        self.reason = reason


def outcome_summary(body: object) -> tuple[tuple[str, ...], str]:
    """Issue codes and readable text of an OperationOutcome dict (anything else: no codes, no text).

    Text is `issue[].details.text`, else `issue[].diagnostics`, joined with "; ".
    """
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return (), ""
    issues: Any = body.get("issue")
    if not isinstance(issues, list):
        return (), ""
    codes: list[str] = []
    texts: list[str] = []
    for issue in issues:
        if not isinstance(issue, dict):
            continue
        code = issue.get("code")
        if isinstance(code, str):
            codes.append(code)
        details = issue.get("details")
        text = details.get("text") if isinstance(details, dict) else None
        if not isinstance(text, str) or not text:
            text = issue.get("diagnostics")
        if isinstance(text, str) and text:
            texts.append(text)
    return tuple(codes), "; ".join(texts)
