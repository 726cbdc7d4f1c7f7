"""Test-only pause points of `oncoresponse deliver-alerts`, to kill the worker at its worst moments.

"a test kills the worker between commit and delivery". To do that with a real
``kill -9`` at a known moment, the ``deliver-alerts`` command honours the environment variable
``ONCORESPONSE_TEST_PAUSE_AT`` (`PAUSE_ENV`):

- ``after-claim``: the due alerts are claimed (the lease is committed in the outbox) and no
  channel has run yet: nothing is written anywhere.
- ``after-fhir-write``: the FHIR channel's transaction (Communication + Flag) has succeeded on the
  server, and neither that success nor the delivery is recorded in the outbox yet.

At that point the worker writes ONE line to stderr, ``oncoresponse-test-pause <point> pid=<pid>
alerts=<outbox ids>`` (`MARKER`; no patient identifiers), and sleeps, so that a test can wait for
the line and SIGKILL the process (tests/e2e/test_alerts_crash.py). A worker nobody kills exits
abruptly after `PAUSE_LIMIT_S` with status `PAUSE_EXPIRED_EXIT`, without finishing the pass: a
forgotten paused worker neither lingers nor completes the delivery behind the test's back. An
empty claim (nothing due) does not pause.

Decisions:

- Not configuration: the variable is deliberately NOT a `Settings` field and NOT in
  `deploy/env.example`; it is read by the ``deliver-alerts`` command in `service/cli.py` and by
  nothing else (the one documented exception to "config.py is the only reader of the
  environment"). The API's background worker never pauses.
- It acts only when `Settings.environment` (``ONCORESPONSE_ENVIRONMENT``) is ``test`` or
  ``development``. Elsewhere it is IGNORED with a warning log (``alerts.test_pause_refused``)
  rather than failing the command: a stray variable in production must not stop clinician alerts.
- An unknown value in test/development is a usage error (`UnknownPausePoint`; the command exits
  with status 2), so a typo cannot silently turn the crash test into a plain delivery.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

import anyio
import structlog

from service.adapters.alerts.fhir import FhirAlertChannel
from service.application.alerts import DeliverAlerts
from service.application.ports import PendingAlert

__all__ = [
    "MARKER",
    "PAUSE_ENV",
    "PAUSE_EXPIRED_EXIT",
    "PAUSE_LIMIT_S",
    "PausePoint",
    "UnknownPausePoint",
    "pause_point",
    "with_pause",
]

log = structlog.get_logger(__name__)

PAUSE_ENV: Final = "ONCORESPONSE_TEST_PAUSE_AT"
MARKER: Final = "oncoresponse-test-pause"
PAUSE_LIMIT_S: Final = 120.0
PAUSE_EXPIRED_EXIT: Final = 70  # EX_SOFTWARE
ALLOWED_ENVIRONMENTS: Final = frozenset({"test", "development"})


class PausePoint(StrEnum):
    AFTER_CLAIM = "after-claim"
    AFTER_FHIR_WRITE = "after-fhir-write"


class UnknownPausePoint(ValueError):
    """`PAUSE_ENV` holds a value that names no pause point."""


def pause_point(value: str | None, *, environment: str) -> PausePoint | None:
    """The pause point asked for by the raw `PAUSE_ENV` value, or None (unset, or refused; module doc)."""
    if not value:
        return None
    if environment not in ALLOWED_ENVIRONMENTS:
        log.warning("alerts.test_pause_refused", environment=environment)
        return None
    try:
        return PausePoint(value)
    except ValueError:
        known = ", ".join(p.value for p in PausePoint)
        raise UnknownPausePoint(f"{PAUSE_ENV} must be one of {known}") from None


async def _pause(point: PausePoint, alert_ids: Sequence[int]) -> None:
    ids = ",".join(str(i) for i in alert_ids)
    sys.stderr.write(f"{MARKER} {point.value} pid={os.getpid()} alerts={ids}\n")
    sys.stderr.flush()
    await anyio.sleep(PAUSE_LIMIT_S)
    os._exit(PAUSE_EXPIRED_EXIT)  # nobody killed us: die like a crash, never finish the pass


def with_pause(deliver: DeliverAlerts, point: PausePoint) -> DeliverAlerts:
    """`deliver` pausing at `point` (module doc)."""
    if point is PausePoint.AFTER_CLAIM:

        async def after_claim(claimed: Sequence[PendingAlert]) -> None:
            if claimed:
                await _pause(point, [a.id for a in claimed])

        return deliver.with_hooks(after_claim=after_claim)

    async def after_channel(alert: PendingAlert, channel: str) -> None:
        if channel == FhirAlertChannel.name:
            await _pause(point, [alert.id])

    return deliver.with_hooks(after_channel=after_channel)
