"""Profile checks driven by the generated StructureDefinitions in `fhir_profiles/package/`.

`check(resource)` checks a resource dict against the oncoresponse profile(s) it claims in
`meta.profile` (or against `profile=` when given, e.g. for inbound BodyStructures that claim
nothing). It reads only the profiles' differentials, the package's ValueSets and CodeSystems,
and is plain-dict code (no fhir.resources): fast enough for thousands of resources in tests.

What is checked, per differential element:

- cardinality (`min`/`max`) of each element, counted per instance of its parent; of each
  component or extension slice, counted over the sliced element;
- `fixed[x]` (exact) and `pattern[x]` (subset) values, e.g. the fixed `Observation.code`, the
  identifier system and the UCUM unit of a Quantity slice;
- allowed types of choice elements (`value[x]`, `effective[x]`) and the resource type of
  relative or absolute `Reference`s (`urn:uuid:` and contained references are not resolved);
- required bindings (`status`, `value[x]`, slice values, extension values), expanded from the
  package's ValueSets (whole code systems or enumerated codes);
- `minValueInteger`;
- the profiles' invariants, by key: each `constraint.key` has a Python twin in `_INVARIANTS`
  (the FHIRPath `expression` in the StructureDefinition is for other validators; this module
  does not evaluate FHIRPath);
- the oncoresponse extensions used (url-sliced), against their own StructureDefinitions.

Profiles of others that we claim (`FOREIGN_PROFILES`: mCODE CancerDiseaseStatus) are accepted
by name and not checked here: their publisher's differential is not in our package, and
tests/unit/fhir/test_cancer_disease_status.py checks every one we emit against mCODE STU4's.

Not checked: base FHIR R4 rules (use `validate_r4` for those), terminology outside the package,
slicing other than by `code` pattern or extension `url`.

Decision: the package is located at `<repository>/fhir_profiles/package` (this file's
`parents[3]`); a missing package raises `PackageNotFound` on first use, naming the path and the
command that generates it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Final

from service.adapters.fhir import codes

__all__ = [
    "FOREIGN_PROFILES",
    "PACKAGE_DIR",
    "SUPPORTED_INVARIANTS",
    "ConformanceIssue",
    "PackageNotFound",
    "Profiles",
    "check",
    "load_profiles",
    "validate_r4",
]

JsonDict = dict[str, Any]

PACKAGE_DIR: Final = Path(__file__).resolve().parents[3] / "fhir_profiles" / "package"
_FHIR_SD: Final = "http://hl7.org/fhir/StructureDefinition/"


class PackageNotFound(RuntimeError):
    """The generated FHIR package is not where the checker looks for it."""


@dataclass(frozen=True, slots=True)
class ConformanceIssue:
    """One way a resource departs from a profile; `element` is the ElementDefinition id."""

    element: str
    message: str
    profile: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.element}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Rule:
    element: str  # ElementDefinition.id, used in messages
    steps: tuple[str, ...]  # path below the context node (resource, slice instance or extension)
    min: int | None
    max: int | None  # None: unbounded or not constrained
    types: tuple[str, ...]
    target_types: tuple[str, ...]
    fixed: tuple[str, Any] | None
    pattern: tuple[str, Any] | None
    binding: str | None
    min_integer: int | None
    constraints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Slice:
    name: str
    element: str
    min: int
    max: int | None
    discriminator: tuple[str, Any]  # ("pattern", CodeableConcept) on `code` | ("url", str)
    rules: tuple[_Rule, ...]


@dataclass(frozen=True, slots=True)
class _Slicing:
    element: str
    steps: tuple[str, ...]
    slices: tuple[_Slice, ...]


@dataclass(frozen=True, slots=True)
class _Profile:
    url: str
    type: str
    rules: tuple[_Rule, ...]
    slicings: tuple[_Slicing, ...]


@dataclass(frozen=True, slots=True)
class Profiles:
    """The compiled package: profiles and extensions by canonical URL, value set expansions."""

    profiles: Mapping[str, _Profile]
    extensions: Mapping[str, _Profile]
    value_sets: Mapping[str, frozenset[tuple[str, str]]]
    invariants: frozenset[str]


# --- compiling the package ---------------------------------------------------------------------------
def _max(value: str | None) -> int | None:
    return None if value in (None, "*") else int(str(value))


def _prefixed(element: JsonDict, prefix: str) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(prefix) and key != prefix:
            return key, value
    return None


def _rule(element: JsonDict, steps: tuple[str, ...], type_of: Callable[[str], str]) -> _Rule:
    types = tuple(t["code"] for t in element.get("type", ()))
    targets = tuple(type_of(p) for t in element.get("type", ()) for p in t.get("targetProfile", ()))
    binding = element.get("binding", {})
    return _Rule(
        element=element["id"],
        steps=steps,
        min=element.get("min"),
        max=_max(element.get("max")),
        types=types,
        target_types=targets,
        fixed=_prefixed(element, "fixed"),
        pattern=_prefixed(element, "pattern"),
        binding=binding.get("valueSet") if binding.get("strength") == "required" else None,
        min_integer=element.get("minValueInteger"),
        constraints=tuple(c["key"] for c in element.get("constraint", ())),
    )


def _compile(sd: JsonDict, type_of: Callable[[str], str]) -> _Profile:
    rules: list[_Rule] = []
    slicings: dict[str, tuple[str, tuple[str, ...]]] = {}
    slice_roots: dict[str, JsonDict] = {}
    slice_children: dict[str, list[JsonDict]] = {}
    for element in sd["differential"]["element"]:
        parts = element["id"].split(".")[1:]
        sliced = [i for i, part in enumerate(parts) if ":" in part]
        if not sliced:
            if "slicing" in element:
                slicings[element["id"]] = (element["slicing"]["discriminator"][0]["path"], tuple(parts))
            rules.append(_rule(element, tuple(parts), type_of))
            continue
        at = sliced[0]
        slice_id = ".".join([element["id"].split(".")[0], *parts[: at + 1]])
        if at == len(parts) - 1:
            slice_roots[slice_id] = element
        else:
            slice_children.setdefault(slice_id, []).append(element)
    compiled: dict[str, list[_Slice]] = {}
    for slice_id, root in slice_roots.items():
        base_id = slice_id.rsplit(":", 1)[0]
        children = slice_children.get(slice_id, [])
        depth = len(slice_id.split(".")) - 1
        child_rules = tuple(_rule(c, tuple(c["id"].split(".")[1 + depth :]), type_of) for c in children)
        discriminator_path = slicings[base_id][0]
        discriminator: tuple[str, Any]
        if discriminator_path == "url":
            discriminator = ("url", root["type"][0]["profile"][0])
        else:
            code = next(c for c in children if c["id"] == f"{slice_id}.{discriminator_path}")
            discriminator = ("pattern", _prefixed(code, "pattern") or _prefixed(code, "fixed"))
        compiled.setdefault(base_id, []).append(
            _Slice(
                name=root["sliceName"],
                element=slice_id,
                min=root.get("min", 0),
                max=_max(root.get("max")),
                discriminator=discriminator,
                rules=child_rules,
            )
        )
    return _Profile(
        url=sd["url"],
        type=sd["type"],
        rules=tuple(rules),
        slicings=tuple(
            _Slicing(element=base_id, steps=slicings[base_id][1], slices=tuple(items))
            for base_id, items in compiled.items()
        ),
    )


def _expand(vs: JsonDict, code_systems: Mapping[str, JsonDict]) -> frozenset[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for include in vs.get("compose", {}).get("include", ()):
        system = include["system"]
        if "concept" in include:
            out.update((system, c["code"]) for c in include["concept"])
        elif system in code_systems:
            out.update((system, c["code"]) for c in code_systems[system].get("concept", ()))
        else:
            raise ValueError(f"ValueSet {vs['url']} includes all of {system}, which is not in the package")
    return frozenset(out)


def load_profiles(package_dir: Path = PACKAGE_DIR) -> Profiles:
    """Compile every StructureDefinition, ValueSet and CodeSystem of a generated package."""
    if not package_dir.is_dir() or not any(package_dir.glob("StructureDefinition-*.json")):
        raise PackageNotFound(
            f"FHIR package not found at {package_dir}; generate it with "
            "`uv run python fhir_profiles/generate.py` from the repository root"
        )

    def load(prefix: str) -> list[JsonDict]:
        return [
            json.loads(p.read_text(encoding="utf-8")) for p in sorted(package_dir.glob(f"{prefix}-*.json"))
        ]

    sds = load("StructureDefinition")
    types_by_url = {sd["url"]: sd["type"] for sd in sds}

    def type_of(url: str) -> str:
        return url.removeprefix(_FHIR_SD) if url.startswith(_FHIR_SD) else types_by_url[url]

    code_systems = {cs["url"]: cs for cs in load("CodeSystem")}
    profiles: dict[str, _Profile] = {}
    extensions: dict[str, _Profile] = {}
    invariants: set[str] = set()
    for sd in sds:
        compiled = _compile(sd, type_of)
        (extensions if sd["type"] == "Extension" else profiles)[sd["url"]] = compiled
        invariants.update(c["key"] for e in sd["differential"]["element"] for c in e.get("constraint", ()))
    return Profiles(
        profiles=profiles,
        extensions=extensions,
        value_sets={vs["url"]: _expand(vs, code_systems) for vs in load("ValueSet")},
        invariants=frozenset(invariants),
    )


@cache
def _package() -> Profiles:
    return load_profiles()


# --- walking resources -------------------------------------------------------------------------------
def _is_choice_key(key: str, stem: str) -> bool:
    return key.startswith(stem) and len(key) > len(stem) and key[len(stem)].isupper()


def _children(node: Any, step: str) -> Iterator[tuple[str, Any]]:
    """(concrete element name, value) of `step` in `node`; lists are flattened."""
    if not isinstance(node, dict):
        return
    if step.endswith("[x]"):
        stem = step[:-3]
        items = [(k, v) for k, v in node.items() if _is_choice_key(k, stem)]
    else:
        items = [(step, node[step])] if step in node else []
    for key, value in items:
        if isinstance(value, list):
            for item in value:
                yield key, item
        else:
            yield key, value


def _nodes(root: Any, steps: tuple[str, ...]) -> list[tuple[str, Any]]:
    current: list[tuple[str, Any]] = [("", root)]
    for step in steps:
        current = [child for _, node in current for child in _children(node, step)]
    return current


def _type_of_key(key: str, step: str) -> str:
    if not step.endswith("[x]"):
        return ""
    suffix = key[len(step) - 3 :]
    return (
        suffix
        if suffix[:1].isupper() and suffix not in _PRIMITIVE_SUFFIXES
        else suffix[:1].lower() + suffix[1:]
    )


_PRIMITIVE_SUFFIXES: Final = frozenset(
    {
        "Boolean",
        "Integer",
        "String",
        "DateTime",
        "Instant",
        "Time",
        "Decimal",
        "Uri",
        "Url",
        "Canonical",
        "Code",
        "Date",
        "PositiveInt",
        "UnsignedInt",
        "Id",
        "Oid",
        "Uuid",
        "Markdown",
        "Base64Binary",
    }
)


def _matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_matches(item, p) for item in value) for p in pattern)
    return bool(value == pattern)


def _codings(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("", value)]
    if not isinstance(value, dict):
        return []
    items = value.get("coding", [value] if "code" in value else [])
    return [(c.get("system", ""), c.get("code", "")) for c in items if isinstance(c, dict)]


def _describe(value: Any) -> str:
    found = _codings(value)
    return ", ".join(f"{s}#{c}" if s else c for s, c in found) or "no code"


def _reference_type(reference: str) -> str | None:
    if reference.startswith(("urn:", "#")):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else None


# --- invariants (Python twins of the profiles' FHIRPath constraints) ------------------------------
def _component(resource: JsonDict, code: str) -> JsonDict | None:
    for comp in resource.get("component", ()):
        if (codes.CS_ONCORESPONSE, code) in _codings(comp.get("code")):
            return comp  # type: ignore[no-any-return]
    return None


def _has_value(node: JsonDict) -> bool:
    return any(_is_choice_key(k, "value") for k in node)


def _component_value(node: JsonDict) -> bool:
    """or-comp-1: a value or a dataAbsentReason, not both."""
    return _has_value(node) != ("dataAbsentReason" in node)


def _bor_system(node: JsonDict) -> bool:
    """or-bor-1: the value's code system matches the criterion of Observation.code."""
    expected = {
        codes.CODE_RECIST11_BOR: codes.CS_RECIST_RESPONSE,
        codes.CODE_IRECIST_BOR: codes.CS_IRECIST_RESPONSE,
    }
    systems = {s for s, _ in _codings(node.get("valueCodeableConcept"))}
    for system, code in _codings(node.get("code")):
        if system == codes.CS_ONCORESPONSE and code in expected and expected[code] not in systems:
            return False
    return True


