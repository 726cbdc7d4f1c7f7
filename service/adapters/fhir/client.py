"""Async FHIR REST client over one shared `httpx.AsyncClient` (docs/architecture.md).

The owner (FastAPI `lifespan`, CLI) creates the `httpx.AsyncClient` with `create_http_client`
(explicit timeout and `httpx.Limits`) and closes it; `FhirClient` never opens or closes it and
takes the FHIR base URL itself (relative paths and `next` links are resolved against it).

- Temporary failures (408, 429, 500, 502, 503, 504, transport errors, timeouts) are retried
  with exponential backoff (`RetryPolicy`). The server's own wait (`server_wait_s`: `Retry-After`
  in seconds or as an HTTP date, the IETF `RateLimit` field `"name";r=0;t=52` or its older
  `limit=, remaining=, reset=` form, `RateLimit-Reset`, `RateLimit-Policy` `w=` when no reset is
  given, `X-RateLimit-Reset` as seconds or epoch) replaces the computed delay. Throttling (429,
  or any answer carrying such a wait) is retried for as long as the total wait of the request
  stays within `max_wait_s`; other temporary failures also stop after `max_attempts`. A wait that
  does not fit in what is left ends the retries at once with `FhirUnavailable(retry_after_s=...)`
  so the caller can reschedule instead of holding a worker. The sleep function is injectable;
  writes pass `on_throttle`, told of every throttling answer (the writer lowers its concurrency).
- Writes (`write_bundle`, `send_entry`) have their own, longer timeout (`write_timeout_s`) and
  are never repeated by the client after the request may have reached the server (a read
  timeout, a dropped connection): that raises `FhirOutcomeUnknown`, and the writer reads the
  server's state again before deciding what to send (its writes are conditional, see writer.py).
- 401 with a token provider: one re-authorisation (`token_provider(True)`), then the request
  is repeated once; it does not count as a retry.
- 404/410 -> `FhirNotFound`; other 4xx and 501 -> `FhirRejected` with the OperationOutcome's
  codes and text; other 5xx -> `FhirUnavailable`. Never the raw body.
- `search` follows `Bundle.link[relation=next]` page by page. A page that is not JSON or not a
  Bundle ends that search; an entry without a resource is skipped; a next link to another
  origin than the base URL is not followed (the bearer token must not leak). Each of these
  is a `DataIssue` in the caller's `issues` list (or `FhirClient.issues`) and counted in
  `FhirClient.skipped`; none of them raises. A page's issues are reported before its resources
  are yielded. Each page is read by `typed.read_search_page`; `search_typed` (the patient
  searches of `FhirMeasurementSource`) yields the usual resource shapes as msgspec Structs
  (`typed.TypedResource`), the same resources, issues and links otherwise.
- `transaction` is retried like any request: its entries are conditional creates, so a
  repeated transaction does not duplicate Observations (see `writer.py`).

Beyond the basics:
- `server_capabilities()` reads the CapabilityStatement once (`capabilities.py`); the source
  picks `_include`s and the Bulk Data operations from it.
- `send()` is one request with all of the above for operations that need their own headers or
  statuses (Bulk Data kick-off `Prefer: respond-async`, 202 status polling); `stream_pages()`
  streams an NDJSON file in pages of lines (never the whole file in memory).
- The bearer token (static or SMART Backend Services, `smart.py`) is only sent to the FHIR
  server's own origin (scheme, host, port): never to a foreign `next` link or export file host.
- CPU per request: requests are built directly (`httpx.Request` + `send`, no client-side URL
  and header merging), their URL parsed once (the same-origin check reuses it) and their
  `Host`/`Content-Length` headers set where httpx would set them (`_build`). The client of
  `create_http_client` (`_LeanAsyncClient`) sends a request that uses no auth, event hooks,
  redirect following or cookies (none of ours do) straight to its transport, skipping the
  layers of `httpx.AsyncClient.send` that would do nothing for it, with the same response;
  over the aiohttp transport (`transport.py`) the body is read in one aiohttp call. This keeps
  the client within the issue's 3x of plain aiohttp with room (`benchmarks/ingest.py`).

Logs carry resource types, statuses and attempts only: never URLs (they hold patient ids),
bodies or tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import httpx
import orjson
import structlog

from service.adapters.fhir.capabilities import ServerCapabilities, parse_capabilities
from service.adapters.fhir.errors import (
    FhirNotFound,
    FhirOutcomeUnknown,
    FhirRejected,
    FhirUnavailable,
    MalformedResource,
    outcome_summary,
)
from service.adapters.fhir.transport import AiohttpBody, AiohttpTransport
from service.adapters.fhir.typed import TypedResource, read_search_page
from service.domain.results import DataIssue

if TYPE_CHECKING:
    from httpx._client import UseClientDefault
    from httpx._types import AuthTypes

__all__ = [
    "FHIR_JSON",
    "RETRYABLE_STATUSES",
    "FhirClient",
    "HttpTransport",
    "RetryPolicy",
    "Sleep",
    "ThrottleListener",
    "TokenProvider",
    "create_http_client",
    "server_wait_s",
    "static_token",
]

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]
# Called with False before requests (may return a cached token), with True after a 401 (must
# fetch a fresh one). SMART Backend Services plugs in here later.
TokenProvider = Callable[[bool], Awaitable[str]]
Sleep = Callable[[float], Awaitable[None]]
# Told the wait of every throttling answer (429, or a temporary failure with a server wait).
ThrottleListener = Callable[[float], None]
QueryParams = Mapping[str, str | Sequence[str]]

FHIR_JSON: Final = "application/fhir+json"
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


HttpTransport = Literal["httpx", "aiohttp"]

# Headers httpx adds to a request built from content (`FhirClient._build` adds them itself).
_AUTO_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
_EMPTY_BODY_LENGTH_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class _NoCookies(CookieJar):
    """A FHIR API sets no session cookies we want: parsing `Set-Cookie` is skipped (CPU per request)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


