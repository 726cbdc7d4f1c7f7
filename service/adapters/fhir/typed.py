"""Search pages -> resources, with typed decoding of the usual shapes (parse cost).

`read_search_page` turns the bytes of one search page into what `FhirClient.search` yields and
reports: the entries' resources, the issues of the page (malformed page or entry, server notes)
and the next link. Two modes:

- dicts (`typed=False`): `orjson.loads` of the page, every resource a plain JSON dict (every
  caller of `FhirClient.search` but the patient searches of `FhirMeasurementSource`).
- typed (`typed=True`, the patient searches of a REST sync): the page is decoded with msgspec
  into the Structs below, which hold only the elements `inbound`'s fast paths read, in the types
  they accept; the mapper reads them by attribute, with no type checks
  (`inbound._typed_observation` and the others). A page whose entries are all such resources is
  decoded in one go (`_TypedBundle`); any other page as a Bundle whose entries keep their
  resource undecoded (`msgspec.Raw`, a view of the page's bytes), each then decoded on its own.

Exact by construction: a typed resource is only ever a resource the dict fast path could have
read, and everything else is the dict it always was. A resource that does not decode into its
Struct (an unknown resource type, an element of another JSON type, an integer beyond 64 bits, one
of the contact elements its fast path refuses: `Refused`) is `orjson.loads` of the same bytes;
a typed resource its typed fast path declines becomes that dict too (`TypedResource.as_dict`:
`orjson.loads` of its bytes), which then takes the dict fast path and the general path, as
before. A page that does not decode as the expected Bundle (not JSON, not a Bundle, an entry of
another shape, a `search` or `link` element of another type), a page that is not valid UTF-8
(msgspec does not check the strings it skips), a page nested deeper than msgspec allows (it
stops before orjson does) and an entry orjson refuses all go back to the dict mode for the whole
page, which reports exactly what it always did. Duplicate keys: msgspec and orjson both keep the
last value.

One difference remains, by design: a number beyond the double range (above 1.8e308, such as
`1e400`) inside an element the typed decoder skips. orjson refuses the whole page for it (the
search ends with `malformed-page`); msgspec skips the element, so the page is read, and a typed
resource holding such a number that its typed fast path declines is reported `malformed-resource`
(it has no dict). Checking every page for such numbers would cost more than orjson itself; no
FHIR server sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec
import orjson
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from service.adapters.fhir.errors import MalformedResource, outcome_summary
from service.domain.results import DataIssue

__all__ = [
    "BodyStructureT",
    "CodeableConcept",
    "Coding",
    "Concept",
    "DrugConcept",
    "ImagingStudyT",
    "MedicationAdministrationT",
    "MedicationRequestT",
    "ObservationT",
    "SearchPage",
    "TypedResource",
    "read_resources",
    "read_search_page",
]

JsonDict = dict[str, Any]

# An integer as orjson yields it (orjson turns integers beyond 64 bits into floats; msgspec would
# keep them exact): larger ones fail the typed decode, and the resource is the orjson dict.
Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# An element whose presence sends the resource to the dict path, whatever its value (null
# included): no string matches the pattern, and no other JSON value is a string.
Refused = Annotated[str, Meta(pattern="(?!)")]
_NO: Final = UNSET


# Only the elements the fast paths read are declared (others are skipped, not even checked):
# codings without `display` but for drugs (the drug classification reads it), concepts without
# `text` but for drugs and lesion locations, quantities without `unit`.
class Coding(Struct, gc=False):
    system: str | None = None
    code: str | None = None


class Concept(Struct, gc=False):
    coding: list[Coding] | None = None


class CodeableConcept(Struct, gc=False):
    coding: list[Coding] | None = None
    text: str | None = None


class DrugCoding(Struct, gc=False):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class DrugConcept(Struct, gc=False):
    coding: list[DrugCoding] | None = None
    text: str | None = None


class Reference(Struct, gc=False):
    reference: str | None = None


class Quantity(Struct, gc=False):
    value: Int | float | None = None
    system: str | None = None
    code: str | None = None


class Component(Struct, gc=False):
    code: Concept | None = None
    valueQuantity: Quantity | None = None


class Extension(Struct, gc=False):
    url: str | None = None
    valueBoolean: bool | None = None
    valueCoding: Coding | None = None
    valuePositiveInt: Int | None = None


class Identifier(Struct, gc=False):
    value: str | None = None


class ResourceMeta(Struct, gc=False):
    profile: list[str] | None = None


class Period(Struct, gc=False):
    start: str | None = None


class Repeat(Struct, gc=False):
    boundsPeriod: Period | None = None


class Timing(Struct, gc=False):
    repeat: Repeat | None = None


class Dosage(Struct, gc=False):
    timing: Timing | None = None


class TypedResource(Struct, tag_field="resourceType", kw_only=True, gc=False):
    """A resource of the usual shape, with where its JSON text is (`as_dict`).

    `subject` and `patient` are read by `inbound.patient_of`. `json_origin` and `json_index` are
    set by `read_search_page`, never from the resource: a key of either name in the JSON is
    decoded as any value and then replaced, as if it were not there.
    """

    resource_type: ClassVar[str]
    id: str
    subject: Reference | None = None
    patient: Reference | None = None
    json_origin: Any = None  # the resource's own `Raw`, or the `_RawPage` it is entry `json_index` of
    json_index: Any = None

    def as_dict(self) -> JsonDict:
        """The resource as `orjson.loads` of its JSON text gives it (for the dict paths).

        `MalformedResource` where orjson refuses the text although msgspec read it (a number
        beyond the double range in an element the typed decoder skips: module doc).
        """
        origin = self.json_origin
        raw = origin if type(origin) is Raw else origin.raw(self.json_index)
        try:
            found: JsonDict = orjson.loads(memoryview(raw))
        except orjson.JSONDecodeError:
            raise MalformedResource(f"{self.resource_type}/{self.id}", "resource is not valid JSON") from None
        return found


# The contact elements of `inbound._CONTACT_KEYS`, less the one each fast path reads, and
# verificationStatus (`inbound._UNUSUAL_EFFECTIVE`, `_UNUSUAL_AUTHORED`, `_UNUSUAL_STUDY`; for
# BodyStructure all of `_CONTACT_KEYS`): refused, so that the resource takes the dict path.
class ObservationT(TypedResource, tag="Observation", kw_only=True, gc=False):
    resource_type: ClassVar[str] = "Observation"
    status: str
    code: Concept | None = None
    effectiveDateTime: str | None = None
    focus: list[Reference] | None = None
    derivedFrom: list[Reference] | None = None
    component: list[Component] | None = None
    interpretation: list[Concept] | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: Concept | None = None
    valueInteger: Int | None = None
    method: Concept | None = None  # pathology or imaging: `inbound._PatientMapper._pathology_method`
    specimen: Refused | UnsetType = _NO
    effectiveInstant: Refused | UnsetType = _NO
    started: Refused | UnsetType = _NO
    authoredOn: Refused | UnsetType = _NO
    performedDateTime: Refused | UnsetType = _NO
    recordedDate: Refused | UnsetType = _NO
    onsetDateTime: Refused | UnsetType = _NO
    abatementDateTime: Refused | UnsetType = _NO
    occurrenceDateTime: Refused | UnsetType = _NO
    deceasedDateTime: Refused | UnsetType = _NO
    effectivePeriod: Refused | UnsetType = _NO
    performedPeriod: Refused | UnsetType = _NO
    period: Refused | UnsetType = _NO
    verificationStatus: Refused | UnsetType = _NO


class MedicationAdministrationT(TypedResource, tag="MedicationAdministration", kw_only=True, gc=False):
    resource_type: ClassVar[str] = "MedicationAdministration"
    status: str
    effectiveDateTime: str | None = None
    medicationCodeableConcept: DrugConcept | None = None
    medicationReference: Reference | None = None
    extension: list[Extension] | None = None
    effectiveInstant: Refused | UnsetType = _NO
    started: Refused | UnsetType = _NO
    authoredOn: Refused | UnsetType = _NO
    performedDateTime: Refused | UnsetType = _NO
    recordedDate: Refused | UnsetType = _NO
    onsetDateTime: Refused | UnsetType = _NO
    abatementDateTime: Refused | UnsetType = _NO
    occurrenceDateTime: Refused | UnsetType = _NO
    deceasedDateTime: Refused | UnsetType = _NO
    effectivePeriod: Refused | UnsetType = _NO
    performedPeriod: Refused | UnsetType = _NO
    period: Refused | UnsetType = _NO
    verificationStatus: Refused | UnsetType = _NO


class MedicationRequestT(TypedResource, tag="MedicationRequest", kw_only=True, gc=False):
    resource_type: ClassVar[str] = "MedicationRequest"
    status: str
    authoredOn: str | None = None
    medicationCodeableConcept: DrugConcept | None = None
    medicationReference: Reference | None = None
    dosageInstruction: list[Dosage] | None = None
    extension: list[Extension] | None = None
    effectiveDateTime: Refused | UnsetType = _NO
    effectiveInstant: Refused | UnsetType = _NO
    started: Refused | UnsetType = _NO
    performedDateTime: Refused | UnsetType = _NO
    recordedDate: Refused | UnsetType = _NO
    onsetDateTime: Refused | UnsetType = _NO
    abatementDateTime: Refused | UnsetType = _NO
    occurrenceDateTime: Refused | UnsetType = _NO
    deceasedDateTime: Refused | UnsetType = _NO
    effectivePeriod: Refused | UnsetType = _NO
    performedPeriod: Refused | UnsetType = _NO
    period: Refused | UnsetType = _NO
    verificationStatus: Refused | UnsetType = _NO


class ImagingStudyT(TypedResource, tag="ImagingStudy", kw_only=True, gc=False):
    resource_type: ClassVar[str] = "ImagingStudy"
    status: str
    started: str | None = None
    effectiveDateTime: Refused | UnsetType = _NO
    effectiveInstant: Refused | UnsetType = _NO
    authoredOn: Refused | UnsetType = _NO
    performedDateTime: Refused | UnsetType = _NO
    recordedDate: Refused | UnsetType = _NO
    onsetDateTime: Refused | UnsetType = _NO
    abatementDateTime: Refused | UnsetType = _NO
    occurrenceDateTime: Refused | UnsetType = _NO
    deceasedDateTime: Refused | UnsetType = _NO
    effectivePeriod: Refused | UnsetType = _NO
    performedPeriod: Refused | UnsetType = _NO
    period: Refused | UnsetType = _NO
    verificationStatus: Refused | UnsetType = _NO


class BodyStructureT(TypedResource, tag="BodyStructure", kw_only=True, gc=False):
    resource_type: ClassVar[str] = "BodyStructure"
    meta: ResourceMeta | None = None  # `inbound._not_a_lesion` reads its profiles
    identifier: list[Identifier] | None = None
    location: CodeableConcept | None = None
    active: bool | None = None
    extension: list[Extension] | None = None
    effectiveDateTime: Refused | UnsetType = _NO
    effectiveInstant: Refused | UnsetType = _NO
    started: Refused | UnsetType = _NO
    authoredOn: Refused | UnsetType = _NO
    performedDateTime: Refused | UnsetType = _NO
    recordedDate: Refused | UnsetType = _NO
    onsetDateTime: Refused | UnsetType = _NO
    abatementDateTime: Refused | UnsetType = _NO
    occurrenceDateTime: Refused | UnsetType = _NO
    deceasedDateTime: Refused | UnsetType = _NO
    effectivePeriod: Refused | UnsetType = _NO
    performedPeriod: Refused | UnsetType = _NO
    period: Refused | UnsetType = _NO


_RESOURCE: Final = msgspec.json.Decoder(
    ObservationT | MedicationAdministrationT | MedicationRequestT | ImagingStudyT | BodyStructureT
)


_ARRAY: Final = msgspec.json.Decoder(list[Raw])


def read_resources(body: bytes) -> list[JsonDict | TypedResource] | None:
    """The elements of a JSON array of resources that `orjson.loads` each accepted alone (the rows
    of the Bulk Data spool, `bulk.NdjsonSpool.patient_items`): typed where the usual shapes fit,
    as in a typed search page, else the dict `orjson.loads` gives. None where msgspec cannot read
    the array (the caller then reads it with orjson, as before)."""
    if not body.isascii():  # msgspec does not check the UTF-8 of the strings it skips
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        raws = _ARRAY.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    found: list[JsonDict | TypedResource] = []
    add = found.append
    decode = _RESOURCE.decode
    for raw in raws:
        try:
            resource = decode(raw)
        except msgspec.DecodeError:
            pass
        except RecursionError:
            return None
        else:
            resource.json_origin = raw
            add(resource)
            continue
        try:
            add(orjson.loads(memoryview(raw)))
        except orjson.JSONDecodeError:
            return None
    return found


# --- the page ------------------------------------------------------------------------------------
class _Search(Struct, gc=False):
    mode: str | None = None


class _Link(Struct, gc=False):
    relation: str | None = None
    url: str | None = None


class _Entry(Struct, gc=False):
    resource: Raw = msgspec.field(default_factory=Raw)  # empty when absent, `null` when null
    search: _Search | None = None


class _Bundle(Struct, gc=False):
    resourceType: Literal["Bundle"]  # required (a tag is not, on a Struct decoded alone)
    entry: list[_Entry] = []
    link: list[_Link] | None = None


class _TypedEntry(Struct, gc=False):
    resource: ObservationT | MedicationAdministrationT | MedicationRequestT | ImagingStudyT | BodyStructureT
    search: _Search | None = None


class _TypedBundle(Struct, gc=False):
    resourceType: Literal["Bundle"]
    entry: list[_TypedEntry] = []
    link: list[_Link] | None = None


_PAGE: Final = msgspec.json.Decoder(_Bundle)
_TYPED_PAGE: Final = msgspec.json.Decoder(_TypedBundle)


class _RawPage:
    """A page whose entries were decoded typed at once: each entry's JSON text, when one is asked
    for (`TypedResource.as_dict`), from one more decode of the page as `_Bundle`, which reads any
    page `_TypedBundle` reads."""

    __slots__ = ("_body", "_entries")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._entries: list[_Entry] | None = None

    def raw(self, index: int) -> Raw:
        if self._entries is None:
            self._entries = _PAGE.decode(self._body).entry
        return self._entries[index].resource


@dataclass(slots=True)
class SearchPage:
    """One page read: its resources, its issues in order (with whether each counts as skipped), its
    next link, and whether the search ends here (a page that is not JSON or not a Bundle)."""

    resources: list[Any] = field(default_factory=list)
    issues: list[tuple[DataIssue, bool]] = field(default_factory=list)
    next_url: str | None = None
    ended: bool = False

    def report(self, code: str, message: str, where: str) -> None:
        self.issues.append((DataIssue("warning", code, message, where), True))

    def entry(self, resource: object, mode: object, where: str) -> None:
        """An entry's resource as dict mode reads it (`FhirClient.search` before typed decoding)."""
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            self.report("malformed-entry", "search entry without a resource", where)
        elif mode == "outcome" or resource["resourceType"] == "OperationOutcome":
            _, text = outcome_summary(resource)
            self.issues.append(
                (DataIssue("information", "server-outcome", text or "server note", where), False)
            )
        else:
            self.resources.append(resource)


