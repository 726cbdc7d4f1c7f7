"""Hypothesis properties of the rule engine (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from service.domain.engine import assess
from service.domain.lesions import TargetSum
from service.domain.model import PatientTimeline
from service.domain.recist import classify_target
from service.domain.results import ImmuneResponse, Response

from .builders import AS_OF, TimelineBuilder

ORGANS = ("lung", "liver", "bone")
_BETTER = {Response.CR: 0, Response.PR: 1, Response.SD: 2, Response.PD: 3}
diameters = st.integers(min_value=0, max_value=120).map(Decimal) | st.sampled_from(
    [Decimal("4.9"), Decimal("25.5"), Decimal("30.6")]
)


@st.composite
def timelines(draw: st.DrawFn) -> PatientTimeline:
    b = TimelineBuilder()
    n_targets = draw(st.integers(1, 3))
    targets = [f"T{i}" for i in range(n_targets)]
    for i, lid in enumerate(targets):
        b.target(lid, ORGANS[i % len(ORGANS)])
    has_nt = draw(st.booleans())
    if has_nt:
        b.non_target("P", "pleura")
    b.lesion("X", "skin")  # a possible new lesion
    b.scan(-7, {lid: draw(st.integers(10, 80)) for lid in targets}, nt={"P": "present"} if has_nt else None)
    for k in range(1, draw(st.integers(1, 5)) + 1):
        values: dict[str, int | str | Decimal] = {}
        for lid in targets:
            if draw(st.integers(0, 9)) > 0:  # occasionally not measured
                values[lid] = draw(diameters)
        if draw(st.integers(0, 4)) == 0:
            values["X"] = draw(st.integers(5, 30))
        nt = {"P": draw(st.sampled_from(["present", "absent", "increased", "unequivocal-progression"]))}
        b.scan(k * draw(st.sampled_from([35, 42, 56])), values, nt=nt if has_nt else None)
    return b.build()


def reordered(tl: PatientTimeline) -> PatientTimeline:
    scans = tuple(
        replace(s, measurements=tuple(reversed(s.measurements)), non_target=tuple(reversed(s.non_target)))
        for s in reversed(tl.scans)
    )
    return replace(tl, lesions=tuple(reversed(tl.lesions)), scans=scans)


@given(timelines())
def test_lesion_order_does_not_matter(tl: PatientTimeline) -> None:
    assert assess(tl, as_of=AS_OF) == assess(reordered(tl), as_of=AS_OF)


@given(timelines())
def test_rerunning_gives_the_same_result(tl: PatientTimeline) -> None:
    assert assess(tl, as_of=AS_OF) == assess(tl, as_of=AS_OF)


@given(
    st.integers(1, 300).map(Decimal),
    st.integers(0, 300).map(Decimal),
    st.integers(0, 400).map(Decimal),
    st.integers(0, 400).map(Decimal),
)
def test_larger_current_sum_never_gives_better_target_response(
    baseline: Decimal, nadir: Decimal, smaller: Decimal, delta: Decimal
) -> None:
    nadir = min(nadir, baseline)
    low, _ = classify_target(baseline, nadir, TargetSum(smaller, True, False, ()))
    high, _ = classify_target(baseline, nadir, TargetSum(smaller + delta, True, False, ()))
    assert _BETTER[high] >= _BETTER[low]


@given(timelines())
def test_new_lesion_never_gives_cr_or_pr(tl: PatientTimeline) -> None:
    for t in assess(tl, as_of=AS_OF).timepoints:
        if t.new_lesion:
            assert t.overall not in (Response.CR, Response.PR)
            assert t.reported not in (Response.CR, Response.PR)


@given(timelines())
def test_every_icpd_follows_an_iupd(tl: PatientTimeline) -> None:
    seen_iupd = False
    for t in assess(tl, as_of=AS_OF).immune_timepoints:
        if t.overall is ImmuneResponse.ICPD:
            assert seen_iupd
        seen_iupd = seen_iupd or t.overall is ImmuneResponse.IUPD
