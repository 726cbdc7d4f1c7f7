"""Reference resolution inside a Bundle, as FHIR R4 defines it (docs/fhir/references.md).

A posted Bundle (`$assess`, `assess`) may name the same resource in many legal ways: relative
(`Patient/1`), absolute, `urn:uuid:`/`urn:oid:` full URLs whatever `resource.id` says, versioned
(`/_history/n`), contained (`#id`) or logical (`Reference.identifier`). `resolve_bundle` finds the
entry each reference means and gives every entry one local key `Type/id`; the resources handed on
are copies whose references to entries read `Type/id` (what `inbound` reads) and whose contained
BodyStructures and ImagingStudies are lifted out as resources of their own. What cannot be resolved
in an element the mapping reads is one data issue naming the reference; nothing is guessed.

`output_references` maps each local key back to the form the input used (its entry's `fullUrl`),
so the Observations answered by `$assess` point at the input's own resources
(`input_reference_forms`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from service.domain.results import DataIssue

__all__ = [
    "BundleEntry",
    "ResolvedBundle",
    "input_reference_forms",
    "local_key",
    "resolve_bundle",
]

JsonDict = dict[str, Any]

# Elements whose references the mapping reads: an unresolved one is reported.
READ_ELEMENTS: Final = frozenset({"subject", "patient", "focus", "derivedFrom", "medicationReference"})
# Types whose contained copies are lifted out (Medication stays contained: `inbound` reads it there).
LIFTED_CONTAINED: Final = frozenset({"BodyStructure", "ImagingStudy"})
# Types a logical reference (`Reference.identifier`) is matched against.
IDENTIFIED_TYPES: Final = frozenset({"Patient", "BodyStructure", "ImagingStudy"})
_HISTORY: Final = "/_history/"


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One usable entry: its local key, the form the input names it by, and the resource copy."""

    key: str
    full_url: str | None
    resource: JsonDict


@dataclass(slots=True)
class ResolvedBundle:
    """The entries with references resolved, the key -> input form map, and what went wrong."""

    entries: list[BundleEntry] = field(default_factory=list)
    output_references: dict[str, str] = field(default_factory=dict)
    issues: list[DataIssue] = field(default_factory=list)


def _without_version(reference: str) -> str:
    """`.../Type/id/_history/n` -> `.../Type/id`."""
    head, sep, _ = reference.partition(_HISTORY)
    return head if sep else reference


def _base_of(full_url: str | None) -> str | None:
    """The service base of a RESTful fullUrl (`http://x/fhir/Patient/1` -> `http://x/fhir/`)."""
    if full_url is None or not full_url.startswith(("http://", "https://")):
        return None
    parts = _without_version(full_url).rstrip("/").rsplit("/", 2)
    return parts[0] + "/" if len(parts) == 3 else None


def local_key(reference: str) -> str | None:
    """`Type/id` of a relative reference (versioned or not); None for anything else."""
    if reference.startswith(("urn:", "#", "http://", "https://")):
        return None
    parts = _without_version(reference).split("?", 1)[0].strip("/").split("/")
    if len(parts) != 2 or not all(parts) or not parts[0][:1].isupper():
        return None
    return f"{parts[0]}/{parts[1]}"


def _id_from_full_url(full_url: str) -> str | None:
    """The id a fullUrl implies for a resource without one (the uuid/oid, or the last segment)."""
    if full_url.startswith(("urn:uuid:", "urn:oid:")):
        return full_url.split(":", 2)[2] or None
    tail = _without_version(full_url).rstrip("/").rsplit("/", 1)[-1]
    return tail or None


def _identifiers(resource: JsonDict) -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    items = resource.get("identifier")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("value"), str) and item["value"]:
            system = item.get("system")
            found.append((system if isinstance(system, str) else None, item["value"]))
    return found


class _Index:
    """Where each reference form leads: fullUrl, relative key, identifier."""

    def __init__(self) -> None:
        self.by_full_url: dict[str, str] = {}
        self.by_key: dict[str, str] = {}  # Type/id of entries without a RESTful fullUrl
        self.restful_keys: dict[str, list[str]] = {}  # Type/id of entries with one -> their fullUrls
        self.by_identifier: dict[tuple[str, str | None, str], list[str]] = {}
        self.bases: set[str] = set()

    def add(self, key: str, full_url: str | None, resource: JsonDict) -> None:
        if full_url is not None:
            self.by_full_url.setdefault(full_url, key)
        base = _base_of(full_url)
        if base is not None:
            self.bases.add(base)
            self.restful_keys.setdefault(key, []).append(full_url or "")
        else:
            self.by_key.setdefault(key, key)
        rtype = key.split("/", 1)[0]
        if rtype in IDENTIFIED_TYPES:
            for system, value in _identifiers(resource):
                keys = self.by_identifier.setdefault((rtype, system, value), [])
                if key not in keys:
                    keys.append(key)


