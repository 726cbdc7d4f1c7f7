"""Swagger UI and ReDoc render in a browser with nothing from another origin (offline by construction).

A hospital network often has no internet access: a page that loads its script from a CDN is blank
there. The pages' Content-Security-Policy would block such a load, so a console error or a request
off the service's origin fails these tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import RunningService, check_clean, needs_assets, needs_browser, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet"), needs_browser, needs_assets]


@pytest.mark.parametrize(
    ("path", "rendered", "operation"),
    [
        ("/docs", ".swagger-ui .opblock", "/patients/{patient_id}/worksheet"),
        ("/redoc", ".redoc-wrap", "worksheet"),
    ],
)
def test_documentation_renders_from_the_service_alone(
    browser: Any, service: RunningService, path: str, rendered: str, operation: str
) -> None:
    browser.get_log("browser")
    browser.get_log("performance")
    browser.get(f"{service.origin}{path}")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, rendered))
    WebDriverWait(browser, 30).until(lambda d: operation in d.find_element(By.TAG_NAME, "body").text)
    screenshot(browser, f"docs{path.replace('/', '-')}")
    check_clean(browser, service.origin)
