"""Keep the service's own FHIR Subscriptions in place, and poll while they cannot be relied on.

`WatchSubscriptions.run` (the app's background task group) registers or checks the service's
Subscriptions at start (`SubscriptionRegistry.ensure`), then every `interval_s` checks them
again, and asks the re-assessment for a `_lastUpdated` poll unless every one of them is
`active`: a Subscription the server set to `error` (our hook was down, or answered wrongly) loses
notifications, so the polling fallback covers for it until it is active again. `summary` feeds
`/readyz` and `report` the `/metrics` gauges. A check that fails (server unavailable) counts as
"not active": the poll runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import structlog

from service.application.ports import SubscriptionRegistry, SubscriptionState

__all__ = ["WatchSubscriptions"]

log = structlog.get_logger(__name__)


class WatchSubscriptions:
    def __init__(
        self,
        registry: SubscriptionRegistry,
        *,
        report: Callable[[Sequence[SubscriptionState]], None] | None = None,
    ) -> None:
        self._registry = registry
        self._report = report
        self.states: Sequence[SubscriptionState] = ()
        self.checked = False
        self.check_error: str | None = None

    @property
    def active(self) -> bool:
        """Every one of our Subscriptions is `active` (notifications can be relied on)."""
        return self.checked and bool(self.states) and all(s.status == "active" for s in self.states)

    @property
    def summary(self) -> str:
        """`ok`, or what is wrong (for `/readyz`; names Subscription ids and statuses only)."""
        if not self.checked:
            return f"unchecked ({self.check_error})" if self.check_error else "unchecked"
        if not self.states:
            return "none registered"
        wrong = [f"Subscription/{s.subscription_id} {s.status}" for s in self.states if s.status != "active"]
        return "ok" if not wrong else "; ".join(wrong)

    async def check(self) -> bool:
        """Register/check now; whether all are active."""
        try:
            self.states = await self._registry.ensure()
            self.checked, self.check_error = True, None
        except Exception as exc:  # an unavailable server: reported, the fallback polls
            self.checked, self.check_error = False, type(exc).__name__
            log.warning("subscriptions.check_failed", error=self.check_error)
            return False
        for state in self.states:
            if state.status == "error":
                log.warning("subscriptions.in_error", subscription_id=state.subscription_id)
        if self._report is not None:
            self._report(self.states)
        return self.active

    async def run(self, request_poll: Callable[[], None], interval_s: float) -> None:
        """Check at once, then every `interval_s` (0: only at start); poll while not all active."""
        await self.check()
        if interval_s <= 0:
            return
        while True:
            await anyio.sleep(interval_s)
            if not await self.check():
                request_poll()
