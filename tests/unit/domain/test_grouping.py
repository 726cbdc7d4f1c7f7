"""ResponseGroup (contract section 2) and the agreed use of the CONFIRMED best overall response."""

from __future__ import annotations

from datetime import date

import pytest

from service.domain.engine import assess
from service.domain.grouping import response_group
from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    Criterion,
    Response,
    ResponseGroup,
    RuleTrace,
)

from .builders import AS_OF, single_target

D = date(2024, 1, 1)


def bor(response: Response, confirmed: bool = True) -> BestResponse:
    return BestResponse(Criterion.RECIST11, response, confirmed, D, D, D, RuleTrace("t"))


def finding(kind: AtypicalKind) -> AtypicalFinding:
    return AtypicalFinding(kind, "x", "1", 1, D, None, None, (), (), RuleTrace("t"))


@pytest.mark.parametrize(
    ("response", "group"),
    [
        (Response.CR, ResponseGroup.CR_PR),
        (Response.PR, ResponseGroup.CR_PR),
        (Response.SD, ResponseGroup.SD),
        (Response.NON_CR_NON_PD, ResponseGroup.SD),
        (Response.PD, ResponseGroup.PD),
        (Response.NE, ResponseGroup.NE),
    ],
)
def test_group_from_confirmed_bor(response: Response, group: ResponseGroup) -> None:
    # Contract section 2: CR or PR -> CR-PR; SD or NonCR-NonPD -> SD; PD -> PD.
    assert response_group((), bor(Response.PD, False), bor(response), AssessmentParameters())[0] is group


def test_no_follow_up_is_ne() -> None:
    assert response_group((), None, None, AssessmentParameters())[0] is ResponseGroup.NE


def test_dr_before_pspd_by_default_and_configurable() -> None:
    both = (finding(AtypicalKind.PSPD), finding(AtypicalKind.DR))
    assert response_group(both, None, None, AssessmentParameters())[0] is ResponseGroup.DR
    swapped = AssessmentParameters(dr_before_pspd=False)
    assert response_group(both, None, None, swapped)[0] is ResponseGroup.PSPD


def test_hpd_and_der_do_not_change_the_group() -> None:
    found = (finding(AtypicalKind.HPD), finding(AtypicalKind.DER))
    assert response_group(found, None, bor(Response.PD), AssessmentParameters())[0] is ResponseGroup.PD


def test_unconfirmed_pr_is_sd_group_by_default() -> None:
    # RECIST 1.1 section 4.6 (agreed decision): BL 50; 35 (PR); 45 (PD) => confirmed BOR SD => group SD.
    tl = single_target(50, 35, 45)
    assert assess(tl, as_of=AS_OF).response_group is ResponseGroup.SD
    unconfirmed = AssessmentParameters(response_group_uses_confirmed_bor=False)
    assert assess(tl, unconfirmed, as_of=AS_OF).response_group is ResponseGroup.CR_PR


def test_confirmed_pr_is_cr_pr_group() -> None:
    assert assess(single_target(50, 35, 30), as_of=AS_OF).response_group is ResponseGroup.CR_PR
