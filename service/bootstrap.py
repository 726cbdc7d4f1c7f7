"""The one place that picks concrete adapters and wires them into the use cases.

`Container` owns the process-wide resources (one HTTP client for the FHIR server, one database
engine) and opens/closes them in the FastAPI lifespan or around a CLI command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from anyio.abc import TaskGroup

from service import __version__
from service.adapters.alerts.cds_hooks import CdsJwtVerifier
from service.adapters.alerts.fhir import FhirAlertChannel
from service.adapters.alerts.outbox import SqlDeliveryOutbox
from service.adapters.alerts.webhook import WebhookAlertChannel
from service.adapters.fhir import collection, inbound
from service.adapters.fhir.bulk import FhirBulkExport
from service.adapters.fhir.changes import FhirChangeFeed
from service.adapters.fhir.client import (
    FhirClient,
    RetryPolicy,
    TokenProvider,
    create_http_client,
    static_token,
)
from service.adapters.fhir.smart import DEFAULT_SCOPES, SmartBackendAuth, SmartCredentials
from service.adapters.fhir.source import FhirMeasurementSource
from service.adapters.fhir.source import _ours as is_own_result
from service.adapters.fhir.subscriptions import FhirSubscriptionRegistry
from service.adapters.fhir.writer import FhirAssessmentWriter, WriteOptions, WriteStrategy
from service.adapters.persistence.leases import SqlPatientLeases
from service.adapters.persistence.outbox import SqlAlertOutbox
from service.adapters.persistence.replay import SqlReplayLedger
from service.adapters.persistence.store import SqlAssessmentStore
from service.application.alerts import AlertWorker, DeliverAlerts, RetrySchedule, plan_alerts
from service.application.assess import AssessPatients, PatientOutcome, SyncPatients, SyncReport
from service.application.clock import now, today
from service.application.errors import NotConfigured
from service.application.ports import AlertChannel, MeasurementSource, PatientInput
from service.application.reassess import ReassessChangedPatients
from service.application.subscriptions import WatchSubscriptions
from service.config import Settings
from service.domain.results import DataIssue
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
        self.writer: FhirAssessmentWriter | None = None
        # --- FHIR integration ---------------------------------------------------------------
        self.fhir_source: FhirMeasurementSource | None = None
        self.reassess: ReassessChangedPatients | None = None
        self.subscriptions: WatchSubscriptions | None = None
        # --- alerts and CDS Hooks ---------------------------------------------------------
        self.outbox: SqlAlertOutbox | None = None
        self.alert_channels: list[AlertChannel] = []
        self.deliver_alerts: DeliverAlerts | None = None
        self._alert_task: asyncio.Task[None] | None = None
        self.alert_worker: AlertWorker | None = None
        self.cds_verifier = CdsJwtVerifier(
            settings.cds_hooks_trusted_issuers, leeway_s=settings.cds_hooks_jwt_leeway_s
        )

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.store = SqlAssessmentStore.open(self.settings.database_url, patient_key_salt=self.key_salt)
        # CDS Hooks token replays are checked in the database: every replica sees every used token.
        self.cds_verifier.share_replay_ledger(SqlReplayLedger(self.store.repository.engine))
        if self.settings.fhir_base_url is not None:
            self.http = self._external_http or create_http_client(
                timeout_s=self.settings.fhir_timeout_s, transport=self.settings.fhir_http_transport
            )
            self.fhir = FhirClient(
                self.http,
                str(self.settings.fhir_base_url),
                retry=RetryPolicy(
                    max_attempts=self.settings.fhir_max_retries + 1, max_wait_s=self.settings.fhir_max_wait_s
                ),
                token_provider=self._fhir_token_provider(self.http),
                write_timeout_s=self.settings.fhir_write_timeout_s,
            )
            self.writer = self._fhir_writer(self.fhir)
            self.sync = SyncPatients(
                FhirMeasurementSource(self.fhir, page_size=self.settings.fhir_page_size),
                self.writer,
                self.store,
                self.assessor,
                concurrency=self.settings.sync_concurrency,
                key_salt=self.key_salt,
                plan_alerts=plan_alerts if self.settings.alerts_enabled else None,
                stale_run_s=self.settings.sync_stale_run_s,
                leases=self._leases(),
            )
            self._start_fhir_integration(self.fhir, self.sync)
        self._start_alerts()

    async def stop(self) -> None:
        await self.stop_alert_worker()
        if self.http is not None and self._external_http is None:
            await self.http.aclose()
        if self.store is not None:
            self.store.close()

    async def __aenter__(self) -> Container:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- alerts and CDS Hooks -------------------------------------------------------------
    def _start_alerts(self) -> None:
        """Outbox, delivery channels (FHIR Communication + Flag, signed webhooks) and the use case."""
        if self.store is None:
            return
        settings = self.settings
        self.outbox = SqlAlertOutbox(self.store.repository.engine, patient_key_salt=self.key_salt)
        if not settings.alerts_enabled:
            return
        channels: list[AlertChannel] = []
        if self.fhir is not None:
            viewer = (
                f"{str(settings.public_base_url).rstrip('/')}/app/patient/launch"
                if settings.public_base_url
                else None
            )
            channels.append(
                FhirAlertChannel(self.fhir, role_codes=settings.alert_oncology_role_codes, viewer_url=viewer)
            )
        if settings.alert_webhook_urls and settings.alert_webhook_secret is not None:
            if self.http is None:
                self.http = self._external_http or create_http_client(
                    timeout_s=settings.alert_webhook_timeout_s
                )
            secret = settings.alert_webhook_secret.get_secret_value()
            for url in settings.alert_webhook_urls:
                channels.append(
                    WebhookAlertChannel(
                        self.http, str(url), secret, timeout_s=settings.alert_webhook_timeout_s
                    )
                )
        self.alert_channels = channels
        if channels:
            self.deliver_alerts = DeliverAlerts(
                SqlDeliveryOutbox(self.outbox),
                channels,
                schedule=RetrySchedule(
                    max_attempts=settings.alert_max_attempts,
                    base_delay_s=settings.alert_retry_base_s,
                    max_delay_s=settings.alert_retry_max_s,
                ),
                held_recheck_s=settings.alert_held_recheck_s,
            )

    def start_alert_worker(self) -> None:
        """Run the delivery worker as a background task (the app lifespan); no-op when not configured."""
        interval = self.settings.alert_worker_interval_s
        if self.deliver_alerts is None or interval <= 0 or self._alert_task is not None:
            return
        worker = AlertWorker(self.deliver_alerts, interval_s=interval)
        self.alert_worker = worker
        self._alert_task = asyncio.get_running_loop().create_task(worker.run(), name="alert-worker")

    def wake_alerts(self, report: SyncReport) -> None:
        """Deliver the alerts a run just committed at once, not at the worker's next pass."""
        if report.alerts_recorded and self.alert_worker is not None:
            self.alert_worker.wake()

    async def stop_alert_worker(self) -> None:
        task, self._alert_task = self._alert_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def require_alert_outbox(self) -> SqlAlertOutbox:
        if self.outbox is None:
            raise NotConfigured("The database is not open")
        return self.outbox

    def require_alert_delivery(self) -> DeliverAlerts:
        if self.deliver_alerts is None:
            raise NotConfigured(
                "No alert channel is configured (set ONCORESPONSE_FHIR_BASE_URL or ONCORESPONSE_ALERT_WEBHOOK_URLS)"
            )
        return self.deliver_alerts

    # --- FHIR integration: SMART auth, Bulk Data, subscriptions' re-assessment ----------
    def _fhir_token_provider(self, http: httpx.AsyncClient) -> TokenProvider | None:
        """SMART Backend Services when a client id and key are set, else the static bearer token."""
        settings = self.settings
        if settings.fhir_smart_client_id and settings.fhir_smart_private_key is not None:
            credentials = SmartCredentials(
                client_id=settings.fhir_smart_client_id,
                private_key_pem=settings.fhir_smart_private_key.get_secret_value(),
                algorithm=settings.fhir_smart_algorithm,
                key_id=settings.fhir_smart_key_id,
                scopes=settings.fhir_smart_scopes or DEFAULT_SCOPES,
                token_url=str(settings.fhir_smart_token_url) if settings.fhir_smart_token_url else None,
            )
            return SmartBackendAuth(http, str(settings.fhir_base_url), credentials)
        token = settings.fhir_bearer_token
        return static_token(token.get_secret_value()) if token is not None else None

    def _start_fhir_integration(self, fhir: FhirClient, sync: SyncPatients) -> None:
        self.fhir_source = FhirMeasurementSource(fhir, page_size=self.settings.fhir_page_size)
        self.reassess = ReassessChangedPatients(
            sync,
            self.fhir_source,
            key_salt=self.key_salt,
            today=today,
            now=now,
            resolver=self.patient_of_resource,
            changes=FhirChangeFeed(fhir, page_size=self.settings.fhir_page_size),
            debounce_s=self.settings.reassess_debounce_s,
            quiet_s=self.settings.reassess_quiet_s,
            after_run=self.wake_alerts,
        )
        endpoint, token = self.settings.subscription_endpoint, self.settings.subscription_hook_token
        if endpoint is not None and token is not None:
            registry = FhirSubscriptionRegistry(
                fhir,
                endpoint=str(endpoint),
                hook_token=token.get_secret_value(),
                criteria=self.settings.subscription_criteria,
                payload=self.settings.subscription_payload,
                register=self.settings.subscription_register,
            )
            self.subscriptions = WatchSubscriptions(
                registry, report=lambda states: self.metrics.report_subscriptions([s.status for s in states])
            )

    def start_reassessment(self, tasks: TaskGroup) -> None:
        """Run the debounced re-assessment and the polling fallback in `tasks`.

        With our own Subscriptions configured, they are registered or checked at once and polling
        runs only while they are not all active (`application/subscriptions.py`); without, the
        poll runs every `fhir_poll_interval_s` (docs/fhir/subscriptions.md).
        """
        if self.reassess is None:
            return
        tasks.start_soon(self.reassess.run)
        interval = self.settings.fhir_poll_interval_s
        if self.subscriptions is not None:
            tasks.start_soon(self.subscriptions.run, self.reassess.request_poll, interval)
        elif interval > 0:
            tasks.start_soon(self.reassess.poll_forever, interval)

    def require_reassess(self) -> ReassessChangedPatients:
        if self.reassess is None:
            raise NotConfigured("No FHIR server is configured (set ONCORESPONSE_FHIR_BASE_URL)")
        return self.reassess

    async def patient_of_resource(self, reference: str) -> str | None:
        """The patient of `Type/id` on the FHIR server (resolves notification focus references)."""
        if self.fhir is None:
            return None
        resource_type, _, resource_id = reference.partition("/")
        resource = await self.fhir.read(resource_type, resource_id)
        if resource_type == "Patient":
            return resource_id
        return None if is_own_result(resource) else inbound.patient_of(resource)

    def bulk_sync(self, source: MeasurementSource) -> SyncPatients:
        """`SyncPatients` over another source (a Bulk Data spool), writing back like `sync`."""
        if self.fhir is None:
            raise NotConfigured("No FHIR server is configured (set ONCORESPONSE_FHIR_BASE_URL)")
        return SyncPatients(
            source,
            self.writer or self._fhir_writer(self.fhir),
            self.store,
            self.assessor,
            concurrency=self.settings.sync_concurrency,
            key_salt=self.key_salt,
            plan_alerts=plan_alerts if self.settings.alerts_enabled else None,
            stale_run_s=self.settings.sync_stale_run_s,
            leases=self._leases(),
        )

    def _fhir_writer(self, fhir: FhirClient) -> FhirAssessmentWriter:
        """One writer per container: what it learns of the server (strategy, sizes) lasts."""
        settings = self.settings
        return FhirAssessmentWriter(
            fhir,
            version=__version__,
            options=WriteOptions(
                strategy=WriteStrategy(settings.fhir_write_strategy),
                max_entries=settings.fhir_write_max_entries,
                max_attempts=settings.fhir_write_max_attempts,
                concurrency=settings.sync_concurrency,
            ),
        )

    def _leases(self) -> SqlPatientLeases | None:
        """Patient leases shared by every sync process on this database (none without a store)."""
        if self.store is None:
            return None
        return SqlPatientLeases(
            self.store.repository.engine, ttl=timedelta(seconds=self.settings.sync_lease_s)
        )

    def bulk_export(self) -> FhirBulkExport:
        if self.fhir is None:
            raise NotConfigured("No FHIR server is configured (set ONCORESPONSE_FHIR_BASE_URL)")
        return FhirBulkExport(
            self.fhir,
            page_lines=self.settings.fhir_bulk_page_lines,
            max_wait_s=self.settings.fhir_bulk_max_wait_s,
        )

    # --- use-case helpers ----------------------------------------------------------------------
    def require_sync(self) -> SyncPatients:
        if self.sync is None:
            raise NotConfigured("No FHIR server is configured (set ONCORESPONSE_FHIR_BASE_URL)")
        return self.sync

    def read_bundle(self, data: Any) -> tuple[list[PatientInput], list[DataIssue]]:
        """Split a posted Bundle into patients; a body that is no Bundle raises InvalidInput."""
        posted = collection.read_patients(data)
        return posted.patients, posted.issues

    def render_collection(
        self, outcomes: Sequence[PatientOutcome], issues: Iterable[DataIssue]
    ) -> dict[str, Any]:
        """The `$assess` answer (`adapters/fhir/collection.py`)."""
        return collection.render_collection(outcomes, issues, recorded=now())

    def count_outcomes(self, outcomes: Sequence[PatientOutcome]) -> None:
        for outcome in outcomes:
            self.metrics.assessments.labels("assessed" if outcome.assessment else "failed").inc()
            for issue in outcome.issues:
                self.metrics.data_issues.labels(issue.code).inc()

    def count_sync(self, report: SyncReport) -> None:
        self.wake_alerts(report)
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
        if self.subscriptions is not None:
            checks["subscription"] = self.subscriptions.summary
        return checks
