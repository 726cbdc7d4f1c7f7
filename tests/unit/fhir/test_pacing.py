"""WritePacer: fewer patients written at once after conflicts and throttling, slowly more again."""

from __future__ import annotations

import anyio
import pytest

from service.adapters.fhir.pacing import WritePacer


def test_each_conflict_halves_the_limit_down_to_one() -> None:
    pacer = WritePacer(8)
    for expected in (4, 2, 1, 1):
        pacer.slow_down("conflict")
        assert pacer.limit == expected
    assert pacer.lowest == 1


async def test_the_limit_grows_by_one_after_twice_the_ceiling_of_clean_writes() -> None:
    pacer = WritePacer(4)
    pacer.slow_down("throttled")
    assert pacer.limit == 2
    for _ in range(7):
        await pacer.succeeded()
    assert pacer.limit == 2  # 7 clean writes: not yet
    await pacer.succeeded()
    assert pacer.limit == 3  # the 8th (2 x 4)
    pacer.slow_down("conflict")  # a conflict restarts the count
    for _ in range(7):
        await pacer.succeeded()
    assert pacer.limit == 1


async def test_the_limit_never_passes_the_configured_concurrency() -> None:
    pacer = WritePacer(2)
    for _ in range(20):
        await pacer.succeeded()
    assert pacer.limit == 2


async def test_no_more_writes_at_once_than_the_limit() -> None:
    pacer = WritePacer(4)
    pacer.slow_down("conflict")  # 2
    active, most = 0, 0

    async def write() -> None:
        nonlocal active, most
        async with pacer.slot():
            active += 1
            most = max(most, active)
            await anyio.sleep(0.01)
            active -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(write)
    assert most == 2


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WritePacer(0)
