"""The single import site of FHIR models (docs/architecture.md), pinned to R4B.

Our servers speak R4; fhir.resources has no R4 package and R4B is wire-compatible with R4 for
every resource of the contract. Nothing else in the code base imports `fhir.resources`.

The hot paths (`inbound.py`, `outbound.py`) work on plain JSON dicts, because parsing with
these models is about 65 times slower than orjson; the models are used to validate what we
emit (tests, `validate_resource`) and wherever a typed resource is worth its cost.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bodystructure import BodyStructure
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.provenance import Provenance

__all__ = [
    "MODEL_BY_TYPE",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "Condition",
    "Device",
    "ImagingStudy",
    "Medication",
    "MedicationAdministration",
    "MedicationRequest",
    "Observation",
    "OperationOutcome",
    "Patient",
    "Procedure",
    "Provenance",
    "validate_resource",
]

MODEL_BY_TYPE: dict[str, Any] = {
    "BodyStructure": BodyStructure,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Condition": Condition,
    "Device": Device,
    "ImagingStudy": ImagingStudy,
    "Medication": Medication,
    "MedicationAdministration": MedicationAdministration,
    "MedicationRequest": MedicationRequest,
    "Observation": Observation,
    "OperationOutcome": OperationOutcome,
    "Patient": Patient,
    "Procedure": Procedure,
    "Provenance": Provenance,
}


def validate_resource(data: dict[str, Any]) -> Any:
    """Validate a resource dict with its R4B model (`model_validate`, never `Model(**data)`).

    Types outside the contract (e.g. CapabilityStatement, Subscription in our profile package)
    are looked up in fhir.resources R4B. Raises `KeyError` for an unknown resource type and
    `pydantic.ValidationError` when the resource does not conform.
    """
    resource_type = str(data["resourceType"])
    model = MODEL_BY_TYPE.get(resource_type)
    if model is None:
        from fhir.resources.R4B import get_fhir_model_class  # rare types only: slow import

        try:
            model = get_fhir_model_class(resource_type)
        except ValueError as exc:
            raise KeyError(resource_type) from exc
    return model.model_validate(data)
