"""`POST /$assess`: assess a FHIR Bundle of one or more patients; nothing is written anywhere.

Contract section 4. The answer is a FHIR Bundle (type `collection`) with the Observations of
contract section 2 for every patient that could be assessed, plus one OperationOutcome listing
the data issues (patients that could not be assessed are named there; the others still get
their results). A body that is not a usable Bundle at all is answered with problem+json.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Query, Request, Response

from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES
from service.api.security import WriterDep
from service.application.clock import today
from service.application.errors import InvalidInput

router = APIRouter(tags=["assessments"])

FHIR_JSON = "application/fhir+json"
MAX_BODY_BYTES = 64 * 1024 * 1024


class FhirJsonResponse(Response):
    media_type = FHIR_JSON


_BUNDLE_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4 Bundle (any type) holding one or more patients' resources",
    "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]}, "entry": {"type": "array"}},
    "required": ["resourceType"],
}


@router.post(
    "/$assess",
    operation_id="assessments-assess-bundle",
    response_class=FhirJsonResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FHIR_JSON: {"schema": _BUNDLE_SCHEMA},
                "application/json": {"schema": _BUNDLE_SCHEMA},
            },
        }
    },
    responses={
        200: {
            "description": "A collection Bundle of assessment Observations and an OperationOutcome",
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
        },
        400: PROBLEM_RESPONSES[400],
        413: PROBLEM_RESPONSES[400] | {"description": "The body is too large"},
        415: PROBLEM_RESPONSES[400] | {"description": "The body is not JSON"},
        422: PROBLEM_RESPONSES[422],
    },
)
async def assess_bundle(
    request: Request,
    container: ContainerDep,
    _caller: WriterDep,
    as_of: Annotated[date | None, Query(description="Ignore data after this date (default: today)")] = None,
) -> FhirJsonResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (FHIR_JSON, "application/json"):
        raise UnsupportedMediaType(f"Send the Bundle as {FHIR_JSON}, not {content_type or 'no content type'}")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body has {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON ({exc})") from None
    patients, issues = container.read_bundle(data)
    reference_date = as_of or today()
    outcomes = await anyio.to_thread.run_sync(lambda: container.assessor(patients, as_of=reference_date))
    container.count_outcomes(outcomes)
    body = container.render_collection(outcomes, issues)
    return FhirJsonResponse(orjson.dumps(body))


class UnsupportedMediaType(InvalidInput):
    problem_type = "/problems/unsupported-media-type"
    title = "Unsupported media type"
    status = 415


class BodyTooLarge(InvalidInput):
    problem_type = "/problems/body-too-large"
    title = "Body too large"
    status = 413
