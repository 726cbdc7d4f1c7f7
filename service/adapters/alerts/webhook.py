"""Signed webhooks for integration engines, Stripe-style HMAC signatures.

Each configured URL is one channel (`webhook:<first 8 hex of SHA-256(url)>`, so that URLs, which
may hold credentials, never appear in logs or the API). A delivery is one POST:

- body: JSON (UTF-8, sorted keys) ``{"type": "atypical-response.detected", "delivery_id": ...,
  "created_at": ..., "data": <alert payload>}``; the payload carries the FHIR patient reference,
  the finding, the scan, the growing and shrinking lesions and the next step, nothing else;
- headers: ``Oncoresponse-Delivery-Id`` (stable per alert: the same on every retry, so receivers
  de-duplicate), ``Oncoresponse-Timestamp`` (Unix seconds of this attempt),
  ``Oncoresponse-Signature: t=<timestamp>,v1=<hex>``, ``Oncoresponse-Event``;
- signature: hex HMAC-SHA256 under the shared secret of ``<timestamp> + "." + <raw body>``. The
  body contains the delivery id, so the signature covers body, timestamp and delivery id.
  Receivers recompute it over the raw bytes, compare in constant time, and reject timestamps
  older than their tolerance (`verify_signature`, default 300 s) against replays.

Success is any 2xx; everything else (3xx included: redirects are not followed, transport
errors, timeouts) raises `WebhookFailed`, which the worker retries with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import orjson

from service.application.errors import ApplicationError
from service.application.ports import PendingAlert

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_TYPE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAlertChannel",
    "WebhookFailed",
    "channel_name",
    "sign",
    "verify_signature",
]

EVENT_TYPE: Final = "atypical-response.detected"
SIGNATURE_HEADER: Final = "Oncoresponse-Signature"
TIMESTAMP_HEADER: Final = "Oncoresponse-Timestamp"
DELIVERY_HEADER: Final = "Oncoresponse-Delivery-Id"
EVENT_HEADER: Final = "Oncoresponse-Event"
DEFAULT_TOLERANCE_S: Final = 300


class WebhookFailed(ApplicationError):
    problem_type = "/problems/webhook-failed"
    title = "Webhook delivery failed"
    status = 502


def channel_name(url: str) -> str:
    return f"webhook:{hashlib.sha256(url.encode('utf-8')).hexdigest()[:8]}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}." + body`` under `secret`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a receiver does: parse ``t=...,v1=...``, check the age, compare in constant time.

    Several ``v1`` values are accepted (a sender rotating its secret may sign twice).
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


class WebhookAlertChannel:
    """`AlertChannel` posting the signed alert to one URL (see module doc)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        self._http = http
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock
        self.name = channel_name(url)

    def request(self, alert: PendingAlert) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (the timestamp is taken now)."""
        now = self._clock()
        delivery_id = str(alert.payload["alert_id"])
        body = orjson.dumps(
            {
                "type": EVENT_TYPE,
                "delivery_id": delivery_id,
                "created_at": now.isoformat(),
                "data": alert.payload,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "oncoresponse-webhook/1",
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            EVENT_HEADER: EVENT_TYPE,
            SIGNATURE_HEADER: f"t={timestamp},v1={sign(self._secret, timestamp, body)}",
        }
        return body, headers

    async def deliver(self, alert: PendingAlert) -> Mapping[str, Any]:
        body, headers = self.request(alert)
        try:
            response = await self._http.post(
                self._url, content=body, headers=headers, timeout=self._timeout_s
            )
        except httpx.HTTPError as exc:
            raise WebhookFailed(f"{type(exc).__name__} while posting the webhook") from None
        if not 200 <= response.status_code < 300:
            raise WebhookFailed(f"the receiver answered HTTP {response.status_code}")
        return {"status": response.status_code, "delivery_id": headers[DELIVERY_HEADER]}
