"""The patient view (a SMART on FHIR app) and the worksheet it reads.

`/app/patient/launch` is the app's launch URL (SMART App Launch 2.x: the EHR opens it with `iss`
and `launch`; opened without them it starts a standalone launch) and `/app/patient/` its redirect
URI; both are static pages (`static/patient/`). `GET /patients/{id}/worksheet` answers the
RECIST worksheet (`application/worksheet.py`) computed from the FHIR server's current data.

Who may read a worksheet: with the demo EHR launch on (`smart_launch.py`), a patient-scoped
SMART access token of that simulator for this very patient with `patient/Observation.rs`;
otherwise the clinical API's bearer token with the read scope (`security.py`). Errors are
problem+json; the token is never logged.
"""

from __future__ import annotations

from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials

from service.adapters.fhir import codes
from service.adapters.persistence.summary import to_json_value
from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES
from service.api.routers.smart_launch import ACCESS_AUDIENCE, PATIENT_ID_PATTERN, SmartDemoIssuer
from service.api.routers.web import page
from service.api.security import (
    ClinicalInsufficientScope,
    ClinicalNotAuthenticated,
    _bearer,
    require_read,
    scopes_of,
)
from service.application.errors import NotConfigured
from service.application.worksheet import ReadWorksheet

router = APIRouter()
pages = APIRouter(include_in_schema=False)

WORKSHEET_SCOPES = frozenset({"patient/Observation.rs", "patient/Observation.read", "patient/*.rs"})
PatientId = Annotated[str, Path(pattern=PATIENT_ID_PATTERN)]


@pages.get("/app/patient/launch")
async def launch_page() -> FileResponse:
    return page("patient/launch.html")


@pages.get("/app/patient/")
async def app_page() -> FileResponse:
    return page("patient/index.html")


async def require_patient_reader(
    request: Request,
    patient_id: PatientId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The patient the caller may read (module docstring); raises 401/403 problems otherwise."""
    issuer: SmartDemoIssuer | None = getattr(request.app.state, "smart_demo", None)
    if issuer is None:
        return (await require_read(request, credentials)).subject
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ClinicalNotAuthenticated(
            "A SMART access token is required (launch the patient view from the EHR)"
        )
    try:
        claims = issuer.read(credentials.credentials, audience=ACCESS_AUDIENCE)
    except jwt.ExpiredSignatureError:
        raise ClinicalNotAuthenticated("The SMART access token has expired; launch the view again") from None
    except jwt.InvalidTokenError:
        raise ClinicalNotAuthenticated("The SMART access token was not issued by this launch") from None
    if claims.get("patient") != patient_id:
        raise ClinicalInsufficientScope("The token is for another patient", "patient/Observation.rs")
    if not scopes_of(claims) & WORKSHEET_SCOPES:
        raise ClinicalInsufficientScope(
            "This needs the scope patient/Observation.rs", "patient/Observation.rs"
        )
    return str(claims.get("sub"))


def _site(organ: str) -> dict[str, str | None]:
    code = codes.ORGANS.get(organ)
    return {"code": code, "display": codes.ORGAN_DISPLAY.get(code, organ) if code else organ}


@router.get(
    "/patients/{patient_id}/worksheet",
    operation_id="assessments-worksheet",
    tags=["assessments"],
    responses={
        status: {**PROBLEM_RESPONSES[503], "description": description}
        for status, description in {
            401: "No valid token",
            403: "The token is for another patient or lacks the scope",
            404: "The patient cannot be assessed (no tumour measurements on the FHIR server)",
            503: "The FHIR server is unavailable or not configured",
        }.items()
    },
)
async def worksheet(
    patient_id: PatientId,
    container: ContainerDep,
    _reader: Annotated[str, Depends(require_patient_reader)],
) -> dict[str, Any]:
    """The RECIST worksheet of one patient, from the FHIR server's current data (the patient view reads it)."""
    if container.fhir_source is None:
        raise NotConfigured("No FHIR server is configured (ONCORESPONSE_FHIR_BASE_URL)")
    sheet = await ReadWorksheet(container.fhir_source, container.assessor)(patient_id)
    document: dict[str, Any] = to_json_value(sheet)
    for lesion in document["lesions"]:
        lesion["site"] = _site(lesion["organ"])
    return document
