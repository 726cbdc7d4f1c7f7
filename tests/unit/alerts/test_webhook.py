"""Signed webhooks: HMAC-SHA256 over timestamp + "." + body (Stripe-style), checked by an independent receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest
from pytest_httpx import HTTPXMock

from service.adapters.alerts.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAlertChannel,
    WebhookFailed,
    channel_name,
    verify_signature,
)
from service.application.ports import PendingAlert

URL = "https://integration.example.org/hooks/onco?token=abc"
SECRET = "whsec-test-0123456789"
NOW = datetime(2024, 5, 3, 8, 30, tzinfo=UTC)
ALERT = PendingAlert(
    id=7,
    patient_id="p1",
    patient_key="k" * 16,
    kind="DR",
    payload={"alert_id": "f" * 32, "finding": {"kind": "DR"}, "patient": {"reference": "Patient/p1"}},
    attempts=0,
    channels={},
)


def receiver_accepts(secret: str, headers: httpx.Headers, body: bytes) -> bool:
    """A receiver written from the documented scheme only (stdlib), not from our code."""
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(","))
    if parts["t"] != headers[TIMESTAMP_HEADER]:
        return False
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


@pytest.fixture
async def channel() -> WebhookAlertChannel:
    return WebhookAlertChannel(httpx.AsyncClient(), URL, SECRET, clock=lambda: NOW)


async def test_signed_post_verifies_at_an_independent_receiver(
    httpx_mock: HTTPXMock, channel: WebhookAlertChannel
) -> None:
    httpx_mock.add_response(url=URL, status_code=204)
    detail = await channel.deliver(ALERT)
    (request,) = httpx_mock.get_requests()
    assert receiver_accepts(SECRET, request.headers, request.content)
    assert not receiver_accepts("another-secret", request.headers, request.content)
    body = json.loads(request.content)
    # The delivery id is in the signed body and stable per alert, so receivers can de-duplicate.
    assert body["delivery_id"] == request.headers[DELIVERY_HEADER] == ALERT.payload["alert_id"]
    assert body["data"] == ALERT.payload
    assert request.headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert detail["status"] == 204


async def test_non_2xx_and_transport_errors_fail_for_a_retry(
    httpx_mock: HTTPXMock, channel: WebhookAlertChannel
) -> None:
    httpx_mock.add_response(url=URL, status_code=500)
    with pytest.raises(WebhookFailed, match="HTTP 500"):
        await channel.deliver(ALERT)
    httpx_mock.add_response(url=URL, status_code=302, headers={"Location": "https://elsewhere.example"})
    with pytest.raises(WebhookFailed, match="HTTP 302"):
        await channel.deliver(ALERT)
    httpx_mock.add_exception(httpx.ConnectTimeout("slow"), url=URL)
    with pytest.raises(WebhookFailed, match="ConnectTimeout"):
        await channel.deliver(ALERT)


def test_verify_rejects_tampering_wrong_secret_and_stale_timestamps(channel: WebhookAlertChannel) -> None:
    body, headers = channel.request(ALERT)
    header = headers[SIGNATURE_HEADER]
    now = NOW.timestamp()
    assert verify_signature(SECRET, header, body, now=now)
    assert not verify_signature(SECRET, header, body + b" ", now=now)
    assert not verify_signature("wrong", header, body, now=now)
    assert not verify_signature(SECRET, header, body, now=now + 301)  # replay after the 5 min tolerance
    assert not verify_signature(SECRET, "v1=" + header.split("v1=")[1], body, now=now)  # no timestamp


def test_channel_names_hide_the_url_which_may_hold_credentials() -> None:
    assert "token" not in channel_name(URL)
    assert channel_name(URL).startswith("webhook:")
    assert channel_name(URL) != channel_name(URL.replace("abc", "xyz"))
