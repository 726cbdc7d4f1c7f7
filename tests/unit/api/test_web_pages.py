"""Swagger UI and ReDoc are served from the service's own origin, never from a CDN.

The pages are the vendored bundles of `web/package-lock.json` (scripts/web-assets.sh); every
`src`/`href` must be a same-origin path and the Content-Security-Policy must forbid other origins,
so that the documentation works on a hospital network without internet access.
"""

from __future__ import annotations

import re

import httpx
import pytest

from service.api.routers import web

pytestmark = pytest.mark.skipif(
    not (web.VENDOR_DIR / "swagger-ui" / "swagger-ui-bundle.js").is_file(),
    reason="browser assets not built: bash scripts/web-assets.sh (scripts/test.sh does it)",
)

ASSET_LINK = re.compile(r"""(?:src|href|spec-url)="([^"]+)\"""")


@pytest.mark.parametrize(
    ("path", "bundle"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
async def test_documentation_page_loads_only_same_origin_assets(
    client: httpx.AsyncClient, path: str, bundle: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    links = ASSET_LINK.findall(page.text)
    assert any(link.endswith(bundle) for link in links)
    for link in links:
        assert link.startswith("/"), f"{path} links {link} outside the service's origin"
        assert not link.startswith("//")
        assert (await client.get(link)).status_code == 200, link
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy


async def test_openapi_document_the_pages_read_is_served(client: httpx.AsyncClient) -> None:
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "oncoresponse"


async def test_missing_bundle_is_a_503_problem_naming_the_script(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(web, "VENDOR_DIR", tmp_path)
    answer = await client.get("/redoc")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "scripts/web-assets.sh" in answer.json()["detail"]
