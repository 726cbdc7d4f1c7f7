"""Browser tests: the service's pages in headless Chromium (Debian `chromium` + `chromium-driver`).

`scripts/browser.sh` installs both with apt-get when they are missing (scripts/test.sh calls it).
Every test fails on a console error and on any request that leaves the service's origin: the
pages must work on a hospital network without internet access. Screenshots go to
var/screenshots/ (not committed).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn

from service.adapters.persistence.database import migrate
from service.api.app import create_app
from service.api.routers import web
from service.config import Settings
from service.demo import sekmet
from service.demo.runner import load_patients, make_cohort, transaction_bundle
from service.synthetic.patient import GeneratedPatient

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Patients of the synthetic pan-tumour cohort (seed 2024) whose engine result is a dissociated
# response with a growing target lesion, a pseudoprogression, and a true progression.
DR_PATIENT = "pan-2024-103"
PSPD_PATIENT = "pan-2024-023"
PD_PATIENT = "pan-2024-008"

needs_browser = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="chromium/chromium-driver missing: bash scripts/browser.sh installs them",
)
needs_assets = pytest.mark.skipif(
    not (web.VENDOR_DIR / "axe-core" / "axe.min.js").is_file(),
    reason="browser assets not built: bash scripts/web-assets.sh",
)


@dataclass(frozen=True)
class RunningService:
    origin: str
    settings: Settings
    patients: dict[str, GeneratedPatient]


def _free_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.port, log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="module")
def service(
    sekmet_server: sekmet.SekmetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The service in demo mode (EHR-launch simulator on) over sekmet-fhir holding three patients."""
    cohort = make_cohort("pan-tumour")
    chosen = {
        p.patient_id: p for p in cohort.patients if p.patient_id in {DR_PATIENT, PSPD_PATIENT, PD_PATIENT}
    }
    bundles = [transaction_bundle(p.resources) for p in chosen.values()]
    anyio.run(lambda: load_patients(sekmet_server.base_url, bundles, advance=lambda: None))
    db = tmp_path_factory.mktemp("browser") / "app.db"
    settings = Settings(
        environment="development",
        api_auth="off",
        fhir_base_url=sekmet_server.base_url,
        database_url=f"sqlite:///{db}",
        smart_demo_launch=True,
        log_json=False,
        log_level="warning",
        port=sekmet.free_port(),
    )
    migrate(settings.database_url)
    server, thread = _free_server(settings)
    try:
        yield RunningService(f"http://127.0.0.1:{settings.port}", settings, chosen)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download drivers
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (Chrome's performance log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def check_clean(driver: Any, origin: str) -> None:
    """No console error, and no request outside the service's origin (data:/blob: are local)."""
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    outside = [u for u in requested_urls(driver) if not u.startswith((origin + "/", "data:", "blob:"))]
    assert outside == [], outside


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 6000))
    target = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(target))
    return target
