"""Hypothesis profiles for the domain tests: derandomised and small when CI is set, long on request."""

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
# The long run of the properties (docs/rules/README.md): HYPOTHESIS_PROFILE=long, randomised.
settings.register_profile(
    "domain-long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
if os.environ.get("HYPOTHESIS_PROFILE") == "long":
    settings.load_profile("domain-long")
else:
    settings.load_profile("domain-ci" if os.environ.get("CI") else "domain-dev")