def _dr_trigger(node: JsonDict) -> bool:
    """or-atyp-1: a DR names its trigger."""
    if (codes.CS_ATYPICAL_RESPONSE, "DR") not in _codings(node.get("valueCodeableConcept")):
        return True
    comp = _component(node, codes.COMP_DR_TRIGGER)
    return comp is not None and _has_value(comp)


def _group_atypical(node: JsonDict) -> bool:
    """or-rg-1: `atypical` is true exactly for DR and PsPD."""
    comp = _component(node, codes.COMP_ATYPICAL)
    if comp is None or "valueBoolean" not in comp:
        return True  # the slice's cardinality rule reports a missing value
    group = {c for s, c in _codings(node.get("valueCodeableConcept")) if s == codes.CS_RESPONSE_GROUP}
    return bool(comp["valueBoolean"]) == bool(group & {"DR", "PsPD"})


_INVARIANTS: Final[dict[str, tuple[Callable[[JsonDict], bool], str]]] = {
    "or-comp-1": (_component_value, "needs a value[x] or a dataAbsentReason, and not both"),
    "or-bor-1": (_bor_system, "value must come from the response code system named by Observation.code"),
    "or-atyp-1": (_dr_trigger, "a dissociated response (DR) needs a dr-trigger component with a value"),
    "or-rg-1": (_group_atypical, "component atypical must be true exactly for DR and PsPD"),
}