def read_search_page(body: bytes, label: str, *, typed: bool = False) -> SearchPage:
    """The resources, issues and next link of one search page (`label` names it in issues).

    `typed`: the usual Observations, MedicationAdministrations, MedicationRequests, ImagingStudies
    and BodyStructures come as `TypedResource`s, everything else as dicts (module doc).
    """
    if typed:
        page = _typed_page(body, label)
        if page is not None:
            return page
    return _dict_page(body, label)


def _dict_page(body: bytes, label: str) -> SearchPage:
    page = SearchPage()
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError:
        page.report("malformed-page", "search page is not JSON; search ended", label)
        page.ended = True
        return page
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        page.report("malformed-page", "search page is not a Bundle; search ended", label)
        page.ended = True
        return page
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        page.report("malformed-page", "Bundle.entry is not a list", label)
        entries = []
    for position, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        search = entry.get("search") if isinstance(entry, dict) else None
        mode = search.get("mode") if isinstance(search, dict) else None
        page.entry(resource, mode, f"{label} entry {position}")
    page.next_url = _next_link(bundle.get("link"))
    return page


def _next_link(links: object) -> str | None:
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url: str = link["url"]
            return url or None
    return None


def _typed_page(body: bytes, label: str) -> SearchPage | None:
    """`read_search_page` in typed mode, or None where the page must be read as dicts.

    A page of typed resources only is decoded in one go (`_TypedBundle`); any other page as
    `_Bundle`, each entry's resource then decoded on its own (typed, else `orjson.loads`).
    """
    if not body.isascii():  # msgspec does not check the UTF-8 of the strings it skips
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        whole = _TYPED_PAGE.decode(body)
    except msgspec.DecodeError:
        pass
    except RecursionError:
        return None
    else:
        return _whole_page(whole, body, label)
    try:
        bundle = _PAGE.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    page = SearchPage()
    add = page.resources.append
    decode = _RESOURCE.decode
    for position, entry in enumerate(bundle.entry):
        raw = entry.resource
        search = entry.search
        mode = None if search is None else search.mode
        if mode != "outcome" and raw:
            try:
                resource = decode(raw)
            except msgspec.DecodeError:
                pass
            except RecursionError:
                return None
            else:
                resource.json_origin = raw
                add(resource)
                continue
        try:
            loaded = orjson.loads(memoryview(raw)) if raw else None
        except orjson.JSONDecodeError:
            return None
        page.entry(loaded, mode, f"{label} entry {position}")
    page.next_url = _typed_next_link(bundle.link)
    return page


def _whole_page(bundle: _TypedBundle, body: bytes, label: str) -> SearchPage | None:
    page = SearchPage()
    add = page.resources.append
    origin = _RawPage(body)
    for position, entry in enumerate(bundle.entry):
        resource = entry.resource
        resource.json_origin = origin
        resource.json_index = position
        search = entry.search
        if search is not None and search.mode == "outcome":
            try:
                loaded = resource.as_dict()
            except MalformedResource:
                return None
            page.entry(loaded, "outcome", f"{label} entry {position}")
        else:
            add(resource)
    page.next_url = _typed_next_link(bundle.link)
    return page


def _typed_next_link(links: list[_Link] | None) -> str | None:
    """`_next_link` of a typed page."""
    if links is not None:
        for link in links:
            if link.relation == "next" and link.url is not None:
                return link.url or None
    return None
