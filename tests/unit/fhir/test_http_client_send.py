"""The HTTP client of `create_http_client`: its short `send` path gives httpx's own response.

`_LeanAsyncClient.send` skips the layers of `httpx.AsyncClient.send` that a plain request does
not use (CPU per request). These tests hold it to httpx's behaviour: the same request
sent through `httpx.AsyncClient.send` (called on the same client) and through the short path
gives the same response, and every request that needs one of the skipped layers still gets it.
pytest-httpx drives httpx's transport; a loopback aiohttp server drives `AiohttpTransport` (and
the gzip case: a gzip answer from pytest-httpx fails to decode in httpx's own `send` as well).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
from aiohttp import web
from pytest_httpx import HTTPXMock, IteratorStream

from service.adapters.fhir.client import FhirClient, create_http_client, static_token
from tests.unit.fhir.conftest import serving

BASE = "https://fhir.example.org/r4"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(timeout_s=2.0) as client:
        yield client


def snapshot(response: httpx.Response) -> dict[str, object]:
    """Everything a caller reads from a finished response."""
    next_request = response.next_request
    return {
        "status": response.status_code,
        "headers": [(k, v) for k, v in response.headers.multi_items() if k != "date"],  # moves per second
        "content": response.content,
        "http_version": response.http_version,
        "reason": response.reason_phrase,
        "encoding": response.encoding,
        "closed": response.is_closed,
        "history": response.history,
        "next": None if next_request is None else (next_request.method, str(next_request.url)),
        "elapsed_is_timedelta": isinstance(response.elapsed, timedelta),
    }


async def warm_up(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    """The first request of a client goes through httpx (it opens the client)."""
    httpx_mock.add_response(url=f"{BASE}/metadata")
    await http.get(f"{BASE}/metadata")


# --- the short path gives httpx's response ---------------------------------------------------------
CASES = [
    pytest.param("GET", {"content": b'{"resourceType":"Patient","id":"p1"}'}, id="json-200"),
    pytest.param(
        "POST",
        {"status_code": 201, "content": b'{"resourceType":"Bundle"}', "headers": {"ETag": 'W/"1"'}},
        id="post-201",
    ),
    pytest.param("GET", {"status_code": 302, "headers": {"Location": f"{BASE}/Patient/p2"}}, id="redirect"),
    pytest.param(
        "GET",
        {"status_code": 404, "content": b'{"resourceType":"OperationOutcome","issue":[]}'},
        id="not-found",
    ),
    pytest.param("GET", {"status_code": 204}, id="no-content"),
]


@pytest.mark.parametrize(("method", "answer"), CASES)
async def test_short_path_response_equals_httpx_response(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, method: str, answer: dict[str, object]
) -> None:
    await warm_up(httpx_mock, http)
    url = f"{BASE}/Patient/p1"
    httpx_mock.add_response(url=url, method=method, **answer)  # type: ignore[arg-type]
    httpx_mock.add_response(url=url, method=method, **answer)  # type: ignore[arg-type]
    content = b'{"a":1}' if method == "POST" else None
    by_httpx = await httpx.AsyncClient.send(http, httpx.Request(method, url, content=content))
    short = await http.send(httpx.Request(method, url, content=content))
    assert snapshot(short) == snapshot(by_httpx)


async def test_short_path_skips_the_cookie_jar_and_auth_flow(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The layers it skips are the CPU it saves: after the first request neither runs.
    await warm_up(httpx_mock, http)
    calls: list[str] = []
    monkeypatch.setattr(httpx.Cookies, "extract_cookies", lambda self, response: calls.append("cookies"))
    original_flow = httpx.Auth.async_auth_flow

    def flow(self: httpx.Auth, request: httpx.Request) -> object:
        calls.append("auth")
        return original_flow(self, request)

    monkeypatch.setattr(httpx.Auth, "async_auth_flow", flow)
    for _ in range(3):
        httpx_mock.add_response(url=f"{BASE}/Patient/p1", json={"resourceType": "Patient"})
        assert (await http.get(f"{BASE}/Patient/p1")).json() == {"resourceType": "Patient"}
    assert calls == []
    httpx_mock.add_response(url=f"{BASE}/Patient/p1")
    await httpx.AsyncClient.send(http, httpx.Request("GET", f"{BASE}/Patient/p1"))
    assert calls == ["auth", "cookies"]  # httpx's own send runs both


async def test_streamed_response_stays_open_until_read(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    await warm_up(httpx_mock, http)
    httpx_mock.add_response(url=f"{BASE}/file.ndjson", stream=IteratorStream([b'{"a":1}\n', b'{"b":2}\n']))
    async with http.stream("GET", f"{BASE}/file.ndjson") as response:
        assert not response.is_closed
        with pytest.raises(RuntimeError, match="elapsed"):
            _ = response.elapsed
        assert [chunk async for chunk in response.aiter_bytes()] == [b'{"a":1}\n', b'{"b":2}\n']
    assert response.is_closed
    assert response.elapsed >= timedelta(0)


async def test_request_without_timeout_gets_the_client_timeout(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    await warm_up(httpx_mock, http)
    httpx_mock.add_response(url=f"{BASE}/Patient/p1")
    await http.send(httpx.Request("GET", f"{BASE}/Patient/p1"))
    assert httpx_mock.get_requests()[-1].extensions["timeout"] == http.timeout.as_dict()


async def test_transport_error_carries_its_request() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200)
        raise httpx.ConnectError("refused")  # without a request, as httpx's own transport raises it

    async with create_http_client() as http:
        http._transport = httpx.MockTransport(answer)
        await http.get(f"{BASE}/metadata")  # httpx's path; the next request takes the short one
        request = httpx.Request("GET", f"{BASE}/Patient/p1")
        with pytest.raises(httpx.ConnectError) as caught:
            await http.send(request)
        assert caught.value.request is request


# --- what needs httpx's layers still gets them -----------------------------------------------------
async def test_client_auth_is_applied(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    await warm_up(httpx_mock, http)
    http.auth = httpx.BasicAuth("user", "secret")
    httpx_mock.add_response(url=f"{BASE}/Patient/p1")
    await http.get(f"{BASE}/Patient/p1")
    assert httpx_mock.get_requests()[-1].headers["Authorization"].startswith("Basic ")


async def test_credentials_in_the_url_are_applied(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    await warm_up(httpx_mock, http)
    httpx_mock.add_response(url="https://user:secret@fhir.example.org/r4/Patient/p1")
    await http.get("https://user:secret@fhir.example.org/r4/Patient/p1")
    assert httpx_mock.get_requests()[-1].headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize("kind", ["request", "response"])
async def test_event_hooks_run(httpx_mock: HTTPXMock, http: httpx.AsyncClient, kind: str) -> None:
    await warm_up(httpx_mock, http)
    seen: list[str] = []

    async def hook(message: httpx.Request | httpx.Response) -> None:
        seen.append(type(message).__name__)

    http.event_hooks = {kind: [hook]}
    httpx_mock.add_response(url=f"{BASE}/Patient/p1")
    await http.get(f"{BASE}/Patient/p1")
    assert seen == [kind.capitalize()]


async def test_redirect_is_followed_when_asked(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    await warm_up(httpx_mock, http)
    httpx_mock.add_response(url=f"{BASE}/old", status_code=301, headers={"Location": f"{BASE}/new"})
    httpx_mock.add_response(url=f"{BASE}/new", content=b"here")
    response = await http.get(f"{BASE}/old", follow_redirects=True)
    assert (response.status_code, response.content, len(response.history)) == (200, b"here", 1)


async def test_a_cookie_jar_given_later_keeps_cookies(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    await warm_up(httpx_mock, http)
    http.cookies = httpx.Cookies()  # an ordinary jar: cookies are httpx's business again
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", headers={"Set-Cookie": "session=abc; Path=/"})
    await http.get(f"{BASE}/Patient/p1")
    assert http.cookies.get("session") == "abc"


async def test_closed_client_refuses_to_send(httpx_mock: HTTPXMock) -> None:
    http = create_http_client()
    await warm_up(httpx_mock, http)
    await http.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await http.get(f"{BASE}/Patient/p1")


async def test_bearer_token_goes_only_to_the_servers_origin(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    # The same-origin check reads the URL parsed for the request (one parse per request).
    client = FhirClient(http, BASE, token_provider=static_token("t0ken"))
    httpx_mock.add_response(url=f"{BASE}/Binary/1")
    httpx_mock.add_response(url="https://files.example.net/Binary/1")
    httpx_mock.add_response(url="https://fhir.example.org:8443/r4/Binary/1")
    await client.send("GET", f"{BASE}/Binary/1", resource_type="Binary")
    await client.send("GET", "https://files.example.net/Binary/1", resource_type="Binary")
    await client.send("GET", "https://fhir.example.org:8443/r4/Binary/1", resource_type="Binary")
    sent = [r.headers.get("Authorization") for r in httpx_mock.get_requests()]
    assert sent == ["Bearer t0ken", None, None]


# --- FhirClient builds the request httpx would build -----------------------------------------------
BUILDS = [
    pytest.param("GET", None, {"Accept": "application/fhir+json"}, id="get"),
    pytest.param(
        "POST",
        b'{"resourceType":"Bundle"}',
        {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"},
        id="post-body",
    ),
    pytest.param("POST", None, {"Accept": "application/fhir+json"}, id="post-none"),
    pytest.param("POST", b"", {"Accept": "application/fhir+json"}, id="post-empty"),
    pytest.param("put", b"{}", {"Accept": "application/fhir+json", "Authorization": "Bearer t"}, id="put"),
    pytest.param("DELETE", None, {"Accept": "application/fhir+json", "Prefer": "respond-async"}, id="delete"),
    pytest.param("GET", None, {"Accept": "application/fhir+json", "host": "other.example"}, id="own-host"),
    pytest.param("POST", b"{}", {"Accept": "*/*", "Content-Length": "2"}, id="own-length"),
    pytest.param("POST", b"{}", {"Accept": "*/*", "transfer-encoding": "chunked"}, id="own-encoding"),
]


@pytest.mark.parametrize(("method", "content", "headers"), BUILDS)
@pytest.mark.parametrize(
    "url", [f"{BASE}/Patient/p1", "http://127.0.0.1:8080/fhir/x?a=1", "https://[::1]:443/r4/"]
)
async def test_fhir_client_builds_the_request_httpx_builds(
    http: httpx.AsyncClient, method: str, content: bytes | None, headers: dict[str, str], url: str
) -> None:
    client = FhirClient(http, BASE)
    target = httpx.URL(url)
    ours = client._build(method, target, dict(headers), content)
    by_httpx = httpx.Request(method, target, content=content, headers=headers, extensions=client._extensions)
    assert ours.method == by_httpx.method
    assert ours.url == by_httpx.url
    assert ours.headers.raw == by_httpx.headers.raw
    assert ours.content == by_httpx.content
    assert ours.extensions == by_httpx.extensions
    assert b"".join([chunk async for chunk in ours.stream]) == (content or b"")


# --- over the aiohttp transport --------------------------------------------------------------------
BIG = b"x" * (600 * 1024)  # far more than arrives with the headers
SMALL = b'{"resourceType":"Bundle","type":"searchset"}'


@pytest.fixture
async def loopback() -> AsyncIterator[str]:
    """A real aiohttp server on 127.0.0.1: plain, large, gzip, empty, cut-off and slow bodies."""

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=SMALL, content_type="application/fhir+json")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG)

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(SMALL), headers={"Content-Encoding": "gzip"})

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"0123456789")
        assert request.transport is not None
        request.transport.close()  # the server goes away mid-body
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(body=SMALL)

    app = web.Application()
    for path, handler in [
        ("/small", small),
        ("/big", big),
        ("/gzip", zipped),
        ("/empty", empty),
        ("/cut", cut),
        ("/slow", slow),
    ]:
        app.router.add_get(path, handler)
    async with serving(app) as base:
        yield base


async def test_aiohttp_bodies_read_in_one_call_equal_httpx_reads(loopback: str) -> None:
    # max_connections=1: every body must give its connection back, or the next request hangs.
    async with create_http_client(transport="aiohttp", max_connections=1, timeout_s=2.0) as http:
        await http.get(f"{loopback}/small")
        for path, expected in [("/small", SMALL), ("/big", BIG), ("/gzip", SMALL), ("/empty", b"")]:
            by_httpx = await httpx.AsyncClient.send(http, httpx.Request("GET", f"{loopback}{path}"))
            short = await asyncio.wait_for(http.get(f"{loopback}{path}"), 5)
            assert short.content == expected
            assert snapshot(short) == snapshot(by_httpx)
            async with http.stream("GET", f"{loopback}{path}") as streamed:
                assert b"".join([c async for c in streamed.aiter_bytes()]) == expected


async def test_aiohttp_body_cut_off_is_a_transport_error(loopback: str) -> None:
    # A transport error is what FhirClient retries on.
    async with create_http_client(transport="aiohttp", timeout_s=2.0) as http:
        await http.get(f"{loopback}/small")
        with pytest.raises(httpx.TransportError):
            await http.get(f"{loopback}/cut")
        assert (await http.get(f"{loopback}/small")).content == SMALL  # the pool recovers


async def test_aiohttp_read_timeout_follows_each_request(loopback: str) -> None:
    # The transport builds each distinct timeout once and reuses it: a request's own value counts.
    async with create_http_client(transport="aiohttp", timeout_s=2.0) as http:
        assert orjson.loads((await http.get(f"{loopback}/slow")).content)["resourceType"] == "Bundle"
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{loopback}/slow", timeout=httpx.Timeout(2.0, read=0.1))
        assert (await http.get(f"{loopback}/slow")).content == SMALL
