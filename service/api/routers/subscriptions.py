"""`POST /fhir/subscription-hook` (and `PUT|POST .../{type}/{id}`): Subscription notifications.

The second path is where an R4 rest-hook with a payload sends each resource (the server PUTs or
POSTs it to `<endpoint>/<type>/<id>`, FHIR R4 Subscription, rest-hook channel).

A FHIR conversation, so every answer is an OperationOutcome (docs/architecture.md), never
problem+json. The FHIR server's Subscription carries the shared token as
`channel.header: ["Authorization: Bearer <ONCORESPONSE_SUBSCRIPTION_HOOK_TOKEN>"]`.

- 200: notification understood; the named patients are scheduled for a debounced
  re-assessment in the background (`application/reassess.py`; a signed report closes the
  debounce window at once), references whose patient is not
  in the notification are resolved there, and a notification without any patient (an R4 ping
  with an empty body, a Backport `empty` payload) triggers the `_lastUpdated` poll at once.
  Handshakes and heartbeats are acknowledged. The answer names counts, never patients.
- 400: not a notification we understand (`adapters/fhir/notifications.py`).
- 401: missing or wrong bearer token. 503: no token configured, or no FHIR server.

The body is at most 16 MiB (a `full-resource` Backport Bundle of one event is far smaller).
"""

from __future__ import annotations

import hmac
import re
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response

from service.adapters.fhir.notifications import BadNotification, read_notification
from service.api.deps import ContainerDep
from service.api.schemas.subscriptions import FHIR_JSON, NOTIFICATION_SCHEMA, outcome_response

router = APIRouter(tags=["subscriptions"])

MAX_BODY_BYTES = 16 * 1024 * 1024
# FHIR R4 resource type names and ids (http://hl7.org/fhir/R4/datatypes.html#id).
RESOURCE_TYPE: Final = r"[A-Z][A-Za-z]{1,63}"
RESOURCE_ID: Final = r"[A-Za-z0-9\-.]{1,64}"

_HOOK_BODY: Final = {
    "requestBody": {
        "required": False,
        "content": {
            FHIR_JSON: {"schema": NOTIFICATION_SCHEMA},
            "application/json": {"schema": NOTIFICATION_SCHEMA},
        },
    }
}
_HOOK_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: outcome_response("Notification accepted; re-assessment scheduled"),
    400: outcome_response("Not a notification the service understands"),
    401: outcome_response("Missing or wrong bearer token"),
    413: outcome_response("Body too large"),
    503: outcome_response("The hook or the FHIR server is not configured"),
}


def _outcome(
    status: int, severity: str, code: str, text: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "details": {"text": text}}],
    }
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


@router.post(
    "/fhir/subscription-hook",
    operation_id="subscriptions-notify",
    openapi_extra=_HOOK_BODY,
    responses=_HOOK_RESPONSES,
    response_class=Response,
)
async def subscription_hook(request: Request, container: ContainerDep) -> Response:
    """Receive a rest-hook notification (R4 criteria-based or Backport topic-based)."""
    return await _receive(request, container, named=None)


@router.put(
    "/fhir/subscription-hook/{resource_type}/{resource_id}",
    operation_id="subscriptions-notify-resource-put",
    openapi_extra=_HOOK_BODY,
    responses=_HOOK_RESPONSES,
    response_class=Response,
)
@router.post(
    "/fhir/subscription-hook/{resource_type}/{resource_id}",
    operation_id="subscriptions-notify-resource",
    openapi_extra=_HOOK_BODY,
    responses=_HOOK_RESPONSES,
    response_class=Response,
)
async def subscription_hook_resource(
    request: Request,
    container: ContainerDep,
    resource_type: str,
    resource_id: str,
) -> Response:
    """Receive an R4 rest-hook notification with payload, sent to `<endpoint>/<type>/<id>`."""
    named: str | None = f"{resource_type}/{resource_id}"
    if not (re.fullmatch(RESOURCE_TYPE, resource_type) and re.fullmatch(RESOURCE_ID, resource_id)):
        named = None
    return await _receive(request, container, named=named, bad_path=named is None)


async def _receive(
    request: Request, container: ContainerDep, *, named: str | None, bad_path: bool = False
) -> Response:
    expected = container.settings.subscription_hook_token
    if expected is None or not expected.get_secret_value():
        return _outcome(503, "error", "not-supported", "The subscription hook is not configured")
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        return _outcome(
            401, "error", "login", "A valid bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    if bad_path:
        return _outcome(400, "error", "invalid", "The path does not name a FHIR resource type and id")
    reassess = container.reassess
    if reassess is None:
        return _outcome(503, "error", "not-supported", "No FHIR server is configured")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _outcome(413, "error", "too-costly", f"At most {MAX_BODY_BYTES} bytes are accepted")
    try:
        data = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        return _outcome(400, "error", "structure", "The body is not JSON")
    try:
        note = read_notification(data, named=named)
    except BadNotification as exc:
        return _outcome(400, "error", "invalid", str(exc))
    for patient_id in note.patient_ids:
        reassess.schedule(patient_id, study_final=patient_id in note.study_final)
    for reference in note.to_resolve:
        reassess.resolve(reference)
    if note.poll:
        reassess.request_poll()
    text = (
        f"{note.kind}: {len(note.patient_ids)} patient(s) scheduled, {len(note.to_resolve)} reference(s) "
        f"to resolve{', poll requested' if note.poll else ''}"
    )
    return _outcome(200, "information", "informational", text)
