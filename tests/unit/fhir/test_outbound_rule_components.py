"""Components of the rule corrections in the FHIR output (docs/rules/): post-progression and HPD numbers.

Engine output for a built timeline goes through `observations_for`; each Observation is also
validated against the FHIR R4B models.
"""

from __future__ import annotations

import math
from typing import Any

from service.adapters.fhir import codes
from service.adapters.fhir.outbound import observations_for
from service.adapters.fhir.resources import validate_resource
from service.application.ports import PatientInput, PatientRef
from service.domain.engine import assess
from service.domain.model import PatientTimeline
from tests.unit.domain.builders import AS_OF, TimelineBuilder


def _observations(timeline: PatientTimeline) -> list[dict[str, Any]]:
    out = observations_for(assess(timeline, as_of=AS_OF), PatientInput(PatientRef("p1"), timeline))
    for resource in out:
        validate_resource(resource)
    return out


def _components(observation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in observation["component"]}


def _of_code(observations: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [o for o in observations if o["code"]["coding"][0]["code"] == code]


def test_recist_timepoint_after_pd_is_pd_and_marked_post_progression() -> None:
    # RECIST 1.1 section 4.4.1: 50 -> 60 mm (PD) -> 0 mm; the later timepoint is not a CR.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 50}).scan(56, {"T": 60}).scan(112, {"T": 0})
    first, after = _of_code(_observations(b.build()), codes.CODE_RECIST11_TPR)
    assert first["valueCodeableConcept"]["coding"][0]["code"] == "PD"
    assert codes.COMP_POST_PROGRESSION not in _components(first)
    assert after["valueCodeableConcept"]["coding"][0]["code"] == "PD"
    assert _components(after)[codes.COMP_POST_PROGRESSION]["valueBoolean"] is True


def test_hpd_observation_carries_the_numbers_with_units_the_reason_and_the_scans() -> None:
    # 40 -> 50 -> 80 mm over two 61-day periods (Ferte 2014 TGR; Saada-Bouzid 2017 TGK).
    b = TimelineBuilder().target("T", "liver").scan(-70, {"T": 40}).scan(-9, {"T": 50}).scan(52, {"T": 80})
    atypical = _of_code(_observations(b.build()), codes.CODE_ATYPICAL_RESPONSE)
    (champiat,) = [
        o
        for o in atypical
        if _components(o)[codes.COMP_DEFINITION]["valueCodeableConcept"]["coding"][0]["code"] == "champiat"
    ]
    comps = _components(champiat)
    months = 61 / 30.4375
    tgr_ref = 100 * (math.exp(3 * math.log(50 / 40) / months) - 1)
    tgr_exp = 100 * (math.exp(3 * math.log(80 / 50) / months) - 1)
    expected = {
        codes.COMP_TGR_REFERENCE: (tgr_ref, "%/mo"),
        codes.COMP_TGR_EXPERIMENTAL: (tgr_exp, "%/mo"),
        codes.COMP_DELTA_TGR: (tgr_exp - tgr_ref, "%/mo"),
        codes.COMP_TGR_RATIO: (tgr_exp / tgr_ref, "1"),
        codes.COMP_TGK_REFERENCE: (10 / months, "mm/mo"),
        codes.COMP_TGK_EXPERIMENTAL: (30 / months, "mm/mo"),
        codes.COMP_TGK_RATIO: (3.0, "1"),
    }
    for code, (value, unit) in expected.items():
        quantity = comps[code]["valueQuantity"]
        assert (quantity["system"], quantity["code"], quantity["unit"]) == (codes.UCUM, unit, unit), code
        assert math.isclose(quantity["value"], value, abs_tol=1e-4), code
    assert comps[codes.COMP_DEFINITION_REASON]["valueString"] == f"TGR ratio {tgr_exp / tgr_ref:.2f} >= 2"
    assert comps[codes.COMP_PRE_BASELINE_SCAN]["valueDateTime"] == "2023-10-23"
    assert comps[codes.COMP_BASELINE_SCAN]["valueDateTime"] == "2023-12-23"
    assert comps[codes.COMP_FIRST_EVALUATION_SCAN]["valueDateTime"] == "2024-02-22"