_HTTPX_LOG: Final = logging.getLogger("httpx")


class _ElapsedStream(httpx.AsyncByteStream):
    """A streamed body that sets `response.elapsed` when closed (as `httpx.AsyncClient.send` does)."""

    def __init__(self, stream: httpx.AsyncByteStream, response: httpx.Response, start: float) -> None:
        self._stream = stream
        self._response = response
        self._start = start

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        self._response.elapsed = timedelta(seconds=time.perf_counter() - self._start)
        await self._stream.aclose()


class _LeanAsyncClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose `send` skips the layers a plain request does not use (CPU per request).

    `httpx.AsyncClient.send` passes every request through an auth-flow generator, a redirect
    loop, the event-hook lists, a stream wrapper and the cookie jar (which builds a
    `urllib.request.Request` per response even when the jar then ignores it). For a request with
    no auth (none given, none on the client, no user:password in the URL), no event hooks,
    redirects not followed and the cookie-less jar of `create_http_client`, those layers change
    nothing, and this `send` hands the request to the transport httpx would choose (its mounts
    included) and returns the same response: status, headers, body decoded by its
    `Content-Encoding` and closed (or left open with `stream=True`), `request`, `next_request` of
    a redirect, `elapsed`, httpx's own log line, the request attached to a `RequestError`.
    Anything else, the first request and a closed client go through `httpx.AsyncClient.send`.
    A body from the aiohttp transport (`AiohttpBody`) is read with one aiohttp `read()` instead of
    httpx's chain of async iterators.
    """

    _opened = False  # set after the first request, which goes through httpx (it opens the client)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: AuthTypes | UseClientDefault | None = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if not (self._opened and self._plain(request, auth, follow_redirects)):
            response = await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
            self._opened = True
            return response
        start = time.perf_counter()
        if "timeout" not in request.extensions:
            request.extensions = dict(**request.extensions, timeout=self.timeout.as_dict())
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError("Attempted to send an sync request with an AsyncClient instance.")
        try:
            response = await self._transport_for_url(request.url).handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        body = response.stream
        if not isinstance(body, httpx.AsyncByteStream):  # httpx asserts this
            raise TypeError("an async transport returned a sync response stream")
        response.request = request
        response.default_encoding = self._default_encoding
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        try:
            if 300 <= response.status_code < 400 and response.has_redirect_location:
                response.next_request = self._build_redirect_request(request, response)
            if stream:
                response.stream = _ElapsedStream(body, response, start)
                return response
            if isinstance(body, AiohttpBody):
                response.stream = httpx.ByteStream(await body.read())
                response.read()  # decodes by Content-Encoding and closes, as `aread` would
            else:
                await response.aread()
            response.elapsed = timedelta(seconds=time.perf_counter() - start)
        except BaseException:
            await response.aclose()
            raise
        return response

    def _plain(
        self,
        request: httpx.Request,
        auth: AuthTypes | UseClientDefault | None,
        follow_redirects: bool | UseClientDefault,
    ) -> bool:
        """No auth, no event hooks, redirects not followed, no cookies, client open."""
        hooks = self.event_hooks
        return (
            (auth is None or (auth is httpx.USE_CLIENT_DEFAULT and self.auth is None))
            and (
                follow_redirects is False
                or (follow_redirects is httpx.USE_CLIENT_DEFAULT and not self.follow_redirects)
            )
            and not hooks["request"]
            and not hooks["response"]
            and isinstance(self.cookies.jar, _NoCookies)
            and not self.is_closed
            and not request.url.userinfo
        )


def create_http_client(
    *,
    timeout_s: float = 10.0,
    connect_timeout_s: float = 5.0,
    max_connections: int = 20,
    max_keepalive_connections: int = 10,
    transport: HttpTransport = "httpx",
) -> httpx.AsyncClient:
    """The one `httpx.AsyncClient` of the application (explicit timeout and limits); the caller closes it.

    It carries no base URL, so the same client can serve other adapters; `FhirClient` gets the
    FHIR base URL itself. `transport="aiohttp"` routes requests through `AiohttpTransport`
    (production: a fraction of the CPU per request, see `transport.py`); the default is httpx's
    own transport, which pytest-httpx patches in the tests.
    """
    return _LeanAsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        ),
        follow_redirects=False,
        cookies=_NoCookies(),
        transport=AiohttpTransport(max_connections=max_connections) if transport == "aiohttp" else None,
    )


def static_token(token: str) -> TokenProvider:
    """A token provider for a fixed bearer token (a 401 then simply fails after one retry)."""

    async def provide(refresh: bool) -> str:
        return token

    return provide


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4  # temporary failures without a server wait
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0  # cap of our own backoff (a server's wait is not capped by it)
    max_wait_s: float = 120.0  # total sleep of one request, throttling included

    def delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1`: base * 2^(attempt-1), capped."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_EPOCH_THRESHOLD_S: Final = 1_000_000_000.0  # an X-RateLimit-Reset above this is a Unix time


def _number(text: str) -> float | None:
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        return None
    return value if value >= 0 else None


def _parameters(member: str) -> dict[str, str]:
    """`"name";r=0;t=52` or `remaining=0` -> {"r": "0", "t": "52"} / {"remaining": "0"}."""
    found: dict[str, str] = {}
    for part in member.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            found[key.strip().lower()] = value.strip()
    return found


def _ratelimit_wait(value: str | None, policy: str | None) -> float | None:
    """Seconds until a quota with nothing left resets, from `RateLimit` (both draft forms)."""
    if not value:
        return None
    members = [_parameters(m) for m in value.split(",")]
    merged = {k: v for m in members for k, v in m.items()}
    if {"remaining", "reset"} & merged.keys() and "r" not in merged:  # older draft: one dictionary
        remaining = _number(merged.get("remaining", "0"))
        reset = _number(merged.get("reset", ""))
        return reset if remaining == 0 else None
    waits = []
    for member in members:
        if _number(member.get("r", "1")) != 0:
            continue
        reset = _number(member.get("t", ""))
        if reset is None and policy:  # no reset given: the policy's window is the longest wait
            reset = max(
                (w for p in policy.split(",") if (w := _number(_parameters(p).get("w", ""))) is not None),
                default=None,
            )
        if reset is not None:
            waits.append(reset)
    return max(waits, default=None)


def server_wait_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the server asks us to wait (module doc), or None when it does not say."""
    retry_after = _retry_after_s(headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    limited = _ratelimit_wait(headers.get("RateLimit"), headers.get("RateLimit-Policy"))
    if limited is not None:
        return limited
    reset = _number(headers.get("RateLimit-Reset") or "")
    if reset is not None:
        return reset
    legacy = _number(headers.get("X-RateLimit-Reset") or "")
    if legacy is not None and legacy > _EPOCH_THRESHOLD_S:
        return max(0.0, legacy - (time.time() if now is None else now))
    return legacy


# Transport errors raised before the request left us: repeating the request is always safe.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class FhirClient:
    """FHIR REST operations over one shared `httpx.AsyncClient` (see module doc)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = anyio.sleep,
        token_provider: TokenProvider | None = None,
        write_timeout_s: float | None = None,
    ) -> None:
        self._http = http
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._base_text = str(self._base)
        self._extensions = {"timeout": http.timeout.as_dict()}
        write_timeout = (
            http.timeout
            if write_timeout_s is None
            else httpx.Timeout(write_timeout_s, connect=http.timeout.connect)
        )
        self._write_extensions = {"timeout": write_timeout.as_dict()}
        self._retry = retry
        self._sleep = sleep
        self._token_provider = token_provider
        self._capabilities: ServerCapabilities | None = None
        self._capabilities_lock = anyio.Lock()
        self.issues: list[DataIssue] = []
        self.skipped = 0

    @property
    def base_url(self) -> str:
        return str(self._base)

    # -- operations --------------------------------------------------------------------------------
    async def read(self, resource_type: str, resource_id: str) -> JsonDict:
        """GET `[base]/<type>/<id>`; `FhirNotFound` for 404/410, `MalformedResource` for a bad body."""
        ref = f"{resource_type}/{resource_id}"
        response = await self._request("GET", ref, resource_type=resource_type, ref=ref)
        body = self._json(response, ref)
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            raise MalformedResource(ref, f"body is not a {resource_type}")
        return body

    def search(
        self,
        resource_type: str,
        params: QueryParams | None = None,
        *,
        issues: list[DataIssue] | None = None,
    ) -> AsyncIterator[JsonDict]:
        """Every resource of a search (JSON dicts), following `next` links; bad pages and entries
        are reported."""
        return self._walk(resource_type, params, issues, typed=False)

    def search_typed(
        self,
        resource_type: str,
        params: QueryParams | None = None,
        *,
        issues: list[DataIssue] | None = None,
    ) -> AsyncIterator[JsonDict | TypedResource]:
        """`search`, with the usual Observations, MedicationAdministrations, MedicationRequests,
        ImagingStudies and BodyStructures as `TypedResource`s (for `inbound.patient_input`; typed.py)."""
        return self._walk(resource_type, params, issues, typed=True)

    async def _walk(
        self, resource_type: str, params: QueryParams | None, issues: list[DataIssue] | None, *, typed: bool
    ) -> AsyncIterator[Any]:
        sink = self.issues if issues is None else issues
        url: str | None = resource_type
        query: QueryParams | None = params
        seen: set[str] = set()
        page = 0
        while url is not None:
            page += 1
            label = f"{resource_type} search page {page}"
            response = await self._request("GET", url, params=query, resource_type=resource_type)
            query = None
            found = read_search_page(response.content, label, typed=typed)
            for issue, counted in found.issues:
                self.skipped += counted
                sink.append(issue)
            if found.ended:
                return
            for resource in found.resources:
                yield resource
            url = found.next_url
            if url is None:
                return
            if url in seen:
                self._report(sink, "malformed-page", "next link repeats an earlier page; search ended", label)
                return
            if not self._same_origin(url):
                self._report(sink, "foreign-next-link", "next link leaves the server; search ended", label)
                return
            seen.add(url)

    async def transaction(self, bundle: JsonDict) -> JsonDict:
        """POST a transaction Bundle to the base URL; the transaction-response Bundle."""
        content = orjson.dumps(bundle, default=_json_default)
        response = await self._request(
            "POST", "", content=content, resource_type="Bundle", content_type=FHIR_JSON
        )
        body = self._json(response, "transaction-response")
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise MalformedResource("transaction-response", "body is not a Bundle")
        return body

    async def write_bundle(
        self, bundle: JsonDict, *, on_throttle: ThrottleListener | None = None
    ) -> JsonDict:
        """POST a transaction or batch Bundle as a write (write timeout, never repeated blind; module doc)."""
        content = orjson.dumps(bundle, default=_json_default)
        response = await self._request(
            "POST",
            "",
            content=content,
            resource_type="Bundle",
            content_type=FHIR_JSON,
            write=True,
            on_throttle=on_throttle,
        )
        body = self._json(response, f"{bundle.get('type')}-response")
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise MalformedResource(f"{bundle.get('type')}-response", "body is not a Bundle")
        return body

    async def send_entry(self, entry: JsonDict, *, on_throttle: ThrottleListener | None = None) -> JsonDict:
        """One Bundle entry's request as a plain REST interaction; its answer as a response entry.

        `POST` with `ifNoneExist` becomes `If-None-Exist`, `PUT` with `ifMatch` becomes `If-Match`.
        A 4xx answer is returned (`response.status` and `response.outcome`) rather than raised, as a
        batch would answer it; 401 (after re-authorisation) and 403 too, for the caller to explain.
        """
        request = entry["request"]
        headers: dict[str, str] = {"Prefer": "return=minimal"}
        if request.get("ifNoneExist"):
            headers["If-None-Exist"] = request["ifNoneExist"]
        if request.get("ifMatch"):
            headers["If-Match"] = request["ifMatch"]
        resource_type = str(request["url"]).split("/", 1)[0].split("?", 1)[0]
        response = await self._request(
            request["method"],
            request["url"],
            content=orjson.dumps(entry["resource"], default=_json_default),
            resource_type=resource_type,
            content_type=FHIR_JSON,
            extra_headers=headers,
            write=True,
            on_throttle=on_throttle,
            rejections_returned=True,
        )
        answer: JsonDict = {"status": f"{response.status_code} {response.reason_phrase}".strip()}
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        body = self._json_or_none(response)
        if not location and isinstance(body, dict) and isinstance(body.get("id"), str):
            location = f"{body.get('resourceType', resource_type)}/{body['id']}"
        if location:
            answer["location"] = location
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            answer["outcome"] = body
        return {"response": answer}

    async def capabilities(self) -> JsonDict:
        """GET `[base]/metadata` (the CapabilityStatement)."""
        response = await self._request("GET", "metadata", resource_type="CapabilityStatement")
        body = self._json(response, "metadata")
        if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
            raise MalformedResource("metadata", "body is not a CapabilityStatement")
        return body

    async def server_capabilities(self) -> ServerCapabilities:
        """The server's capabilities, read once from `metadata` and cached.

        An unreachable or unusable statement gives `ServerCapabilities.unknown()` (not cached,
        so the next call asks again): the reader then uses its portable queries.
        """
        if self._capabilities is not None:
            return self._capabilities
        async with self._capabilities_lock:
            if self._capabilities is None:
                try:
                    found = parse_capabilities(await self.capabilities())
                except (FhirUnavailable, FhirRejected, FhirNotFound, MalformedResource) as exc:
                    log.warning("fhir.capabilities_unknown", error=type(exc).__name__)
                    return ServerCapabilities.unknown()
                log.info(
                    "fhir.capabilities",
                    types=len(found.types),
                    observation_focus_include=found.offers_include("Observation:focus"),
                    patient_export=found.offers_operation("export", "Patient"),
                )
                self._capabilities = found
            return self._capabilities

    async def send(
        self,
        method: str,
        url: str,
        *,
        resource_type: str,
        params: QueryParams | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        accept: str = FHIR_JSON,
    ) -> httpx.Response:
        """One request with the client's retries, re-authorisation and errors; any 2xx/3xx is returned.

        For operations that need headers or statuses of their own (Bulk Data kick-off and status
        polling: `Prefer: respond-async`, 202 + `Content-Location`).
        """
        return await self._request(
            method,
            url,
            resource_type=resource_type,
            params=params,
            content=content,
            content_type=content_type,
            extra_headers=headers,
            accept=accept,
        )

    async def stream_pages(
        self, url: str, *, page_lines: int, authorise: bool = True, accept: str = "application/fhir+ndjson"
    ) -> AsyncIterator[list[bytes]]:
        """The non-empty lines of an NDJSON file, in pages of at most `page_lines` raw lines.

        The body is streamed: at most one network chunk plus one page of lines is held. Opening
        the stream is retried like any request; a failure after the first byte raises
        `FhirUnavailable` (the caller restarts the file). The bearer token is sent only when
        `authorise` is set and the file is on the FHIR server's origin.
        """
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": accept}
            if authorise and self._token_provider is not None and self._same_origin(url):
                headers["Authorization"] = f"Bearer {await self._token_provider(False)}"
            try:
                async with self._http.stream("GET", self._base.join(url), headers=headers) as response:
                    status = response.status_code
                    if status in RETRYABLE_STATUSES and attempt < self._retry.max_attempts:
                        retry_after = _retry_after_s(response.headers.get("Retry-After"))
                        await self._sleep(
                            retry_after
                            if retry_after is not None and retry_after <= self._retry.max_delay_s
                            else self._retry.delay(attempt)
                        )
                        continue
                    if status >= 400:
                        await response.aread()
                        raise self._error(response, "Binary", url if not self._same_origin(url) else None)
                    page: list[bytes] = []
                    rest = b""
                    async for chunk in response.aiter_bytes():
                        lines = (rest + chunk).split(b"\n")
                        rest = lines.pop()
                        for line in lines:
                            if line.strip():
                                page.append(line)
                                if len(page) >= page_lines:
                                    yield page
                                    page = []
                    if rest.strip():
                        page.append(rest)
                    if page:
                        yield page
                    return
            except httpx.TransportError as exc:
                if attempt >= self._retry.max_attempts:
                    raise FhirUnavailable(f"NDJSON download: {type(exc).__name__}") from exc
                log.info("fhir.retry", resource_type="Binary", error=type(exc).__name__, attempt=attempt)
                await self._sleep(self._retry.delay(attempt))

    def take_issues(self) -> list[DataIssue]:
        """Issues reported to the client-wide list since the last call (then cleared)."""
        taken, self.issues = self.issues, []
        return taken

    # -- plumbing -------------------------------------------------------------------------------------
    def _report(self, sink: list[DataIssue], code: str, message: str, where: str) -> None:
        self.skipped += 1
        sink.append(DataIssue("warning", code, message, where))

    def _absolute(self, url: str, params: QueryParams | None) -> httpx.URL:
        """`url` (relative to the base, or absolute) with `params` appended, parsed once."""
        text = url if url.startswith(("http://", "https://")) else self._base_text + url
        if not params:
            return httpx.URL(text)
        if "?" in text:
            return httpx.URL(text).copy_merge_params(params)
        return httpx.URL(text, params=params)

    def _build(
        self,
        method: str,
        target: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        extensions: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """`httpx.Request(method, target, content=content, headers=headers)`, built more cheaply.

        A pre-built request skips the client's URL and header merging. Beyond that, the headers
        httpx would add itself (`Host`; `Content-Length` of a body, or 0 for a POST, PUT or PATCH
        without one) are put in the same places here, so httpx need not scan the headers and
        parse them twice; headers that set any of those names themselves go through httpx.
        """
        extensions = self._extensions if extensions is None else extensions
        if not _AUTO_HEADERS.isdisjoint(name.lower() for name in headers):
            return httpx.Request(method, target, content=content, headers=headers, extensions=extensions)
        raw = [("Host", target.netloc.decode("ascii"))]
        if not content and method.upper() in _EMPTY_BODY_LENGTH_METHODS:
            raw.append(("Content-Length", "0"))
        raw.extend(headers.items())
        if content:
            raw.append(("Content-Length", str(len(content))))
        request = httpx.Request(
            method, target, headers=raw, extensions=extensions, stream=httpx.ByteStream(content or b"")
        )
        request.read()  # `request.content`, as for `content=`
        return request

    def _same_origin(self, url: str, parsed: httpx.URL | None = None) -> bool:
        """Whether `url` (relative, or absolute; `parsed` if already parsed) is on the base URL's origin."""
        if not url.startswith(("http://", "https://")):
            return True
        target = httpx.URL(url) if parsed is None else parsed
        base = self._base
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    @staticmethod
    def _json(response: httpx.Response, label: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise MalformedResource(label, "body is not JSON") from None

    async def _request(
        self,
        method: str,
        url: str,
        *,
        resource_type: str,
        params: QueryParams | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        ref: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        accept: str = FHIR_JSON,
        write: bool = False,
        on_throttle: ThrottleListener | None = None,
        rejections_returned: bool = False,
    ) -> httpx.Response:
        attempt = 0
        waited = 0.0
        refresh_token = False
        reauthorised = False
        target = self._absolute(url, params)
        authorise = self._token_provider is not None and self._same_origin(url, target)
        extensions = self._write_extensions if write else self._extensions
        while True:
            attempt += 1
            headers = {"Accept": accept}
            if content_type is not None:
                headers["Content-Type"] = content_type
            if extra_headers:
                headers.update(extra_headers)
            if authorise and self._token_provider is not None:
                headers["Authorization"] = f"Bearer {await self._token_provider(refresh_token)}"
                refresh_token = False
            try:
                response = await self._http.send(self._build(method, target, headers, content, extensions))
            except httpx.TransportError as exc:
                if write and not isinstance(exc, _NOT_SENT):
                    log.warning(
                        "fhir.write_outcome_unknown", resource_type=resource_type, error=type(exc).__name__
                    )
                    raise FhirOutcomeUnknown(f"{resource_type}: {type(exc).__name__}") from exc
                delay = self._retry.delay(attempt)
                if attempt >= self._retry.max_attempts or waited + delay > self._retry.max_wait_s:
                    log.warning("fhir.unavailable", resource_type=resource_type, error=type(exc).__name__)
                    raise FhirUnavailable(f"{resource_type}: {type(exc).__name__}") from exc
                log.info("fhir.retry", resource_type=resource_type, error=type(exc).__name__, attempt=attempt)
                waited += delay
                await self._sleep(delay)
                continue
            status = response.status_code
            if status == 401 and authorise and not reauthorised:
                reauthorised = True
                refresh_token = True
                attempt -= 1  # re-authorisation is not a retry
                log.info("fhir.reauthorise", resource_type=resource_type)
                continue
            if status in RETRYABLE_STATUSES:
                asked = server_wait_s(response.headers)
                throttled = status == 429 or asked is not None
                delay = asked if asked is not None else self._retry.delay(attempt)
                out_of_attempts = attempt >= self._retry.max_attempts and not throttled
                if out_of_attempts or waited + delay > self._retry.max_wait_s:
                    _, text = outcome_summary(self._json_or_none(response))
                    log.warning(
                        "fhir.unavailable",
                        resource_type=resource_type,
                        status=status,
                        attempt=attempt,
                        waited_s=round(waited, 1),
                    )
                    raise FhirUnavailable(
                        text or f"{resource_type}: HTTP {status}", status=status, retry_after_s=asked
                    )
                if throttled and on_throttle is not None:
                    on_throttle(delay)
                log.info(
                    "fhir.retry", resource_type=resource_type, status=status, attempt=attempt, delay_s=delay
                )
                waited += delay
                await self._sleep(delay)
                continue
            if status >= 400 and not (rejections_returned and status < 500 and status not in (404, 410)):
                raise self._error(response, resource_type, ref)
            return response

    @staticmethod
    def _json_or_none(response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None

    def _error(self, response: httpx.Response, resource_type: str, ref: str | None) -> Exception:
        status = response.status_code
        issue_codes, text = outcome_summary(self._json_or_none(response))
        log.warning("fhir.error", resource_type=resource_type, status=status, issue_codes=list(issue_codes))
        if status in (404, 410):
            return FhirNotFound(ref or resource_type, text or f"{resource_type} not found")
        if status < 500 or status == 501:
            return FhirRejected(issue_codes, text or f"{resource_type}: HTTP {status}", status=status)
        return FhirUnavailable(text or f"{resource_type}: HTTP {status}", status=status)
