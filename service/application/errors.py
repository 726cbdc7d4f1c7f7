"""Application errors: each carries the RFC 9457 problem it becomes on the JSON API.

Slugs are kebab-case and never reused. `api/problems.py` renders every subclass; adapters
raise subclasses (e.g. `FhirUnavailable(UpstreamUnavailable)`) so that use cases and the API
never depend on a technology.
"""

from __future__ import annotations

from collections.abc import Sequence


class ApplicationError(Exception):
    problem_type: str = "/problems/application-error"
    title: str = "Application error"
    status: int = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UpstreamUnavailable(ApplicationError):
    """The FHIR server did not answer usefully within our bounded retries."""

    problem_type = "/problems/fhir-unavailable"
    title = "FHIR server unavailable"
    status = 503


class UpstreamRejected(ApplicationError):
    """The FHIR server refused a request; `issue_codes` are its OperationOutcome issue codes."""

    problem_type = "/problems/fhir-rejected"
    title = "FHIR server rejected the request"
    status = 502

    def __init__(self, detail: str, issue_codes: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.issue_codes = tuple(issue_codes)


class UpstreamNotFound(ApplicationError):
    problem_type = "/problems/fhir-not-found"
    title = "Not found on the FHIR server"
    status = 404


class InvalidInput(ApplicationError):
    """A request body we cannot use at all (e.g. not a FHIR Bundle)."""

    problem_type = "/problems/invalid-input"
    title = "Invalid input"
    status = 400


class NotConfigured(ApplicationError):
    problem_type = "/problems/not-configured"
    title = "Not configured"
    status = 503
