"""`FhirSubscriptionRegistry`: the service's own R4 Subscriptions on the FHIR server.

One criteria-based rest-hook Subscription per configured criteria (FHIR R4 Subscription), all
pointing at our hook (`ONCORESPONSE_SUBSCRIPTION_ENDPOINT`) with the shared bearer token in
`channel.header`. Ours are found by `Subscription?url=<endpoint>` (the search parameter on
`channel.endpoint`). `ensure()` (at start) creates the missing ones when registering is on and
asks again (`status: requested`) for those the server set to `error` or `off`; `states()` reads
them back for the monitor (readiness, metrics, polling fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from service.adapters.fhir.client import FhirClient
from service.application.ports import SubscriptionState

__all__ = ["FhirSubscriptionRegistry", "PayloadForm"]

FHIR_JSON = "application/fhir+json"
REASON = "oncoresponse: re-assess tumour response when lesion measurements or imaging reports change"
PayloadForm = Literal["empty", "full-resource"]


def _state(resource: dict[str, Any]) -> SubscriptionState:
    error = resource.get("error")
    return SubscriptionState(
        subscription_id=str(resource.get("id", "")),
        criteria=str(resource.get("criteria", "")),
        status=str(resource.get("status", "")),
        error=error if isinstance(error, str) else None,
    )


class FhirSubscriptionRegistry:
    def __init__(
        self,
        client: FhirClient,
        *,
        endpoint: str,
        hook_token: str,
        criteria: Sequence[str],
        payload: PayloadForm,
        register: bool,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._hook_token = hook_token
        self._criteria = tuple(criteria)
        self._payload = payload
        self._register = register

    def subscription(self, criteria: str) -> dict[str, Any]:
        """The Subscription resource the service asks for, for one criteria."""
        channel: dict[str, Any] = {
            "type": "rest-hook",
            "endpoint": self._endpoint,
            "header": [f"Authorization: Bearer {self._hook_token}"],
        }
        if self._payload == "full-resource":
            channel["payload"] = FHIR_JSON
        return {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": REASON,
            "criteria": criteria,
            "channel": channel,
        }

    async def _ours(self) -> list[dict[str, Any]]:
        found = []
        async for resource in self._client.search("Subscription", {"url": self._endpoint}):
            channel = resource.get("channel")
            if (
                resource.get("resourceType") == "Subscription"
                and isinstance(channel, dict)
                and channel.get("endpoint") == self._endpoint
            ):
                found.append(resource)
        return found

    async def states(self) -> Sequence[SubscriptionState]:
        return [_state(r) for r in await self._ours()]

    async def ensure(self) -> Sequence[SubscriptionState]:
        existing = {str(r.get("criteria")): r for r in await self._ours()}
        if self._register:
            for criteria in self._criteria:
                resource = existing.get(criteria)
                if resource is None:
                    await self._write("POST", "Subscription", self.subscription(criteria))
                elif resource.get("status") in ("error", "off"):
                    wanted = {**self.subscription(criteria), "id": resource["id"]}
                    await self._write("PUT", f"Subscription/{resource['id']}", wanted)
        return await self.states()

    async def _write(self, method: str, url: str, resource: dict[str, Any]) -> None:
        await self._client.send(
            method, url, resource_type="Subscription", content=orjson.dumps(resource), content_type=FHIR_JSON
        )
