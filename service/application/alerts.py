"""Alerts on atypical response: what to record, and delivering it exactly once.

Contract section 3: when a patient's first DR (or PsPD) is written, the responsible oncologist
is told what was found, at which scan, which lesions grow and which shrink, and what to do next;
each alert once per patient, finding and timepoint, whatever the number of re-runs.

Decisions (sources silent; other engineers must match them):

- Which finding: per patient and per kind (DR, PsPD) only the FIRST finding (lowest timepoint
  index, then date) is alerted, as the contract says "first ... DR (or PsPD)". A DR seen again
  at later timepoints is the same clinical situation and is not re-alerted. HPD and DeR are not
  alerted (not asked for; HPD shows as RECIST PD, which the clinician sees anyway).
- Dedup key: ``<patient>/<kind>/<timepoint date>`` (`persistence.outbox.alert_dedup_key`);
  the date, not the index, names the timepoint, because an added earlier scan renumbers indices.
- Next step (Guan et al. 2024, Discussion and Fig. 5): "oncologists must perform the next
  assessment in the subsequent 4-8 weeks and continue on immunotherapy or/and consider local
  therapy for progressive lesions". For PsPD (iRECIST, Seymour 2017): the earlier progression
  was not confirmed and the disease responded afterwards; continuing the ICI with the usual
  imaging interval is suggested, and the earlier PD should not be read as treatment failure.
- Delivery: each channel (FHIR Communication + Flag, each webhook URL) is tried until it
  succeeds once; its success is recorded in the outbox, so a retry repeats only the channels
  that failed. Retries back off exponentially (`RetrySchedule`); after `max_attempts` the alert
  is `failed` (kept with its `last_error`, visible in `GET /alerts`, re-triable through the
  API, never dropped). When nobody can be addressed (`RecipientUnknown`), the alert is `held`
  and reported (log warning, `GET /alerts?status=held`) after the other channels ran. A held
  alert is tried again every `held_recheck_s` (ONCORESPONSE_ALERT_HELD_RECHECK_S, default one
  hour), so that it reaches the oncologist once the CareTeam names one, without anybody having
  to release it by hand (POST /alerts/{id}/retry still does at once); only the channels that have
  not delivered run again, a hold does not use up the retry schedule's attempts, and an
  acknowledged alert is not re-checked. 0 = held until released by hand.
- A crash between a channel's write and its bookkeeping is harmless: the outbox row stays due
  (its claim lease runs out), and re-delivery is idempotent (FHIR conditional creates on the
  alert identifier; webhooks carry a stable delivery id for receivers to de-duplicate).
  The crashed try still counts as an attempt (the claim that finds its expired lease counts it),
  so an alert that kills its worker every time ends `failed` after `max_attempts` instead of
  being claimed again every lease for ever.

Logs name patients only by `patient_key`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import anyio
import structlog

from service.application.clock import now as utc_now
from service.application.errors import ApplicationError
from service.application.ports import AlertChannel, AlertOutbox, AlertRecord, PendingAlert
from service.domain.results import AtypicalFinding, AtypicalKind, LesionResult, PatientAssessment

log = structlog.get_logger(__name__)

ALERTED_KINDS: Final = (AtypicalKind.DR, AtypicalKind.PSPD)
PAYLOAD_FORMAT: Final = 1
SOURCE_DR: Final = (
    "Guan Y et al. Dissociated response and treatment outcome with immune checkpoint blockade "
    "in advanced cancer (2024), Discussion and Fig. 5"
)
SOURCE_PSPD: Final = "Seymour L et al. iRECIST (Lancet Oncol 2017), section on unconfirmed progression"
REASSESS_WEEKS: Final = (4, 8)

KIND_DISPLAY: Final[dict[str, str]] = {
    AtypicalKind.DR.value: "Dissociated response",
    AtypicalKind.PSPD.value: "Pseudoprogression",
}
NEXT_STEP_TEXT: Final[dict[str, str]] = {
    AtypicalKind.DR.value: (
        "Reassess with imaging in 4-8 weeks; consider continuing the immune checkpoint inhibitor "
        "and local therapy (e.g. radiotherapy or ablation) for the growing lesions, rather than "
        "stopping immunotherapy or switching line at once."
    ),
    AtypicalKind.PSPD.value: (
        "The earlier progression was not confirmed and the disease responded afterwards: consider "
        "continuing the immune checkpoint inhibitor with the usual imaging interval; do not read "
        "the earlier progression as treatment failure."
    ),
}
NEXT_STEP_ACTIONS: Final[dict[str, tuple[str, ...]]] = {
    AtypicalKind.DR.value: ("reassess-imaging", "continue-ici", "local-therapy-for-growing-lesions"),
    AtypicalKind.PSPD.value: ("continue-ici", "reassess-imaging"),
}


class RecipientUnknown(ApplicationError):
    """Nobody responsible could be found for the patient (no oncologist, requester or GP)."""

    problem_type = "/problems/alert-recipient-unknown"
    title = "No recipient for the alert"
    status = 409


class AlertNotFound(ApplicationError):
    problem_type = "/problems/alert-not-found"
    title = "Alert not found"
    status = 404


# --- what to record -----------------------------------------------------------------------------
def alert_identifier(patient_id: str, kind: str, timepoint_date: str) -> str:
    """Identifier value of the alert's Communication and Flag (system `codes.IDENTIFIER_ALERT`).

    First 32 hex digits of SHA-256 over the dedup key's parts joined by U+001F: the same alert
    always gets the same identifier, so a re-delivery after a crash finds what was written.
    """
    text = "\x1f".join((patient_id, kind, timepoint_date))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _lesion(result: LesionResult | None, lesion_id: str) -> dict[str, Any]:
    if result is None:
        return {"lesion_id": lesion_id}
    return {
        "lesion_id": lesion_id,
        "lesion_ref": result.lesion_ref,
        "status": result.status.value,
        "is_target": result.is_target,
        "diameter_mm": _decimal(result.diameter_mm),
        "change_from_baseline_pct": _decimal(result.change_from_baseline_pct),
        "change_from_nadir_pct": _decimal(result.change_from_nadir_pct),
    }


def first_findings(assessment: PatientAssessment) -> list[AtypicalFinding]:
    """The first finding of each alerted kind (module doc), in kind order."""
    firsts: list[AtypicalFinding] = []
    for kind in ALERTED_KINDS:
        findings = [f for f in assessment.atypical if f.kind is kind]
        if findings:
            firsts.append(min(findings, key=lambda f: (f.timepoint_index, f.timepoint_date)))
    return firsts


def alert_payload(assessment: PatientAssessment, finding: AtypicalFinding) -> dict[str, Any]:
    """The alert as plain JSON: the finding, the scan, growing and shrinking lesions, the next step.

    Only what the clinician needs: the FHIR patient reference (no name, birth date or MRN), lesion
    ids and measurements at that scan.
    """
    at_scan = {r.lesion_id: r for r in assessment.lesions if r.timepoint_date == finding.timepoint_date}
    kind = finding.kind.value
    return {
        "format": PAYLOAD_FORMAT,
        "alert_id": alert_identifier(assessment.patient_id, kind, finding.timepoint_date.isoformat()),
        "patient": {"reference": f"Patient/{assessment.patient_id}"},
        "finding": {
            "kind": kind,
            "display": KIND_DISPLAY[kind],
            "definition": finding.definition,
            "definition_version": finding.definition_version,
            "trigger": finding.trigger.value if finding.trigger is not None else None,
            "overall_response_at_detection": (
                finding.overall_at_detection.value if finding.overall_at_detection is not None else None
            ),
        },
        "scan": {
            "timepoint_index": finding.timepoint_index,
            "date": finding.timepoint_date.isoformat(),
        },
        "lesions": {
            "growing": [_lesion(at_scan.get(i), i) for i in finding.growing_lesions],
            "shrinking": [_lesion(at_scan.get(i), i) for i in finding.shrinking_lesions],
        },
        "next_step": {
            "text": NEXT_STEP_TEXT[kind],
            "reassess_within_weeks": list(REASSESS_WEEKS),
            "actions": list(NEXT_STEP_ACTIONS[kind]),
            "source": SOURCE_DR if finding.kind is AtypicalKind.DR else SOURCE_PSPD,
        },
    }


def plan_alerts(assessment: PatientAssessment) -> list[AlertRecord]:
    """The alerts an assessment asks for (the outbox drops those already recorded)."""
    return [
        AlertRecord(
            patient_id=assessment.patient_id,
            kind=f.kind.value,
            timepoint_date=f.timepoint_date,
            payload=alert_payload(assessment, f),
        )
        for f in first_findings(assessment)
    ]


def _lesion_phrase(lesion: Mapping[str, Any]) -> str:
    name = str(lesion.get("lesion_id", "?"))
    status = lesion.get("status")
    baseline = lesion.get("change_from_baseline_pct")
    nadir = lesion.get("change_from_nadir_pct")
    if status == "new":
        return f"{name} (new)"
    if status == "progressing" and nadir is not None:
        return f"{name} ({_signed(nadir)} % from nadir)"
    if baseline is not None:
        return f"{name} ({_signed(baseline)} % from baseline)"
    return f"{name} ({status})" if status else name


def _signed(value: object) -> str:
    text = str(Decimal(str(value)).quantize(Decimal("1")))
    return text if text.startswith("-") else f"+{text}"


def alert_text(payload: Mapping[str, Any]) -> str:
    """One paragraph for a clinician: finding, scan, lesions, next step (Communication payload)."""
    finding = payload["finding"]
    scan = payload["scan"]
    lesions = payload["lesions"]
    growing = ", ".join(_lesion_phrase(x) for x in lesions["growing"]) or "none listed"
    shrinking = ", ".join(_lesion_phrase(x) for x in lesions["shrinking"]) or "none listed"
    return (
        f"{finding['display']} ({finding['kind']}, definition {finding['definition']}) on immune "
        f"checkpoint inhibitor therapy at scan {scan['timepoint_index']} of {scan['date']}. "
        f"Growing: {growing}. Shrinking: {shrinking}. "
        f"Suggested next step: {payload['next_step']['text']} "
        f"(Source: {payload['next_step']['source']}.)"
    )


# --- delivering ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Bounded exponential backoff: attempt n (1-based) failed -> retry after base * 2^(n-1), capped."""

    max_attempts: int = 8
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0

    def next_attempt(self, attempts_so_far: int, *, now: datetime) -> datetime | None:
        """When to try again after the `attempts_so_far`-th failed attempt; None = give up."""
        if attempts_so_far >= self.max_attempts:
            return None
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempts_so_far - 1))
        return now + timedelta(seconds=delay)


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed + self.held


