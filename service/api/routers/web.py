"""The pages the service serves to browsers: Swagger UI (`/docs`) and ReDoc (`/redoc`).

Offline by construction: every script, style and font comes from `service/api/static/` on the
service's own origin. The third-party bundles are vendored from the npm registry by
`scripts/web-assets.sh` (versions and hashes locked in `web/package-lock.json`) into
`static/vendor/`; a checkout without them answers 503 problem+json naming the script instead of a
blank page. Each page carries a Content-Security-Policy that lets the browser load nothing from
another origin, so a forgotten CDN link fails loudly in tests instead of silently in a hospital.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.application.errors import NotConfigured

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
VENDOR_DIR: Final = STATIC_DIR / "vendor"

# Same origin only. Swagger UI and ReDoc set inline styles (style attributes, styled-components)
# and ReDoc runs its search index in a blob: worker; scripts stay 'self' only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)


class BrowserAssetsMissing(NotConfigured):
    problem_type = "/problems/browser-assets-missing"
    title = "Browser assets are not built"


def static_files() -> StaticFiles:
    """The `/static` mount: our page code plus the vendored bundles."""
    return StaticFiles(directory=STATIC_DIR)


def page(name: str, *, needs: str | None = None) -> FileResponse:
    """An HTML page from `static/`, refused with 503 when the vendored bundle it loads is missing."""
    if needs is not None and not (VENDOR_DIR / needs).is_file():
        raise BrowserAssetsMissing(f"static/vendor/{needs} is missing; run `bash scripts/web-assets.sh`")
    return FileResponse(
        STATIC_DIR / name,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it on every page; answering keeps their consoles free of 404s."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/docs")
async def swagger_ui() -> FileResponse:
    return page("docs.html", needs="swagger-ui/swagger-ui-bundle.js")


@router.get("/redoc")
async def redoc() -> FileResponse:
    return page("redoc.html", needs="redoc/redoc.standalone.js")