@dataclass(frozen=True, slots=True)
class _Unresolved:
    code: str
    message: str


def _resolve_literal(index: _Index, reference: str, entry_url: str | None) -> str | _Unresolved:
    """The local key a literal reference leads to (FHIR R4 Bundle rules, docs/fhir/references.md)."""
    plain = _without_version(reference)
    if plain.startswith(("urn:uuid:", "urn:oid:")):
        found = index.by_full_url.get(plain)
        if found is not None:
            return found
        return _Unresolved("reference-not-resolved", f"{reference} is no entry of the Bundle")
    if plain.startswith(("http://", "https://")):
        found = index.by_full_url.get(plain)
        if found is not None:
            return found
        base = _base_of(plain)
        if base is None or base not in index.bases:
            return _Unresolved("reference-other-server", f"{reference} points to another server")
        return _Unresolved("reference-not-resolved", f"{reference} is no entry of the Bundle")
    key = local_key(plain)
    if key is None:
        return _Unresolved("reference-not-resolved", f"{reference} is not a reference form that resolves")
    base = _base_of(entry_url)
    if base is not None:  # relative to the referring entry's server: that server's entry only
        found = index.by_full_url.get(base + key)
        if found is not None:
            return found
    found = index.by_key.get(key)
    if found is not None:
        return found
    if base is None and len(set(index.restful_keys.get(key, []))) == 1:
        return key  # from a urn: entry to the one RESTful entry of that type and id
    return _Unresolved("reference-not-resolved", f"{reference} is no entry of the Bundle")


def _resolve_logical(index: _Index, value: JsonDict) -> str | _Unresolved:
    identifier = value.get("identifier")
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
        return _Unresolved("reference-not-resolved", "reference without a reference or an identifier value")
    wanted = value.get("type")
    system = identifier.get("system") if isinstance(identifier.get("system"), str) else None
    shown = f"{system or ''}|{identifier['value']}"
    types = [wanted] if isinstance(wanted, str) else sorted(IDENTIFIED_TYPES)
    matches: list[str] = []
    for rtype in types:
        if system is not None:
            matches.extend(index.by_identifier.get((rtype, system, identifier["value"]), []))
        else:
            for (itype, _, ivalue), keys in index.by_identifier.items():
                if itype == rtype and ivalue == identifier["value"]:
                    matches.extend(keys)
    unique = list(dict.fromkeys(matches))
    if len(unique) == 1:
        return unique[0]
    if unique:
        return _Unresolved("reference-ambiguous", f"identifier {shown} names {len(unique)} resources")
    return _Unresolved("reference-not-resolved", f"identifier {shown} names no entry of the Bundle")