# Called after a channel succeeded and before its success is recorded (tests simulate crashes here).
AfterChannelHook = Callable[[PendingAlert, str], Awaitable[None]]
# Called with the claimed batch (possibly empty), after the claim is committed and before any
# channel runs (fault injection: `adapters/alerts/fault_injection.py`, tests). Production sets none.
AfterClaimHook = Callable[[Sequence[PendingAlert]], Awaitable[None]]


class DeliverAlerts:
    """One delivery pass over the due alerts of the outbox (see module doc)."""

    def __init__(
        self,
        outbox: AlertOutbox,
        channels: Sequence[AlertChannel],
        *,
        schedule: RetrySchedule = RetrySchedule(),
        batch_size: int = 50,
        lease_s: float = 300.0,
        clock: Callable[[], datetime] = utc_now,
        after_channel: AfterChannelHook | None = None,
        after_claim: AfterClaimHook | None = None,
        held_recheck_s: float = 0.0,
    ) -> None:
        self._outbox = outbox
        self._held_recheck_s = held_recheck_s
        self._channels = tuple(channels)
        self._schedule = schedule
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._clock = clock
        self._after_channel = after_channel
        self._after_claim = after_claim

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._channels)

    def with_hooks(
        self, *, after_claim: AfterClaimHook | None = None, after_channel: AfterChannelHook | None = None
    ) -> DeliverAlerts:
        """The same pass (outbox, channels, schedule, batch, lease, clock) with these hooks instead.

        Only for fault injection: `oncoresponse deliver-alerts` under the test-only
        ``ONCORESPONSE_TEST_PAUSE_AT`` (`adapters/alerts/fault_injection.py`) and tests.
        """
        return DeliverAlerts(
            self._outbox,
            self._channels,
            schedule=self._schedule,
            batch_size=self._batch_size,
            lease_s=self._lease_s,
            clock=self._clock,
            after_channel=after_channel,
            after_claim=after_claim,
            held_recheck_s=self._held_recheck_s,
        )

    async def __call__(self) -> DeliveryReport:
        report = DeliveryReport()
        if self._held_recheck_s > 0:
            await self._outbox.release_rechecks()
        claimed = await self._outbox.claim_due(limit=self._batch_size, lease_s=self._lease_s)
        if self._after_claim is not None:
            await self._after_claim(claimed)
        for alert in claimed:
            await self._one(alert, report)
        if report.attempted:
            log.info(
                "alerts.pass",
                delivered=report.delivered,
                retrying=report.retrying,
                failed=report.failed,
                held=report.held,
            )
        return report

    async def _one(self, alert: PendingAlert, report: DeliveryReport) -> None:
        if alert.attempts >= self._schedule.max_attempts:
            # Its attempts ran out while workers died delivering it (the claim counts those):
            # stop, visibly, instead of killing a worker every lease.
            await self._outbox.give_up(
                alert.id, f"gave up after {alert.attempts} attempts; the last ones never finished"
            )
            report.failed += 1
            report.errors.append(f"alert {alert.id}: attempts used up")
            log.error(
                "alert.failed", alert_id=alert.id, patient_key=alert.patient_key, attempts=alert.attempts
            )
            return
        errors: list[str] = []
        hold_reason: str | None = None
        for channel in self._channels:
            previous = alert.channels.get(channel.name)
            if previous is not None and previous.get("state") == "delivered":
                continue
            try:
                detail = await channel.deliver(alert)
            except RecipientUnknown as exc:
                hold_reason = f"{channel.name}: {exc.detail}"
                await self._outbox.record_channel(
                    alert.id, channel.name, {"state": "held", "error": exc.detail, "at": self._now()}
                )
                continue
            except (ApplicationError, OSError) as exc:
                error = f"{channel.name}: {_describe(exc)}"
                errors.append(error)
                await self._outbox.record_channel(
                    alert.id, channel.name, {"state": "failed", "error": error, "at": self._now()}
                )
                continue
            if self._after_channel is not None:
                await self._after_channel(alert, channel.name)
            await self._outbox.record_channel(
                alert.id, channel.name, {"state": "delivered", "at": self._now(), **detail}
            )
        attempt = alert.attempts + 1
        if errors:
            retry_at = self._schedule.next_attempt(attempt, now=self._clock())
            message = "; ".join(errors)
            await self._outbox.mark_failed(alert.id, message, retry_at=retry_at)
            report.errors.append(message)
            if retry_at is None:
                report.failed += 1
                log.error("alert.failed", alert_id=alert.id, patient_key=alert.patient_key, attempts=attempt)
            else:
                report.retrying += 1
                log.warning(
                    "alert.retry",
                    alert_id=alert.id,
                    patient_key=alert.patient_key,
                    attempts=attempt,
                    retry_at=retry_at.isoformat(),
                )
        elif hold_reason is not None:
            recheck = self._held_recheck_s
            recheck_at = self._clock() + timedelta(seconds=recheck) if recheck > 0 else None
            await self._outbox.hold(alert.id, hold_reason, recheck_at=recheck_at)
            report.held += 1
            log.warning("alert.held", alert_id=alert.id, patient_key=alert.patient_key, kind=alert.kind)
        else:
            await self._outbox.mark_delivered(alert.id)
            report.delivered += 1
            log.info("alert.delivered", alert_id=alert.id, patient_key=alert.patient_key, kind=alert.kind)

    def _now(self) -> str:
        return self._clock().isoformat()