SUPPORTED_INVARIANTS: Final = frozenset(_INVARIANTS)


# --- checking -----------------------------------------------------------------------------------------
class _Checker:
    def __init__(self, package: Profiles, profile_url: str) -> None:
        self.package = package
        self.profile_url = profile_url
        self.issues: list[ConformanceIssue] = []

    def issue(self, element: str, message: str) -> None:
        self.issues.append(ConformanceIssue(element, message, self.profile_url))

    def rules(self, context: Any, rules: tuple[_Rule, ...]) -> None:
        for rule in rules:
            self.rule(context, rule)

    def rule(self, context: Any, rule: _Rule) -> None:
        element = rule.element
        if not rule.steps:
            self.constraints(context, rule, element)
            return
        parents = _nodes(context, rule.steps[:-1])
        last = rule.steps[-1]
        values: list[tuple[str, Any]] = []
        for _, parent in parents:
            found = list(_children(parent, last))
            values.extend(found)
            if rule.min is not None and len(found) < rule.min:
                self.issue(element, f"minimum cardinality {rule.min} not met (found {len(found)})")
            if rule.max is not None and len(found) > rule.max:
                self.issue(element, f"maximum cardinality {rule.max} exceeded (found {len(found)})")
        for key, value in values:
            self.value(element, rule, key, last, value)

    def value(self, element: str, rule: _Rule, key: str, step: str, value: Any) -> None:
        concrete = _type_of_key(key, step)
        if concrete and rule.types and concrete not in rule.types:
            allowed = ", ".join(rule.types)
            self.issue(element, f"{key} has type {concrete}; allowed: {allowed}")
            return
        if rule.fixed and value != rule.fixed[1]:
            self.issue(element, f"value {value!r} differs from the fixed value {rule.fixed[1]!r}")
        if rule.pattern:
            pattern_type = rule.pattern[0].removeprefix("pattern")
            applies = not concrete or concrete == pattern_type
            if applies and not _matches(value, rule.pattern[1]):
                self.issue(
                    element,
                    f"{_describe(value) if _codings(value) else value!r} does not match "
                    f"the required pattern {_describe(rule.pattern[1])}",
                )
        if rule.binding:
            allowed_codes = self.package.value_sets.get(rule.binding, frozenset())
            found = _codings(value)
            if isinstance(value, str):
                ok = any(code == value for _, code in allowed_codes)
            else:
                ok = any(c in allowed_codes for c in found)
            if not ok:
                self.issue(element, f"{_describe(value)} is not in the required ValueSet {rule.binding}")
        if rule.min_integer is not None and isinstance(value, int) and value < rule.min_integer:
            self.issue(element, f"{value} is below the minimum {rule.min_integer}")
        if rule.target_types and isinstance(value, dict) and isinstance(value.get("reference"), str):
            target = _reference_type(value["reference"])
            if target is not None and target not in rule.target_types:
                self.issue(element, f"reference to {target}; allowed: {', '.join(rule.target_types)}")
        if isinstance(value, dict):
            self.constraints(value, rule, element)

    def constraints(self, node: Any, rule: _Rule, element: str) -> None:
        for key in rule.constraints:
            predicate, message = _INVARIANTS.get(key, (None, ""))
            if predicate is None:
                self.issue(element, f"invariant {key} has no implementation in the checker")
            elif isinstance(node, dict) and not predicate(node):
                self.issue(element, f"{key}: {message}")

    def slicing(self, resource: JsonDict, slicing: _Slicing) -> None:
        parents = _nodes(resource, slicing.steps[:-1])
        for _, parent in parents:
            items = [v for _, v in _children(parent, slicing.steps[-1])]
            for s in slicing.slices:
                matched = [item for item in items if self.discriminates(item, s)]
                label = f"{slicing.element}:{s.name}"
                if len(matched) < s.min:
                    self.issue(
                        label,
                        f"required slice missing ({_slice_key(s)}; minimum {s.min}, found {len(matched)})",
                    )
                if s.max is not None and len(matched) > s.max:
                    self.issue(
                        label, f"slice appears {len(matched)} times ({_slice_key(s)}); maximum {s.max}"
                    )
                for item in matched:
                    self.rules(item, s.rules)
                    if s.discriminator[0] == "url":
                        self.extension(item, s.discriminator[1], label)

    def discriminates(self, item: Any, s: _Slice) -> bool:
        kind, value = s.discriminator
        if kind == "url":
            return isinstance(item, dict) and item.get("url") == value
        return isinstance(item, dict) and _matches(item.get("code"), value[1])

    def extension(self, item: JsonDict, url: str, label: str) -> None:
        """Check an extension instance against its StructureDefinition, named under `label`."""
        ext = self.package.extensions.get(url)
        if ext is not None:
            for rule in ext.rules:
                self.rule(item, replace(rule, element=label + rule.element.removeprefix("Extension")))


