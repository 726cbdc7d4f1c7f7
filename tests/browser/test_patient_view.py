"""The patient view launched as a SMART on FHIR app through the EHR launch, in headless Chromium.

The worksheet's numbers must be the response engine's (`service.domain.engine.assess` run here
on the same synthetic patient's resources), for a dissociated response, a pseudoprogression and a
true progression; the spider plot must highlight the DR lesions (Bernard-Tessier et al. 2020:
some lesions shrink while others grow); iRECIST (Seymour et al., Lancet Oncol 2017) must show the
unconfirmed iUPD of the pseudoprogression followed by a non-progression.
"""

from __future__ import annotations

from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from service.application.clock import today
from service.bootstrap import Container
from service.domain.results import AtypicalKind, PatientAssessment
from tests.browser.conftest import (
    DR_PATIENT,
    PD_PATIENT,
    PSPD_PATIENT,
    RunningService,
    check_clean,
    needs_assets,
    needs_browser,
    screenshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sekmet"), needs_browser]


def engine_result(service: RunningService, patient_id: str) -> PatientAssessment:
    resources = service.patients[patient_id].resources
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    box = Container(service.settings)
    inputs, _ = box.read_bundle(bundle)
    assessment = box.assessor.one(inputs[0], as_of=today()).assessment
    assert assessment is not None
    return assessment


def ready_state(browser: Any) -> str | None:
    """`body[data-ready]` of the patient view: "true" once drawn, "error" when the launch failed."""
    state: str | None = browser.execute_script(
        "return location.pathname === '/app/patient/' && document.body ? document.body.dataset.ready || null : null"
    )
    return state


def launch(browser: Any, service: RunningService, patient_id: str) -> None:
    """The EHR (the demo simulator) opens the app; the app completes authorize + token with PKCE."""
    browser.get(f"{service.origin}/smart/ehr?patient={patient_id}")
    # the launch page navigates away by itself: read the flag atomically, never through a stale node
    WebDriverWait(browser, 30, ignored_exceptions=[WebDriverException]).until(ready_state)
    status = browser.find_element(By.ID, "status").text
    assert ready_state(browser) == "true", status
    assert browser.current_url == f"{service.origin}/app/patient/"  # the code left the address bar


def row(browser: Any, index: int) -> dict[str, str | None]:
    tr = browser.find_element(By.CSS_SELECTOR, f'#worksheet tbody tr[data-index="{index}"]')
    fields = {}
    for td in tr.find_elements(By.CSS_SELECTOR, "td[data-field]"):
        fields[td.get_attribute("data-field")] = td.get_attribute("data-value") or td.text
    for td in tr.find_elements(By.CSS_SELECTOR, "td[data-lesion]"):
        fields[td.get_attribute("data-lesion")] = td.get_attribute("data-value")
    return fields


def text_or_blank(value: object) -> str:
    return "" if value is None else str(value)


def check_worksheet_against_engine(browser: Any, assessment: PatientAssessment) -> None:
    baseline = row(browser, 0)
    assert baseline["sum_mm"] == str(assessment.timepoints[0].baseline_sum_mm)
    immune = {t.index: t for t in assessment.immune_timepoints}
    for point in assessment.timepoints:
        shown = row(browser, point.index)
        assert shown["sum_mm"] == text_or_blank(point.sum_mm), point.index
        assert text_or_blank(shown["change_from_baseline_pct"]) == text_or_blank(
            point.change_from_baseline_pct
        )
        assert text_or_blank(shown["change_from_nadir_pct"]) == text_or_blank(point.change_from_nadir_pct)
        assert shown["recist"] == point.reported.value
        assert shown["irecist"] == immune[point.index].overall.value
    for lesion in assessment.lesions:
        if lesion.diameter_mm is not None:
            assert row(browser, lesion.timepoint_index)[lesion.lesion_id] == str(lesion.diameter_mm)


@pytest.fixture(autouse=True)
def _clean_page(browser: Any, service: RunningService) -> Any:
    browser.get_log("browser")  # start each test with empty logs
    browser.get_log("performance")
    yield
    check_clean(browser, service.origin)


def test_dissociated_response_worksheet_and_highlighted_lesions(
    browser: Any, service: RunningService
) -> None:
    assessment = engine_result(service, DR_PATIENT)
    launch(browser, service, DR_PATIENT)
    check_worksheet_against_engine(browser, assessment)
    (finding,) = [f for f in assessment.atypical if f.kind is AtypicalKind.DR]
    highlighted = {
        line.get_attribute("data-lesion"): line.get_attribute("data-dr")
        for line in browser.find_elements(By.CSS_SELECTOR, "#spider path.lesion[data-dr]")
    }
    expected = dict.fromkeys(finding.shrinking_lesions, "shrinking") | dict.fromkeys(
        finding.growing_lesions, "growing"
    )
    assert highlighted == expected
    assert finding.growing_lesions  # a target-lesion-triggered DR: both kinds are on the plot
    assert finding.shrinking_lesions
    article = browser.find_element(By.CSS_SELECTOR, '#findings article[data-kind="DR"]')
    assert "Dissociated response" in article.text
    for lesion_id in expected:  # named by site, not by identifier alone
        assert f"structure ({lesion_id})" in article.text
    # the thresholds of the sum-of-diameters plot are drawn
    assert browser.find_elements(By.CSS_SELECTOR, '#sum-plot [data-threshold="pr"]')
    assert browser.find_elements(By.CSS_SELECTOR, '#sum-plot [data-threshold="pd"]')
    screenshot(browser, "patient-view-dr")


def test_pseudoprogression_shows_unconfirmed_iupd_then_no_progression(
    browser: Any, service: RunningService
) -> None:
    assessment = engine_result(service, PSPD_PATIENT)
    launch(browser, service, PSPD_PATIENT)
    check_worksheet_against_engine(browser, assessment)
    (finding,) = [f for f in assessment.atypical if f.kind is AtypicalKind.PSPD]
    assert row(browser, finding.timepoint_index)["irecist"] == "iUPD"
    assert row(browser, finding.timepoint_index + 1)["irecist"] not in ("iUPD", "iCPD")
    assert browser.find_element(By.CSS_SELECTOR, '#findings article[data-kind="PsPD"]').is_displayed()
    # lymph nodes are measured on the short axis (RECIST 1.1 section 3.1.1)
    node_heads = [
        h.text
        for h in browser.find_elements(By.CSS_SELECTOR, "#worksheet th.lesion-head")
        if "Lymph node" in h.text
    ]
    assert node_heads
    assert all("short axis" in h for h in node_heads)
    screenshot(browser, "patient-view-pspd")


def test_true_progression_has_no_atypical_finding(browser: Any, service: RunningService) -> None:
    assessment = engine_result(service, PD_PATIENT)
    assert assessment.atypical == ()
    launch(browser, service, PD_PATIENT)
    check_worksheet_against_engine(browser, assessment)
    assert row(browser, 1)["recist"] == "PD"
    assert not browser.find_elements(By.CSS_SELECTOR, "#findings article")
    assert not browser.find_elements(By.CSS_SELECTOR, "#spider path.lesion[data-dr]")


def test_launch_without_the_ehr_shows_a_message_not_data(browser: Any, service: RunningService) -> None:
    browser.get(f"{service.origin}/app/patient/?code=forged&state=forged")
    WebDriverWait(browser, 10, ignored_exceptions=[WebDriverException]).until(ready_state)
    assert "state mismatch" in browser.find_element(By.ID, "status").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#worksheet tbody tr")


@needs_assets
def test_patient_view_has_no_serious_accessibility_violation(browser: Any, service: RunningService) -> None:
    launch(browser, service, DR_PATIENT)
    browser.execute_script(
        "const s = document.createElement('script'); s.src = '/static/vendor/axe-core/axe.min.js';"
        "document.head.append(s);"
    )
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return typeof window.axe?.run === 'function'")
    )
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))));"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], serious


def test_worksheet_prints_without_controls_and_is_reachable_by_keyboard(
    browser: Any, service: RunningService
) -> None:
    launch(browser, service, PSPD_PATIENT)
    # keyboard: the first Tab lands on the skip link, which leads to the worksheet
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("href").endswith("#worksheet-section")
    scroller = browser.find_element(By.CSS_SELECTOR, ".table-scroll")
    assert scroller.get_attribute("tabindex") == "0"  # a wide table scrolls by keyboard too
    # print stylesheet: no buttons, the worksheet whole (no horizontal scroller)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not browser.find_element(By.ID, "print").is_displayed()
        assert browser.find_element(By.ID, "worksheet").is_displayed()
        assert scroller.value_of_css_property("overflow-x") == "visible"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
