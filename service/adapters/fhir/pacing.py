"""How many patients are written to the FHIR server at once, adapted to the server's answers.

A server that executes a transaction entry by entry answers concurrent writes with 409
serialisation conflicts; a rate-limited server answers 429. Both mean "fewer at once": the
limit is halved on each such answer (down to one) and grows back by one after twice the
configured concurrency of clean writes in a row (additive increase, multiplicative decrease, as
in TCP congestion control), never above the configured concurrency. The slot is held for one
attempt, so a patient written again after a conflict waits for the lowered limit. The lowest
limit reached is kept for the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import structlog

__all__ = ["WritePacer"]

log = structlog.get_logger(__name__)


class WritePacer:
    """A concurrency limit for patient writes that halves on conflicts and throttling (module doc)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the write concurrency must be at least 1")
        self.ceiling = limit
        self.limit = limit
        self.lowest = limit
        self._active = 0
        self._clean = 0
        self._changed = anyio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `limit` write slots for the block."""
        async with self._changed:
            while self._active >= self.limit:
                await self._changed.wait()
            self._active += 1
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._active -= 1
                    self._changed.notify_all()

    def slow_down(self, reason: str) -> None:
        """A 409 serialisation conflict or a throttling answer: halve the limit (at least 1)."""
        self._clean = 0
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            log.info("fhir.write_concurrency_lowered", reason=reason, limit=self.limit)

    async def succeeded(self) -> None:
        """A patient written without conflict: after 2 x ceiling of them in a row, one more slot."""
        self._clean += 1
        if self._clean >= 2 * self.ceiling and self.limit < self.ceiling:
            self._clean = 0
            async with self._changed:
                self.limit += 1
                self._changed.notify_all()
