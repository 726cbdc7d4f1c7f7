"""The cell-key perturbation (ABS TableBuilder method; docs/privacy/disclosure-control.md).

Facts of the design checked here: the noise is a pure function of the count and the cell key;
over the 256 cell keys, counts of 4 and more get -3..+3 with weights 1 2 3 4 3 2 1 (16, 32, 48,
64, 48, 32 and 16 keys); zero stays zero; counts of 1-3 never become 0 or negative; a cell key is
the sum of its patients' record keys, so it does not depend on the order or on how the patients
were selected.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from service.analytics.privacy import (
    PORTAL_PERTURBATION,
    RECORD_KEY_RANGE,
    CellKeyPerturbation,
    cell_key,
    record_key,
)
from service.analytics.reports import response_report

from .frames import result, table


def _noise_counts(count: int) -> Counter[int]:
    return Counter(PORTAL_PERTURBATION.noise(count, k) for k in range(RECORD_KEY_RANGE))


@pytest.mark.parametrize("count", [4, 5, 177, 10_000])
def test_large_counts_get_the_triangular_table_over_the_key_range(count: int) -> None:
    assert _noise_counts(count) == {-3: 16, -2: 32, -1: 48, 0: 64, 1: 48, 2: 32, 3: 16}


def test_mean_noise_is_zero_and_variance_two_and_a_half() -> None:
    noises = [PORTAL_PERTURBATION.noise(50, k) for k in range(RECORD_KEY_RANGE)]
    assert sum(noises) == 0
    assert sum(d * d for d in noises) / RECORD_KEY_RANGE == 2.5


@pytest.mark.parametrize(("count", "lowest"), [(1, 0), (2, -1), (3, -2), (4, -3)])
def test_small_counts_stay_positive(count: int, lowest: int) -> None:
    """Just below, at and above max_noise: the support starts at 1 - count until it reaches -3."""
    noises = _noise_counts(count)
    assert min(noises) == lowest
    assert max(noises) == 3
    assert all(count + d >= 1 for d in noises)


def test_zero_is_never_perturbed() -> None:
    assert {PORTAL_PERTURBATION.perturb(0, k) for k in range(RECORD_KEY_RANGE)} == {0}


def test_a_cell_key_outside_the_range_is_a_bug() -> None:
    with pytest.raises(ValueError, match="outside"):
        CellKeyPerturbation().noise(5, RECORD_KEY_RANGE)


def test_record_keys_are_fixed_per_patient_and_secret() -> None:
    assert record_key("pat-1", "salt-a") == record_key("pat-1", "salt-a")
    keys_a = [record_key(f"pat-{i}", "salt-a") for i in range(400)]
    keys_b = [record_key(f"pat-{i}", "salt-b") for i in range(400)]
    assert keys_a != keys_b  # another secret, other keys
    assert all(0 <= k < RECORD_KEY_RANGE for k in keys_a)
    assert len(set(keys_a)) > 200  # spread over the range, not a handful of values


def test_cell_key_depends_only_on_the_patients() -> None:
    keys = [record_key(f"pat-{i}", "salt") for i in range(30)]
    assert cell_key(keys) == cell_key(list(reversed(keys))) == sum(keys) % RECORD_KEY_RANGE


def test_response_report_perturbs_each_count_by_its_patients_keys() -> None:
    """40 SD patients with record keys 0..39: the SD cell key is 780 % 256 = 12, which the table
    maps to -3 (keys 0-15); the 5 CR-PR patients with keys 40..44 (sum 210) get +2 (keys 208-239)."""
    frame = table(
        [result(group="SD", first="SD") for _ in range(40)]
        + [result(group="CR-PR", first="PR") for _ in range(5)]
    )
    frame["record_key"] = pd.array(range(45), dtype="int64")
    report = response_report(frame, 1, perturbation=PORTAL_PERTURBATION)
    groups = {c.label: c.count for c in report.groups}
    assert groups["SD"] == 40 - 3
    assert groups["CR-PR"] == 5 + 2
    assert groups["PD"] == 0
    exact = response_report(frame, 1)
    assert {c.label: c.count for c in exact.groups}["SD"] == 40
