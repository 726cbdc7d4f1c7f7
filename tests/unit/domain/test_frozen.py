"""`service.domain.frozen.fast_constructor` builds the same frozen dataclass instances as the class itself."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from service.domain.frozen import fast_constructor
from service.domain.results import LesionResult, LesionStatus, RuleTrace


def _args() -> tuple[Any, ...]:
    return ("L1", 1, date(2024, 3, 1), LesionStatus.STABLE, Decimal("12.5"), None, None, True, RuleTrace("r"))


def test_builds_the_same_frozen_instance_as_the_dataclass() -> None:
    fast = fast_constructor(LesionResult)(*_args())
    plain = LesionResult(*_args())
    assert type(fast) is LesionResult
    assert fast == plain
    assert hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert pickle.loads(pickle.dumps(fast)) == plain  # noqa: S301 - our own bytes
    assert copy.deepcopy(fast) == plain
    assert dataclasses.replace(fast, lesion_id="L2").lesion_id == "L2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.lesion_id = "x"  # type: ignore[misc]


def test_refuses_what_it_cannot_build_faithfully() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None: ...

    for cls in (NoSlots, PostInit):
        with pytest.raises(TypeError):
            fast_constructor(cls)
