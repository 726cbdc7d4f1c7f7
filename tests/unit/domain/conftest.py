"""Hypothesis profiles for the domain tests: derandomised and small when CI is set."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "domain-ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("domain-dev", max_examples=40, deadline=None)
settings.load_profile("domain-ci" if os.environ.get("CI") else "domain-dev")
