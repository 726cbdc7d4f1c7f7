"""OpenAPI description of the subscription hook (its bodies are FHIR, not our JSON contract)."""

from __future__ import annotations

from typing import Any, Final

FHIR_JSON: Final = "application/fhir+json"

NOTIFICATION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": (
        "A FHIR R4 rest-hook notification: the changed resource, a Bundle of them, or an R5 Backport "
        "notification Bundle (type history, first entry a SubscriptionStatus Parameters). An empty body "
        "is a ping."
    ),
    "properties": {"resourceType": {"type": "string"}},
    "required": ["resourceType"],
}

OPERATION_OUTCOME_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A FHIR OperationOutcome",
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["resourceType", "issue"],
}


def outcome_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: {"schema": OPERATION_OUTCOME_SCHEMA}}}
