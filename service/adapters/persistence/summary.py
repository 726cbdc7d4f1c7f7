"""Serialising engine values for the database (`result_json`, `data_version`).

`to_json_value` turns the frozen dataclasses of `service.domain` into plain JSON: `Decimal` as
its exact string (never a float), dates as ISO 8601, enums as their code, tuples as lists,
dataclasses as objects with every field. `result_json` is that rendering of a whole
`PatientAssessment` plus a format number, so that a later reader can tell versions apart.

`fingerprint` is SHA-256 over the canonical JSON (sorted keys, no spaces) of any such value.
`data_version` of a stored assessment is the fingerprint of its inputs (the `PatientTimeline`
and the `AssessmentParameters`) when the caller supplies them; otherwise the fingerprint of the
result itself, which changes whenever the derived response changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from service.domain.age import completed_years
from service.domain.model import PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalFinding, AtypicalKind, PatientAssessment

RESULT_FORMAT = 2  # 2: profile.age_at_treatment_start replaces profile.birth_date


def to_json_value(value: object) -> Any:
    """Render a domain value as JSON-compatible Python (dict, list, str, int, bool, None)."""
    if value is None or isinstance(value, bool | int | str):
        # StrEnum members are str: render them as their plain code.
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_json_value(getattr(value, field.name)) for field in dataclasses.fields(value)}
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def fingerprint(value: object) -> str:
    """SHA-256 (hex) of the canonical JSON rendering of `value`."""
    canonical = json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def input_fingerprint(timeline: PatientTimeline, params: AssessmentParameters) -> str:
    """The `data_version` of an assessment: a hash of everything the engine was given."""
    return fingerprint({"timeline": timeline, "params": params})


def assessment_document(assessment: PatientAssessment) -> dict[str, Any]:
    """The `result_json` of a stored assessment.

    Data minimisation (format 2): the clinical profile keeps the age at ICI start in completed
    years (`age_at_treatment_start`), which is all the analyses use, instead of the birth date,
    an identifier the database does not need. Readers accept format 1 documents too.
    """
    document: dict[str, Any] = {"format": RESULT_FORMAT}
    document.update(to_json_value(assessment))
    profile = document.get("profile")
    if isinstance(profile, dict):
        birth = assessment.profile.birth_date if assessment.profile is not None else None
        profile.pop("birth_date", None)
        profile["age_at_treatment_start"] = (
            completed_years(birth, assessment.treatment_start) if birth is not None else None
        )
    return document


def first_dissociated_response(assessment: PatientAssessment) -> AtypicalFinding | None:
    """The earliest DR finding (lowest timepoint index), which fills `dr_trigger`/`dr_timepoint_index`."""
    findings = [f for f in assessment.atypical if f.kind is AtypicalKind.DR]
    return min(findings, key=lambda f: (f.timepoint_index, f.timepoint_date)) if findings else None
