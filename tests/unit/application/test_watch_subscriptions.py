"""WatchSubscriptions: notifications are relied on only while every Subscription of ours is active.

FHIR R4 Subscription.status: a server sets `error` when it cannot deliver; notifications are then
lost, so the polling fallback must run until the Subscription is active again.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from service.application.errors import UpstreamUnavailable
from service.application.ports import SubscriptionState
from service.application.subscriptions import WatchSubscriptions
from service.observability import Metrics


class ServerRegistry:
    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.down = False
        self.ensured = 0

    async def ensure(self) -> Sequence[SubscriptionState]:
        self.ensured += 1
        return await self.states()

    async def states(self) -> Sequence[SubscriptionState]:
        if self.down:
            raise UpstreamUnavailable("server down")
        return [SubscriptionState(f"s{i}", "Observation?", s) for i, s in enumerate(self.statuses)]


async def test_all_active_means_no_poll_and_ready() -> None:
    watch = WatchSubscriptions(ServerRegistry("active", "active"))
    assert await watch.check() is True
    assert watch.summary == "ok"


async def test_one_subscription_in_error_is_reported_and_makes_the_fallback_poll() -> None:
    metrics = Metrics()
    watch = WatchSubscriptions(
        ServerRegistry("active", "error"),
        report=lambda states: metrics.report_subscriptions([s.status for s in states]),
    )
    assert await watch.check() is False
    assert watch.summary == "Subscription/s1 error"
    assert metrics.registry.get_sample_value("oncoresponse_subscriptions", {"status": "error"}) == 1
    assert metrics.registry.get_sample_value("oncoresponse_subscriptions", {"status": "active"}) == 1


async def test_none_registered_or_an_unreachable_server_is_not_active() -> None:
    assert await WatchSubscriptions(ServerRegistry()).check() is False
    registry = ServerRegistry("active")
    registry.down = True
    watch = WatchSubscriptions(registry)
    assert await watch.check() is False
    assert watch.summary == "unchecked (UpstreamUnavailable)"


async def test_run_polls_at_each_interval_only_while_not_all_active() -> None:
    registry = ServerRegistry("error")
    watch = WatchSubscriptions(registry)
    polls: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run, lambda: polls.append(1), 0.05)
        await anyio.sleep(0.18)
        in_error = len(polls)
        registry.statuses = ["active"]  # the server delivers again
        await anyio.sleep(0.1)
        polls.clear()
        await anyio.sleep(0.15)
        tg.cancel_scope.cancel()
    assert in_error >= 2
    assert polls == []
    assert registry.ensured >= 5  # checked at start and at every interval
