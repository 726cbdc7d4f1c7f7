"""Cheap construction of frozen, slotted dataclasses (the engine's cost per patient).

Why: the engine builds dozens of frozen dataclass instances per patient (a `LesionResult` per lesion
and timepoint, the timepoint results, the view's timepoints and lesions). The `__init__` that
`dataclass(frozen=True)` generates cannot use plain attribute stores (its own `__setattr__` refuses
them) and stores each field with `object.__setattr__(self, name, value)`: a global lookup, a
descriptor search by name and a C call per field. For the 11 fields of a `LesionResult` that is
about 3.5 times the cost of the stand-in below, and was the largest single cost of the engine's
per-lesion results.

How: `fast_constructor(cls)` returns a stand-in for `cls(...)`: a private twin class with exactly
the slots of `cls` and a plain `__init__` (its stores are specialised by the interpreter) whose last
step re-labels the new object as `cls` by assigning `__class__`. CPython allows that assignment
between classes of identical layout (same base, same slots) and checks it at every call. What comes
out is an ordinary instance of `cls`, built with the same signature and defaults: frozen, and
equal, hashed, printed, pickled and copied exactly as one built by `cls(...)`.

Limits, checked when the constructor is made: `cls` must be a `dataclass(frozen=True, slots=True)`
derived from `object`, whose every field is a positional `__init__` parameter without a default
factory, and without `__post_init__` (the twin does not run it).
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")


def fast_constructor(cls: Callable[P, T]) -> Callable[P, T]:
    """A callable with the signature of `cls(...)` that builds the same frozen instance, cheaper.

    Typed as `cls` itself (`Callable[P, T]`), so calls are checked against the dataclass's own
    `__init__`. Positional calls are the cheapest (keyword matching costs about as much again).
    """
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    slots = cls.__dict__.get("__slots__")
    frozen: bool = getattr(cls, "__dataclass_params__").frozen  # noqa: B009 - not in the typeshed stub
    # Derived from `object` only, with slots and no `__dict__`: the twin then has the same layout.
    if not frozen or slots is None or cls.__bases__ != (object,):
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots, derived from object")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__, which the fast constructor would skip")
    fields = dataclasses.fields(cls)
    defaults: dict[str, Any] = {}
    parameters: list[str] = []
    for f in fields:
        if (
            not f.init
            or f.kw_only
            or f.default_factory is not dataclasses.MISSING
            or keyword.iskeyword(f.name)
            or f.name in ("self", "_cls")  # the names the generated code uses itself
            or f.name.startswith("_default_")
        ):
            raise TypeError(f"{cls.__name__}.{f.name} cannot be set by the fast constructor")
        if f.default is dataclasses.MISSING:
            parameters.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
    if {f.name for f in fields} != set(slots):  # e.g. a `__weakref__` slot
        raise TypeError(f"{cls.__name__} has slots that are not fields")
    # The same source shape as the dataclass's own generated __init__, with plain stores.
    stores = "".join(f"\n    self.{f.name} = {f.name}" for f in fields)
    source = f"def __init__(self, {', '.join(parameters)}):{stores}\n    self.__class__ = _cls\n"
    namespace: dict[str, Any] = {"_cls": cls, **defaults}
    exec(source, namespace)  # noqa: S102 - source built above from the dataclass's field names only
    twin = type(
        f"_{cls.__name__}Builder",
        (),
        {"__slots__": tuple(slots), "__init__": namespace["__init__"], "__module__": cls.__module__},
    )
    twin.__qualname__ = f"fast_constructor({cls.__qualname__})"
    return cast("Callable[P, T]", twin)