def _describe(exc: BaseException) -> str:
    """A safe one-line reason: application errors carry vetted text; others only their type."""
    if isinstance(exc, ApplicationError):
        return f"{type(exc).__name__}: {exc.detail}"
    return type(exc).__name__


class AlertWorker:
    """Runs `DeliverAlerts` at once when woken and every `interval_s` otherwise, until cancelled.

    `wake()` is called right after a run committed new alerts to the outbox, so delivery follows
    the finding without waiting for the next pass; the periodic pass only picks up retries, held
    re-checks and alerts recorded by another process. A wake during a pass starts another pass
    straight after it (nothing committed meanwhile waits). A pass that fails unexpectedly
    (database down) is logged and the loop goes on; nothing is lost, since the state is in the
    outbox.
    """

    def __init__(self, deliver: DeliverAlerts, *, interval_s: float) -> None:
        self._deliver = deliver
        self._interval_s = interval_s
        self._woken = False
        self._wake_event: anyio.Event | None = None
        self.passes = 0

    def wake(self) -> None:
        """Deliver now (safe to call from the event loop's thread at any time)."""
        self._woken = True
        if self._wake_event is not None:
            self._wake_event.set()

    async def run(self) -> None:
        log.info(
            "alerts.worker_started", interval_s=self._interval_s, channels=list(self._deliver.channel_names)
        )
        while True:
            self._wake_event = anyio.Event()
            self._woken = False
            try:
                await self._deliver()
            except Exception as exc:  # the loop must survive; the outbox keeps the work
                log.error("alerts.pass_failed", error=type(exc).__name__)
            self.passes += 1
            if self._woken:
                continue
            with anyio.move_on_after(self._interval_s):
                await self._wake_event.wait()
