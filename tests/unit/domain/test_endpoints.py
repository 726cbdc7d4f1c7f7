"""Endpoints: PFS, iPFS, OS, DCB, NLR/dNLR (reference 1f; contract section 1 labs)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from service.domain.engine import assess
from service.domain.model import LabKind
from service.domain.parameters import AssessmentParameters

from .builders import AS_OF, TimelineBuilder, single_target


def test_pfs_event_at_first_pd_timepoint() -> None:
    e = assess(single_target(50, 40, 60, 70), as_of=AS_OF).endpoints
    assert (e.pfs_days, e.pfs_event) == (112, True)


def test_pfs_death_before_pd() -> None:
    b = TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(56, {"T": 45}).death(90)
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert (e.pfs_days, e.pfs_event, e.os_days, e.os_event) == (90, True, 90, True)


def test_pfs_censored_at_last_assessment_os_at_last_contact() -> None:
    b = (
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .scan(56, {"T": 45})
        .scan(112, {"T": 45})
        .last_contact(200)
    )
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert (e.pfs_days, e.pfs_event) == (112, False)
    assert (e.os_days, e.os_event) == (200, False)


def test_os_censored_at_as_of_without_contact_and_death_after_as_of_ignored() -> None:
    b = TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(56, {"T": 45}).death(400)
    e = assess(b.build(), as_of=date(2024, 7, 19)).endpoints  # day 200
    assert (e.os_days, e.os_event) == (200, False)


def test_ipfs_dates_the_confirmed_iupd_not_the_confirmation() -> None:
    # iRECIST FAQ: iPFS = date of the iUPD later confirmed; W20: iUPD wk16 (day 112), iCPD wk22.
    b = (
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .scan(56, {"T": 35})
        .scan(112, {"T": 45})
        .scan(154, {"T": 50})
    )
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert (e.ipfs_days, e.ipfs_event) == (112, True)
    assert (e.pfs_days, e.pfs_event) == (112, True)


def test_ipfs_censored_when_iupd_resets() -> None:
    # W19: the iUPD at day 56 is a pseudoprogression; iPFS is censored at the last assessment.
    b = (
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .scan(56, {"T": 62})
        .scan(98, {"T": 40})
        .scan(154, {"T": 30})
    )
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert (e.ipfs_days, e.ipfs_event) == (154, False)


def test_dcb_needs_more_than_dcb_days_progression_free() -> None:
    long_sd = single_target(50, 45, 45, 45, 45, every=56)  # last assessment day 224 > 183
    assert assess(long_sd, as_of=AS_OF).endpoints.dcb is True
    early_pd = single_target(50, 45, 80)  # PD day 112
    assert assess(early_pd, as_of=AS_OF).endpoints.dcb is False
    too_short = single_target(50, 45, 45)  # censored at day 112
    assert assess(too_short, as_of=AS_OF).endpoints.dcb is None
    at_limit = single_target(50, 45, every=183)  # exactly 183 days: not "more than"
    assert assess(at_limit, AssessmentParameters(dcb_days=183), as_of=AS_OF).endpoints.dcb is None


def test_nlr_and_dnlr_pre_and_post() -> None:
    b = TimelineBuilder().target("T").scan(-7, {"T": 50}).scan(56, {"T": 45})
    b.lab(LabKind.NEUTROPHILS, -40, 9).lab(LabKind.LYMPHOCYTES, -40, 1)  # outside the 28-day window
    b.lab(LabKind.NEUTROPHILS, -10, 6).lab(LabKind.LYMPHOCYTES, -10, 2).lab(LabKind.LEUKOCYTES, -10, 9)
    b.lab(LabKind.NEUTROPHILS, 21, 5).lab(LabKind.LYMPHOCYTES_PCT, 21, 25).lab(LabKind.LEUKOCYTES, 21, 8)
    b.lab(LabKind.NEUTROPHILS, 42, 10).lab(LabKind.LYMPHOCYTES, 42, 1)
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert e.nlr_pre == Decimal("3.00")  # 6 / 2
    assert e.dnlr_pre == Decimal("2.00")  # 6 / (9 - 6)
    assert e.nlr_post == Decimal("2.50")  # 5 / (25 % x 8)
    assert e.dnlr_post == Decimal("1.67")  # 5 / (8 - 5)


def test_no_pre_treatment_labs_gives_none() -> None:
    b = (
        TimelineBuilder()
        .target("T")
        .scan(-7, {"T": 50})
        .lab(LabKind.NEUTROPHILS, -40, 9)
        .lab(LabKind.LYMPHOCYTES, -40, 1)
    )
    e = assess(b.build(), as_of=AS_OF).endpoints
    assert e.nlr_pre is None
    assert e.nlr_post is None
