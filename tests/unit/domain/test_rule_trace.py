"""`RuleTrace.of` renders its facts lazily but behaves as if they had been rendered at once."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import date
from decimal import Decimal

import pytest

from service.domain.results import Response, RuleTrace


def test_lazy_facts_render_as_str_of_each_value_in_order() -> None:
    trace = RuleTrace.of("recist1.1/target/pd", nadir_mm=Decimal("40.0"), day=date(2024, 3, 1), r=Response.PD)
    assert trace.facts == (("nadir_mm", "40.0"), ("day", "2024-03-01"), ("r", "PD"))


def test_a_lazy_trace_equals_and_hashes_as_the_eagerly_built_one() -> None:
    lazy = RuleTrace.of("x", a=Decimal("1.50"), b=None)
    eager = RuleTrace("x", (("a", "1.50"), ("b", "None")))
    assert lazy == eager
    assert hash(lazy) == hash(eager)
    assert repr(lazy) == repr(eager)
    # Decimal("1.5") == Decimal("1.50"), but the rendered facts differ, so the traces do too.
    assert RuleTrace.of("x", a=Decimal("1.5"), b=None) != eager


def test_fields_copy_and_pickle_see_rule_and_rendered_facts_only() -> None:
    # `adapters/persistence/summary.py` stores traces through `dataclasses.fields`.
    trace = RuleTrace.of("lesion/stable", current_mm=Decimal(12))
    assert [f.name for f in dataclasses.fields(trace)] == ["rule", "facts"]
    assert dataclasses.asdict(trace) == {"rule": "lesion/stable", "facts": (("current_mm", "12"),)}
    assert copy.deepcopy(trace) == trace
    assert pickle.loads(pickle.dumps(trace)) == trace  # noqa: S301 - our own bytes
    assert RuleTrace("t") == RuleTrace.of("t")


def test_a_trace_is_frozen() -> None:
    trace = RuleTrace.of("x", a=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.rule = "y"  # type: ignore[misc]
