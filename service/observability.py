"""Structured logging (structlog, JSON outside development) and Prometheus metrics.

Event names are dotted and stable; values go in fields. Nothing here ever receives a
patient identifier: callers pass `patient_key` (see `service.application.privacy`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import structlog


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # Resolve sys.stderr at each use, not once: tests and CLI runners swap the stream.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (Alembic, uvicorn) are rendered the same way,
    # so a JSON log stays JSON from the first line.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    logging.basicConfig(level=lvl, handlers=[handler], force=True)
    # httpx logs full URLs at INFO, and our search URLs carry patient ids: keep it quiet.
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stderr_logger(*_: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class Metrics:
    """The service's Prometheus metrics, on a registry of its own (one per app instance).

    prometheus_client is imported here, not with the module: commands that only log
    (`oncoresponse assess`) do not load it.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "oncoresponse_http_requests_total",
            "HTTP requests answered, by route template, method and status class",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "oncoresponse_http_request_seconds",
            "HTTP request latency by route template",
            ["route"],
            registry=self.registry,
        )
        self.assessments = Counter(
            "oncoresponse_assessments_total",
            "Patients assessed, by outcome (assessed, failed, skipped)",
            ["outcome"],
            registry=self.registry,
        )
        self.fhir_writes = Counter(
            "oncoresponse_fhir_resources_written_total",
            "Resources written back to the FHIR server, by result (created, unchanged)",
            ["result"],
            registry=self.registry,
        )
        self.data_issues = Counter(
            "oncoresponse_data_issues_total",
            "Input problems reported as OperationOutcome issues, by code",
            ["code"],
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "oncoresponse_subscriptions",
            "The service's own FHIR Subscriptions by the status the server gives them "
            "(requested, active, error, off); error means notifications are lost and polling covers",
            ["status"],
            registry=self.registry,
        )

    def report_subscriptions(self, statuses: Sequence[str]) -> None:
        """Set the Subscription gauge from the statuses just read (every status back to 0 first)."""
        for status in ("requested", "active", "error", "off"):
            self.subscriptions.labels(status).set(0)
        for status in statuses:
            self.subscriptions.labels(status).inc()