class _Rewriter:
    """Rewrites the references of one entry's resource copy (and lifts its contained resources)."""

    def __init__(self, index: _Index, result: ResolvedBundle, lifted: dict[bytes, str]) -> None:
        self.index = index
        self.result = result
        self.lifted = lifted

    def rewrite(self, entry: BundleEntry) -> list[BundleEntry]:
        resource = entry.resource
        contained = self._contained(resource)
        extra: list[BundleEntry] = []
        local_ids: dict[str, str] = {}
        for cid, inner in contained.items():
            if inner.get("resourceType") in LIFTED_CONTAINED:
                lifted = self._lift(entry, cid, inner)
                local_ids[cid] = lifted.key
                if lifted.resource is not None and lifted.new:
                    extra.append(BundleEntry(lifted.key, None, lifted.resource))
        self._walk(resource, entry, local_ids, element=None)
        for item in extra:
            self._walk(item.resource, entry, {}, element=None)
        return extra

    @staticmethod
    def _contained(resource: JsonDict) -> dict[str, JsonDict]:
        items = resource.get("contained")
        found: dict[str, JsonDict] = {}
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                found[item["id"]] = item
        return found

    def _lift(self, entry: BundleEntry, cid: str, inner: JsonDict) -> _Lifted:
        """A contained BodyStructure/ImagingStudy as a resource of its own; identical copies are one.

        Its id is the container's id and the contained id joined by `-` (a FHIR id); it belongs to
        the container's patient when it names none; its input form is the container's.
        """
        content = {k: v for k, v in inner.items() if k != "id"}
        rtype = inner["resourceType"]
        subject = entry.resource.get("subject")
        owner = "patient" if rtype == "BodyStructure" else "subject"
        if owner not in content and isinstance(subject, dict):
            content[owner] = copy.deepcopy(subject)
        fingerprint = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        known = self.lifted.get(fingerprint)
        if known is not None:
            return _Lifted(known, None, new=False)
        container_id = entry.key.split("/", 1)[1]
        key = f"{rtype}/{container_id}-{cid}"
        self.lifted[fingerprint] = key
        lifted = {**content, "id": key.split("/", 1)[1]}
        self.index.add(key, None, lifted)
        self.result.output_references[key] = self.result.output_references.get(entry.key, entry.key)
        return _Lifted(key, lifted, new=True)

    def _walk(
        self, node: object, entry: BundleEntry, local_ids: Mapping[str, str], element: str | None
    ) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item, entry, local_ids, element)
            return
        if not isinstance(node, dict):
            return
        is_reference = "reference" in node or ("identifier" in node and element in READ_ELEMENTS)
        if element is not None and is_reference and self._rewrite_reference(node, entry, local_ids, element):
            return
        for key, value in node.items():
            if key != "contained" and isinstance(value, dict | list):
                self._walk(value, entry, local_ids, key)

    def _rewrite_reference(
        self, node: JsonDict, entry: BundleEntry, local_ids: Mapping[str, str], element: str
    ) -> bool:
        """Resolve one Reference in place; False when `node` is no Reference after all."""
        reference = node.get("reference")
        if reference is None and element in READ_ELEMENTS and isinstance(node.get("identifier"), dict):
            found = _resolve_logical(self.index, node)
        elif isinstance(reference, str) and reference.startswith("#"):
            target = local_ids.get(reference[1:])
            if target is None:
                return True  # a contained Medication, read in place by `inbound`
            found = target
        elif isinstance(reference, str):
            found = _resolve_literal(self.index, reference, entry.full_url)
        else:
            return False
        if isinstance(found, str):
            node["reference"] = found
        elif element in READ_ELEMENTS:
            self.result.issues.append(DataIssue("warning", found.code, found.message, entry.key))
            node.pop("reference", None)  # it names nothing here; the issue says what it was
            node.pop("identifier", None)
        return True


@dataclass(frozen=True, slots=True)
class _Lifted:
    key: str
    resource: JsonDict | None
    new: bool


def _entries(bundle: JsonDict, result: ResolvedBundle) -> list[BundleEntry]:
    found: list[BundleEntry] = []
    raw = bundle.get("entry")
    for position, entry in enumerate(raw if isinstance(raw, list) else []):
        label = f"Bundle.entry[{position}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            result.issues.append(DataIssue("error", "malformed-resource", "entry without a resource", label))
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            rid = _id_from_full_url(full_url) if full_url else None
            if rid is None:
                result.issues.append(DataIssue("error", "malformed-resource", "resource without id", label))
                continue
        key = f"{resource['resourceType']}/{rid}"
        found.append(BundleEntry(key, full_url, {**copy.deepcopy(resource), "id": rid}))
    return found


def resolve_bundle(bundle: JsonDict) -> ResolvedBundle:
    """Every entry of `bundle` with its references resolved (module doc); `bundle` is not changed.

    Works alike for every Bundle type (collection, transaction, batch, searchset, document): the
    rules depend on `fullUrl` and the reference only.
    """
    result = ResolvedBundle()
    entries = _entries(bundle, result)
    index = _Index()
    for entry in entries:
        index.add(entry.key, entry.full_url, entry.resource)
        result.output_references.setdefault(entry.key, entry.full_url or entry.key)
    rewriter = _Rewriter(index, result, {})
    lifted: list[BundleEntry] = []
    for entry in entries:
        lifted.extend(rewriter.rewrite(entry))
    result.entries = [*entries, *lifted]
    return result


def input_reference_forms(resource: JsonDict, forms: Mapping[str, str]) -> JsonDict:
    """A copy of `resource` whose `reference`s that `forms` knows read as the input named them.

    A copy, never in place: outbound resources share their constant parts (outbound.py).
    """
    copied: JsonDict = _replaced(resource, forms)
    return copied


def _replaced(node: Any, forms: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_replaced(item, forms) for item in node]
    if isinstance(node, dict):
        new = {key: _replaced(value, forms) for key, value in node.items()}
        reference = new.get("reference")
        if isinstance(reference, str) and reference in forms:
            new["reference"] = forms[reference]
        return new
    return node
