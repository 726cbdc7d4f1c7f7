"""`POST /$assess`: assess a FHIR Bundle of one or more patients; nothing is written anywhere.

Contract section 4. The answer is a FHIR Bundle (type `collection`) with the Observations of
contract section 2 for every patient that could be assessed, plus one OperationOutcome listing
the data issues (patients that could not be assessed are named there; the others still get
their results). A request that cannot be assessed at all (not JSON, not a Bundle, too large,
wrong media type, a bad parameter) is answered with an OperationOutcome (`api/problems.py`).

Decision (large Bundles): the body is limited while it streams in (`BodyLimitMiddleware`,
`ONCORESPONSE_API_MAX_BODY_BYTES`); parsing, reading, assessing and rendering run in ONE worker
thread, so a 20,000-entry Bundle does not hold the event loop (health checks, other requests).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Query, Request, Response

from service.api.deps import ContainerDep
from service.api.schemas.subscriptions import outcome_response
from service.api.security import WriterDep
from service.application.assess import PatientOutcome
from service.application.clock import today
from service.application.errors import InvalidInput

router = APIRouter(tags=["assessments"])

FHIR_JSON = "application/fhir+json"


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
        400: outcome_response("The body is not JSON or not a Bundle"),
        413: outcome_response("The body is too large"),
        415: outcome_response("The body is not sent as FHIR JSON"),
        422: outcome_response("A parameter is invalid"),
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
    raw = await request.body()  # at most ONCORESPONSE_API_MAX_BODY_BYTES (BodyLimitMiddleware)
    reference_date = as_of or today()

    def work() -> tuple[bytes, list[PatientOutcome]]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"The body is not valid JSON ({exc})") from None
        patients, issues = container.read_bundle(data)
        outcomes = container.assessor(patients, as_of=reference_date)
        return orjson.dumps(container.render_collection(outcomes, issues)), list(outcomes)

    body, outcomes = await anyio.to_thread.run_sync(work)
    container.count_outcomes(outcomes)
    return FhirJsonResponse(body)


class UnsupportedMediaType(InvalidInput):
    problem_type = "/problems/unsupported-media-type"
    title = "Unsupported media type"
    status = 415
