"""An httpx transport over one `aiohttp.ClientSession` (client CPU per request).

Why: `benchmarks/ingest.py` measures httpx's own async transport (httpcore) at several times
the CPU per request of an aiohttp client at the same concurrency, over the 3x the issue allows;
routing httpx through aiohttp keeps the httpx API (timeouts, `httpx.Response`, pytest-httpx in
the tests) and spends aiohttp's CPU per request. The figures are in the benchmark's output.

Decisions:
- The session is created lazily inside the running event loop (aiohttp binds to it) and closed
  by `aclose()` (that is, by `httpx.AsyncClient.aclose()`).
- `auto_decompress=False`: aiohttp hands over the raw body and httpx decodes it by its
  `Content-Encoding`, exactly as with its own transport (no double decoding).
- httpx's per-request timeouts (`request.extensions["timeout"]`) become aiohttp's
  `sock_connect`/`sock_read`; aiohttp errors become the httpx exceptions the client retries on
  (`ConnectTimeout`, `ReadTimeout`, `ConnectError`, `ReadError`, `RemoteProtocolError`), also
  while the body is streamed.
- Redirects are never followed here (the FHIR client does not follow them either).
- CPU per request: the response body is an `AiohttpBody`; besides httpx's chunk iteration it
  offers `read()`, aiohttp's own one-call read of the whole body, which `create_http_client`'s
  client uses for non-streamed requests instead of httpx's chain of async iterators. The
  `aiohttp.ClientTimeout` of each distinct timeout setting is built once.
- Tests use httpx's default transport (`create_http_client(transport="httpx")`), which
  pytest-httpx patches; production picks this one through `ONCORESPONSE_FHIR_HTTP_TRANSPORT`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpBody", "AiohttpTransport"]

_CHUNK: Final = 64 * 1024
# Hop-by-hop or computed headers that aiohttp sets itself.
_SKIPPED_HEADERS: Final = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def _translate(exc: BaseException, request: httpx.Request, *, connecting: bool) -> Exception:
    """The httpx exception for an aiohttp/asyncio one (what `FhirClient` retries on)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timeout", request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError) or (isinstance(exc, TimeoutError) and not connecting):
        return httpx.ReadTimeout(str(exc) or "read timeout", request=request)
    if isinstance(exc, TimeoutError):  # aiohttp's `connect` (pool) timeout
        return httpx.PoolTimeout(str(exc) or "pool timeout", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.ReadError(str(exc) or type(exc).__name__, request=request)


class AiohttpBody(httpx.AsyncByteStream):
    """The body of an aiohttp response as an httpx stream; `read()` takes all of it in one call."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, self._request, connecting=False) from exc

    async def read(self) -> bytes:
        """The whole raw body (still `Content-Encoding` encoded); the connection goes back to the pool."""
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, self._request, connecting=False) from exc
        finally:
            self._response.release()

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncBaseTransport` sending every request through one `aiohttp.ClientSession`."""

    def __init__(self, *, max_connections: int = 20, keepalive_timeout_s: float = 15.0) -> None:
        self._max_connections = max_connections
        self._keepalive_timeout_s = keepalive_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=self._keepalive_timeout_s,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        limits: dict[str, Any] = request.extensions.get("timeout", {})
        key = (limits.get("connect"), limits.get("read"), limits.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= 64:  # settings give a handful; never grow without bound
                self._timeouts.clear()
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _SKIPPED_HEADERS
        ]
        try:
            body = request.content  # bytes bodies are read when the request is built
        except httpx.RequestNotRead:
            body = await request.aread()
        try:
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx has already encoded it
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, request, connecting=True) from exc
        except asyncio.CancelledError:
            raise
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=AiohttpBody(response, request),
            extensions={"http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode()}
            if response.version is not None
            else {},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
