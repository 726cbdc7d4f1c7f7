"""What a FHIR server says it can do (its CapabilityStatement), reduced to what the reader uses.

The client reads `[base]/metadata` once (`FhirClient.server_capabilities`) and the source picks
its queries from it: `_include=Observation:focus` when the server lists it in
`rest.resource[Observation].searchInclude` (HAPI does), else the `BodyStructure?_id=` fallback
(sekmet-fhir 0.1.1 lists neither a `focus` parameter nor that include); Bulk Data kick-off only
where `$export` is listed.

Decisions where servers differ:
- `_id` and `_lastUpdated` are assumed on every listed type: they are common search parameters
  of the FHIR specification and many servers leave them out of their statements.
- A wildcard `searchInclude` of `*` is not taken as an offer of any particular include: it says
  "everything referenced", which would pull Practitioners and Encounters into every page.
- An unreadable or missing statement gives `ServerCapabilities.unknown()`: nothing optional is
  offered and the reader uses its portable queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

__all__ = ["ServerCapabilities", "parse_capabilities"]

ALWAYS_SEARCHABLE: Final = frozenset({"_id", "_lastUpdated"})


def _names(items: object, key: str) -> frozenset[str]:
    if not isinstance(items, list):
        return frozenset()
    return frozenset(i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str))


def _strings(items: object) -> frozenset[str]:
    if not isinstance(items, list):
        return frozenset()
    return frozenset(i for i in items if isinstance(i, str))


@dataclass(frozen=True, slots=True)
class ServerCapabilities:
    """Search parameters, includes and operations per resource type, as the server lists them."""

    types: frozenset[str] = frozenset()
    search_params: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    includes: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    revincludes: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    operations: frozenset[str] = frozenset()  # "$export", "Patient/$export", "Group/$export", ...
    known: bool = False

    @classmethod
    def unknown(cls) -> ServerCapabilities:
        return cls()

    def has_type(self, resource_type: str) -> bool:
        return resource_type in self.types

    def searchable(self, resource_type: str, param: str) -> bool:
        if resource_type not in self.types:
            return False
        return param in ALWAYS_SEARCHABLE or param in self.search_params.get(resource_type, frozenset())

    def offers_include(self, spec: str) -> bool:
        """`spec` like `Observation:focus` (or `Observation:focus:BodyStructure`)."""
        source = spec.split(":", 1)[0]
        offered = self.includes.get(source, frozenset())
        return spec in offered or ":".join(spec.split(":")[:2]) in offered

    def offers_revinclude(self, target_type: str, spec: str) -> bool:
        return spec in self.revincludes.get(target_type, frozenset())

    def offers_operation(self, name: str, resource_type: str | None = None) -> bool:
        key = f"{resource_type}/${name}" if resource_type else f"${name}"
        return key in self.operations


def parse_capabilities(statement: Any) -> ServerCapabilities:
    """The server capabilities of a CapabilityStatement dict; anything unusable -> `unknown()`."""
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        return ServerCapabilities.unknown()
    rests = statement.get("rest")
    server = (
        next(
            (r for r in rests if isinstance(r, dict) and r.get("mode") == "server"),
            None,
        )
        if isinstance(rests, list)
        else None
    )
    if server is None:
        return ServerCapabilities.unknown()
    types: set[str] = set()
    params: dict[str, frozenset[str]] = {}
    includes: dict[str, frozenset[str]] = {}
    revincludes: dict[str, frozenset[str]] = {}
    operations: set[str] = {f"${n}" for n in _names(server.get("operation"), "name")}
    resources = server.get("resource")
    for resource in resources if isinstance(resources, list) else []:
        if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
            continue
        rtype: str = resource["type"]
        types.add(rtype)
        params[rtype] = _names(resource.get("searchParam"), "name")
        includes[rtype] = _strings(resource.get("searchInclude")) - {"*"}
        revincludes[rtype] = _strings(resource.get("searchRevInclude"))
        operations.update(f"{rtype}/${n}" for n in _names(resource.get("operation"), "name"))
    return ServerCapabilities(
        types=frozenset(types),
        search_params=MappingProxyType(params),
        includes=MappingProxyType(includes),
        revincludes=MappingProxyType(revincludes),
        operations=frozenset(operations),
        known=True,
    )
