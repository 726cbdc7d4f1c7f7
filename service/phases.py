"""`PhaseTimer`: how long each phase of a command took, printed as one line for the operator.

Used by `oncoresponse assess` (start-up, read, assess, write) and the demo (FHIR server, load,
syncs, checks), so that a slow run shows where its time went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class PhaseTimer:
    started: float = field(default_factory=time.perf_counter)
    last: float = -1.0
    phases: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.last < 0:
            self.last = self.started

    def done(self, phase: str) -> None:
        """The phase `phase` ended now (it began when the previous one ended)."""
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + (now - self.last)
        self.last = now

    def line(self) -> str:
        parts = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in self.phases.items())
        return f"phases: {parts}; total {(self.last - self.started) * 1000:.0f} ms"