def _slice_key(s: _Slice) -> str:
    kind, value = s.discriminator
    return f"url {value}" if kind == "url" else f"code {_describe(value[1])}"


# Profiles published by others that our outputs claim (see module doc).
FOREIGN_PROFILES: Final = frozenset({codes.MCODE_CANCER_DISEASE_STATUS})


def check(resource: Mapping[str, Any], profile: str | None = None) -> list[ConformanceIssue]:
    """Issues of `resource` against `profile`, or against every package profile in its meta.profile.

    An empty list means the resource conforms to what this module checks (see module doc).
    """
    package = _package()
    data = dict(resource)
    claimed = [p.split("|")[0] for p in data.get("meta", {}).get("profile", ()) if isinstance(p, str)]
    rtype = data.get("resourceType", "?")
    targets = [profile] if profile else [p for p in claimed if p in package.profiles]
    if not targets and claimed and FOREIGN_PROFILES.issuperset(claimed):
        return []
    if not targets:
        reason = "missing" if not claimed else f"names no profile of this package ({', '.join(claimed)})"
        return [ConformanceIssue(f"{rtype}.meta.profile", f"{reason}; cannot tell which profile applies")]
    issues: list[ConformanceIssue] = []
    for url in targets:
        compiled = package.profiles.get(url)
        if compiled is None:
            issues.append(ConformanceIssue(f"{rtype}.meta.profile", f"unknown profile {url}", url))
            continue
        checker = _Checker(package, url)
        if rtype != compiled.type:
            checker.issue(rtype, f"resourceType {rtype} does not match profile type {compiled.type}")
        else:
            checker.rules(data, compiled.rules)
            for slicing in compiled.slicings:
                checker.slicing(data, slicing)
        issues.extend(checker.issues)
    return issues


def validate_r4(resource: Mapping[str, Any]) -> Any:
    """Validate with the fhir.resources R4B model of the resource type (`model_validate`).

    Raises `pydantic.ValidationError` when the resource is not valid FHIR, `KeyError` for an
    unknown resource type. Imported lazily: `check` never needs fhir.resources.
    """
    from service.adapters.fhir.resources import validate_resource  # lazy: slow, only tests need it

    return validate_resource(dict(resource))
