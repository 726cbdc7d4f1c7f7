"""Invariants of the response rules over random trajectories (docs/rules/README.md, "Properties").

Trajectories: 1-3 targets (lymph nodes and other organs), maybe a non-target, maybe new lesions
(a new-lesion target and a new non-measurable lesion), 1-6 follow-ups 3-20 weeks apart, readings
sometimes missing, node sizes drawn around the 10 mm line. Each property is a statement of the
criteria that holds whatever the data:

- RECIST 1.1 section 4.3.1: every nodal target < 10 mm short axis and no non-nodal target => target CR.
- iRECIST (Seymour 2017, Table 2; FAQ): an iUPD followed at the next assessment (>= 4 weeks later)
  by a target sum +>= 5 mm is iCPD, whatever the gap.
- iRECIST reset (scenarios B/F): no pseudoprogression while the baseline target sum grows (from the
  iUPD, or from the latest counted assessment: NE and too-early scans do not count, as for the nadir).
- RECIST 1.1 section 4.4.1: no response after PD.
- No alert on a timepoint RECIST 1.1 calls CR, under every dissociated-response definition (a lymph
  node below 10 mm is normal: it neither grows nor progresses).

CI runs the derandomised profile (`CI=true`); `HYPOTHESIS_PROFILE=long` runs 1000 examples each.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from service.application.alerts import plan_alerts
from service.domain.dissociated import REGISTRY as DR_REGISTRY
from service.domain.engine import assess
from service.domain.model import PatientTimeline
from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    AtypicalKind,
    ImmuneResponse,
    ImmuneTimepointResult,
    PatientAssessment,
    Response,
)

from .builders import AS_OF, TimelineBuilder

GAP_DAYS = st.integers(21, 140)  # 3-20 weeks between assessments
NODE_MM = st.sampled_from(["0", "3", "5", "8", "9", "9.9", "10", "10.1", "12", "15", "20", "30"]).map(Decimal)
OTHER_MM = st.integers(0, 120).map(Decimal)
NT_STATES = ["present", "absent", "increased", "unequivocal-progression"]


@st.composite
def trajectories(draw: st.DrawFn, nodes_only: bool = False) -> PatientTimeline:
    b = TimelineBuilder()
    targets: list[tuple[str, bool]] = []
    for i in range(draw(st.integers(1, 3))):
        node = nodes_only or draw(st.booleans())
        lid = f"T{i}"
        b.target(lid, ("lung", "liver", "bone")[i], node=node)
        targets.append((lid, node))
    has_nt = draw(st.booleans())
    if has_nt:
        b.non_target("P", "pleura")
    with_new = draw(st.booleans())
    if with_new:
        b.new_target("N", "adrenal")
        b.lesion("X", "skin")
    baseline = {lid: draw(st.integers(15, 60) if node else st.integers(10, 80)) for lid, node in targets}
    b.scan(-7, baseline, nt={"P": "present"} if has_nt else None)
    day = 0
    for _ in range(draw(st.integers(1, 6))):
        day += draw(GAP_DAYS)
        values: dict[str, int | str | Decimal] = {}
        for lid, node in targets:
            if draw(st.integers(0, 9)) > 0:  # now and then not measured
                values[lid] = draw(NODE_MM if node else OTHER_MM)
        if with_new and draw(st.integers(0, 2)) == 0:
            values["N"] = draw(st.integers(0, 40))
        if with_new and draw(st.integers(0, 3)) == 0:
            values["X"] = draw(st.integers(0, 25))
        b.scan(day, values, nt={"P": draw(st.sampled_from(NT_STATES))} if has_nt else None)
    return b.build()


def _assess(tl: PatientTimeline) -> PatientAssessment:
    return assess(tl, as_of=AS_OF)


@given(trajectories(nodes_only=True))
def test_recist_4_3_1_every_nodal_target_below_10mm_is_target_cr(tl: PatientTimeline) -> None:
    targets = [
        lesion.lesion_id for lesion in tl.lesions if lesion.role is not None and lesion.role.value == "target"
    ]
    for scan, result in zip(tl.scans[1:], _assess(tl).timepoints, strict=True):
        sizes = {m.lesion_id: m.short_axis_mm for m in scan.measurements}
        if all(sizes.get(t) is not None and sizes[t] < 10 for t in targets):  # type: ignore[operator]
            assert result.target is Response.CR, (result.index, sizes)


@given(trajectories(), GAP_DAYS, st.integers(5, 30))
def test_irecist_next_assessment_with_5mm_more_confirms_icpd_whatever_the_gap(
    tl: PatientTimeline, gap: int, growth_mm: int
) -> None:
    # A single non-nodal target: iUPD at the first evaluation (+50 %), then the next assessment
    # `gap` days later (3-20 weeks) with the sum `growth_mm` (>= 5) above the iUPD's.
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": 40}).scan(56, {"T": 60})
    b.scan(56 + gap, {"T": 60 + growth_mm})
    codes = [t.overall for t in _assess(b.build()).immune_timepoints]
    expected = ImmuneResponse.ICPD if gap >= 28 else ImmuneResponse.IUPD
    assert codes == [ImmuneResponse.IUPD, expected]
    # And in random courses: an iUPD whose basis is the target sum, followed at the next counted
    # assessment by +>= 5 mm over the sum of the episode's first iUPD, is iCPD.
    result = _assess(tl)
    immune = result.immune_timepoints
    for k in range(len(immune) - 1):
        first, nxt = immune[k], immune[k + 1]
        trace = first.traces[0]
        if first.overall is not ImmuneResponse.IUPD or trace.rule != "irecist/iupd":
            continue
        causes = str(dict(trace.facts)["causes"]).split(",")
        if "target" not in causes or first.sum_mm is None or nxt.sum_mm is None:
            continue
        if (nxt.timepoint_date - first.timepoint_date).days >= 28 and nxt.sum_mm - first.sum_mm >= 5:
            assert nxt.overall is ImmuneResponse.ICPD, (k + 1, first.sum_mm, nxt.sum_mm)


def _counted(t: ImmuneTimepointResult) -> bool:
    """A timepoint that enters the iRECIST course (not NE, not a scan too early to confirm)."""
    return t.overall is not ImmuneResponse.NE and t.traces[0].rule != "irecist/iupd/too-early-to-confirm"


@given(trajectories())
def test_irecist_no_pseudoprogression_while_the_baseline_target_sum_grows(tl: PatientTimeline) -> None:
    result = _assess(tl)
    immune = result.immune_timepoints
    for finding in result.atypical:
        if finding.kind is not AtypicalKind.PSPD:
            continue
        resolved = int(dict(finding.metrics)["resolved_at_index"])
        at_reset = immune[resolved - 1].sum_mm
        if at_reset is None:
            continue
        iupd_sum = immune[finding.timepoint_index - 1].sum_mm
        measured_before = [t.sum_mm for t in immune[: resolved - 1] if t.sum_mm is not None and _counted(t)]
        assert iupd_sum is None or at_reset <= iupd_sum
        assert not measured_before or at_reset <= measured_before[-1]


@given(trajectories())
def test_recist_4_4_1_no_response_after_pd(tl: PatientTimeline) -> None:
    seen_pd = False
    for t in _assess(tl).timepoints:
        assert t.post_progression is seen_pd
        if seen_pd:
            assert t.overall is Response.PD
            assert t.reported is Response.PD
        seen_pd = seen_pd or t.overall is Response.PD


@given(trajectories(nodes_only=True) | trajectories())
def test_no_alert_on_a_timepoint_recist_calls_cr(tl: PatientTimeline) -> None:
    for definition in DR_REGISTRY:  # every dissociated-response definition, not only the default
        result = assess(tl, AssessmentParameters(dr_definition=definition), as_of=AS_OF)
        by_date = {t.timepoint_date: t for t in result.timepoints}
        for alert in plan_alerts(result):
            assert by_date[alert.timepoint_date].reported is not Response.CR, (definition, alert.kind)
