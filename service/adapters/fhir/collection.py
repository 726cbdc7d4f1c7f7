"""A posted FHIR Bundle -> patients to assess, and their outcomes -> the `$assess` collection Bundle.

Used by `POST /$assess` (through the container) and by `oncoresponse assess`, which imports only
this, the mapping and the rules: no database stack, no HTTP client, so that assessing one file
starts in a fraction of a second (benchmarks/startup.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service import __version__
from service.adapters.fhir import inbound, outbound
from service.application.assess import PatientOutcome
from service.application.errors import InvalidInput
from service.application.ports import PatientInput
from service.domain.results import DataIssue, PatientAssessment

__all__ = ["PostedPatients", "read_patients", "render_collection"]


@dataclass(frozen=True, slots=True)
class PostedPatients:
    patients: list[PatientInput]
    issues: list[DataIssue]


def read_patients(data: Any) -> PostedPatients:
    """Split a posted Bundle into patients; a body that is no Bundle raises InvalidInput."""
    if not isinstance(data, Mapping) or data.get("resourceType") != "Bundle":
        found = data.get("resourceType") if isinstance(data, Mapping) else type(data).__name__
        raise InvalidInput(f"Expected a FHIR Bundle, got {found!r}")
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput("Bundle.entry must be an array")
    found = inbound.bundle_patients(data)
    if not found.groups:
        raise InvalidInput("The Bundle holds no Patient resource, so there is nobody to assess")
    # Results name each input the way the posted Bundle did (its own fullUrl form).
    patients = [
        replace(inbound.patient_input(pid, resources), reference_forms=found.output_references)
        for pid, resources in found.groups.items()
    ]
    return PostedPatients(patients, list(found.issues))


def render_collection(
    outcomes: Sequence[PatientOutcome], issues: Iterable[DataIssue], *, recorded: datetime
) -> dict[str, Any]:
    """The `$assess` answer: a collection Bundle of Observations plus one OperationOutcome.

    Patients that could not be assessed appear only in the OperationOutcome; the others
    get their results (one bad patient never hides the rest).
    """
    unassessed = [i for o in outcomes if o.assessment is None for i in o.issues]
    results: list[tuple[PatientAssessment, PatientInput]] = []
    for o in outcomes:
        if o.assessment is not None:
            results.append((o.assessment, o.input))
    return outbound.assessment_bundle(results, [*issues, *unassessed], version=__version__, recorded=recorded)
