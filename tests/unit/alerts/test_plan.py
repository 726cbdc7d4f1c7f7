"""What an assessment asks to alert: the first DR / PsPD, its scan, its lesions and the next step.

Clinical facts: Bernard-Tessier DR (docs/fhir-contract.md section 2: one lesion shrinks by more than 30 %
from its baseline while another grows by more than 20 % and at least 5 mm from its nadir) and the
seed study's advice (Guan 2024, Discussion: "next assessment in the subsequent 4-8 weeks ... continue
on immunotherapy or/and consider local therapy for progressive lesions").
"""

from __future__ import annotations

from service.application.alerts import alert_identifier, alert_text, first_findings, plan_alerts
from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.results import AtypicalKind
from tests.unit.domain.builders import AS_OF, TimelineBuilder


def dissociated_twice() -> TimelineBuilder:
    """Liver target 40 -> 20 mm (-50 %); lung target 20 -> 30 mm (+50 %, +10 mm), twice in a row."""
    return (
        TimelineBuilder(patient_id="p-dr")
        .target("LIV", "liver")
        .target("LUN", "lung")
        .scan(-7, {"LIV": 40, "LUN": 20})
        .scan(56, {"LIV": 20, "LUN": 30})
        .scan(112, {"LIV": 18, "LUN": 36})
    )


def assessed(builder: TimelineBuilder):  # type: ignore[no-untyped-def]
    return assess(builder.build(), AssessmentParameters(), as_of=AS_OF)


def test_dr_alert_names_the_first_dr_scan_and_growing_and_shrinking_lesions_bernard_tessier() -> None:
    b = dissociated_twice()
    assessment = assessed(b)
    assert [f.kind for f in assessment.atypical if f.kind is AtypicalKind.DR], "engine found no DR"
    (alert,) = plan_alerts(assessment)
    assert alert.kind == "DR"
    assert alert.patient_id == "p-dr"
    # The first DR timepoint (week 8), not the later one: one alert per patient and finding.
    assert alert.timepoint_date == b.day(56)
    payload = alert.payload
    assert payload["scan"] == {"timepoint_index": 1, "date": b.day(56).isoformat()}
    assert [x["lesion_id"] for x in payload["lesions"]["growing"]] == ["LUN"]
    assert [x["lesion_id"] for x in payload["lesions"]["shrinking"]] == ["LIV"]
    growing = payload["lesions"]["growing"][0]
    assert growing["status"] == "progressing"
    assert growing["diameter_mm"] == "30"
    assert payload["patient"] == {"reference": "Patient/p-dr"}


def test_next_step_is_the_seed_studys_advice_reassess_in_4_to_8_weeks_guan_2024() -> None:
    (alert,) = plan_alerts(assessed(dissociated_twice()))
    step = alert.payload["next_step"]
    assert step["reassess_within_weeks"] == [4, 8]
    assert set(step["actions"]) == {"reassess-imaging", "continue-ici", "local-therapy-for-growing-lesions"}
    text = alert_text(alert.payload)
    assert "4-8 weeks" in text
    assert "local therapy" in text
    assert "LUN" in text
    assert "LIV" in text
    assert "Guan" in text


def test_payload_carries_no_name_or_birth_date_only_the_fhir_reference() -> None:
    (alert,) = plan_alerts(assessed(dissociated_twice()))
    assert set(alert.payload) == {"format", "alert_id", "patient", "finding", "scan", "lesions", "next_step"}


def test_a_responder_gets_no_alert_recist_pr() -> None:
    b = TimelineBuilder().target("A").scan(-7, {"A": 40}).scan(56, {"A": 20})
    assert plan_alerts(assessed(b)) == []


def test_alert_identifier_depends_only_on_patient_finding_and_scan_date() -> None:
    a = alert_identifier("p1", "DR", "2024-02-26")
    assert a == alert_identifier("p1", "DR", "2024-02-26")
    assert (
        len(
            {
                a,
                alert_identifier("p2", "DR", "2024-02-26"),
                alert_identifier("p1", "PsPD", "2024-02-26"),
                alert_identifier("p1", "DR", "2024-04-22"),
            }
        )
        == 4
    )


def test_first_findings_keeps_one_per_kind() -> None:
    findings = first_findings(assessed(dissociated_twice()))
    assert [f.kind for f in findings] == [AtypicalKind.DR]
