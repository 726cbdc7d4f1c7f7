"""The one place that picks concrete adapters and wires them into the use cases.

`Container` owns the process-wide resources (one HTTP client for the FHIR server, one database
engine) and opens/closes them in the FastAPI lifespan or around a CLI command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from service import __version__
from service.adapters.fhir import inbound, outbound
from service.adapters.fhir.client import FhirClient, RetryPolicy, create_http_client, static_token
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.writer import FhirAssessmentWriter
from service.adapters.persistence.store import SqlAssessmentStore
from service.application.assess import AssessPatients, PatientOutcome, SyncPatients, SyncReport
from service.application.clock import now
from service.application.errors import InvalidInput, NotConfigured
from service.application.ports import PatientInput
from service.config import Settings
from service.domain.results import DataIssue, PatientAssessment
from service.observability import Metrics


class Container:
    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.key_salt = settings.patient_key_salt.get_secret_value()
        self.assessor = AssessPatients(settings.assessment_parameters(), key_salt=self.key_salt)
        self._external_http = http
        self.http: httpx.AsyncClient | None = None
        self.fhir: FhirClient | None = None
        self.store: SqlAssessmentStore | None = None
        self.sync: SyncPatients | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.store = SqlAssessmentStore.open(self.settings.database_url, patient_key_salt=self.key_salt)
        if self.settings.fhir_base_url is not None:
            self.http = self._external_http or create_http_client(timeout_s=self.settings.fhir_timeout_s)
            token = self.settings.fhir_bearer_token
            self.fhir = FhirClient(
                self.http,
                str(self.settings.fhir_base_url),
                retry=RetryPolicy(max_attempts=self.settings.fhir_max_retries + 1),
                token_provider=static_token(token.get_secret_value()) if token is not None else None,
            )
            self.sync = SyncPatients(
                FhirMeasurementSource(self.fhir, page_size=self.settings.fhir_page_size),
                FhirAssessmentWriter(self.fhir, version=__version__),
                self.store,
                self.assessor,
                concurrency=self.settings.sync_concurrency,
                key_salt=self.key_salt,
            )

    async def stop(self) -> None:
        if self.http is not None and self._external_http is None:
            await self.http.aclose()
        if self.store is not None:
            self.store.close()

    async def __aenter__(self) -> Container:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- use-case helpers ----------------------------------------------------------------------
    def require_sync(self) -> SyncPatients:
        if self.sync is None:
            raise NotConfigured("No FHIR server is configured (set ONCORESPONSE_FHIR_BASE_URL)")
        return self.sync

    def read_bundle(self, data: Any) -> tuple[list[PatientInput], list[DataIssue]]:
        """Split a posted Bundle into patients; a body that is no Bundle raises InvalidInput."""
        if not isinstance(data, Mapping) or data.get("resourceType") != "Bundle":
            found = data.get("resourceType") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInput(f"Expected a FHIR Bundle, got {found!r}")
        entries = data.get("entry", [])
        if not isinstance(entries, list):
            raise InvalidInput("Bundle.entry must be an array")
        grouped, issues = inbound.group_bundle_by_patient(data)
        if not grouped:
            raise InvalidInput("The Bundle holds no Patient resource, so there is nobody to assess")
        patients = [inbound.patient_input(pid, resources) for pid, resources in grouped.items()]
        return patients, list(issues)

    def render_collection(
        self, outcomes: Sequence[PatientOutcome], issues: Iterable[DataIssue]
    ) -> dict[str, Any]:
        """The `$assess` answer: a collection Bundle of Observations plus one OperationOutcome.

        Patients that could not be assessed appear only in the OperationOutcome; the others
        get their results (one bad patient never hides the rest).
        """
        unassessed = [i for o in outcomes if o.assessment is None for i in o.issues]
        results: list[tuple[PatientAssessment, PatientInput]] = []
        for o in outcomes:
            if o.assessment is not None:
                results.append((o.assessment, o.input))
        return outbound.assessment_bundle(
            results, [*issues, *unassessed], version=__version__, recorded=now()
        )

    def count_outcomes(self, outcomes: Sequence[PatientOutcome]) -> None:
        for outcome in outcomes:
            self.metrics.assessments.labels("assessed" if outcome.assessment else "failed").inc()
            for issue in outcome.issues:
                self.metrics.data_issues.labels(issue.code).inc()

    def count_sync(self, report: SyncReport) -> None:
        self.metrics.assessments.labels("assessed").inc(report.patients_assessed)
        self.metrics.assessments.labels("failed").inc(report.patients_failed)
        self.metrics.fhir_writes.labels("created").inc(report.created)
        self.metrics.fhir_writes.labels("unchanged").inc(report.unchanged)
        for issue in report.issues:
            self.metrics.data_issues.labels(issue.code).inc()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        checks["database"] = "ok" if self.store is not None and await self.store.ping() else "unreachable"
        if self.fhir is not None:
            try:
                await self.fhir.capabilities()
                checks["fhir"] = "ok"
            except Exception as exc:  # readiness reports, it never raises
                checks["fhir"] = type(exc).__name__
        return checks
