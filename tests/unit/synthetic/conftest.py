from __future__ import annotations

import pytest

from service.synthetic import Cohort, mixed_cohort, nsclc_cohort, pan_tumour_cohort

PAN_SEED = 20241230  # Guan et al. published 30 December 2024
NSCLC_SEED = 80


@pytest.fixture(scope="session")
def pan() -> Cohort:
    return pan_tumour_cohort(PAN_SEED)


@pytest.fixture(scope="session")
def nsclc() -> Cohort:
    return nsclc_cohort(NSCLC_SEED)


@pytest.fixture(scope="session")
def mixed() -> Cohort:
    return mixed_cohort(120, seed=5)
