"""Best overall response: the confirmation interval, the SD minimum and the rank orders at their edges.

RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247) section 4.6: a CR or PR must be
re-documented at least 4 weeks (28 days) later; SD must be met at least once at a protocol minimum
after treatment start (6-8 weeks; here 42 days). Best response order CR > PR > SD > non-CR/non-PD >
PD > NE (section 4.4, Tables 1-3; admiralonco `derive_param_bor`). iRECIST (Seymour et al., Lancet
Oncol 2017;18:e143-e152) Table 3: iCR > iPR > iSD > non-iCR/non-iUPD > iUPD > iCPD > NE, and the
iSD minimum as for SD. docs/rules/boundaries.md lists them.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from service.domain.irecist import immune_best_overall_response
from service.domain.parameters import AssessmentParameters
from service.domain.recist import best_overall_response, confirmed_best_overall_response
from service.domain.results import ImmuneResponse, Response

START = date(2024, 1, 1)
PARAMS = AssessmentParameters()  # confirmation_min_days 28, min_sd_days 42

CR, PR, SD, PD, NE, NN = (
    Response.CR,
    Response.PR,
    Response.SD,
    Response.PD,
    Response.NE,
    Response.NON_CR_NON_PD,
)
ICR, IPR, ISD, INN, IUPD, INE = (
    ImmuneResponse.ICR,
    ImmuneResponse.IPR,
    ImmuneResponse.ISD,
    ImmuneResponse.INON_CR_NON_UPD,
    ImmuneResponse.IUPD,
    ImmuneResponse.NE,
)


def day(n: int) -> date:
    return START + timedelta(days=n)


def test_the_defaults_are_the_guideline_values() -> None:
    # RECIST 1.1 section 4.6: ">= 4 weeks" and a 6-8 week SD minimum.
    assert (PARAMS.confirmation_min_days, PARAMS.min_sd_days) == (28, 42)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(27, SD), (28, CR), (29, CR)],
)
def test_cr_is_confirmed_by_a_cr_at_least_28_days_later(gap: int, expected: Response) -> None:
    # An unconfirmed CR at day 56 (>= 42) counts as SD (RECIST 1.1 Table 3, CR -> CR too early).
    bor = confirmed_best_overall_response([(day(56), CR), (day(56 + gap), CR)], START, PARAMS)
    assert bor is not None
    assert (bor.response, bor.response_date) == (expected, day(56))


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(27, SD), (28, PR), (29, PR)],
)
def test_pr_is_confirmed_by_a_pr_at_least_28_days_later(gap: int, expected: Response) -> None:
    bor = confirmed_best_overall_response([(day(56), PR), (day(56 + gap), PR)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


def test_pr_is_confirmed_by_a_later_cr() -> None:
    # RECIST 1.1 Table 3: PR then CR = PR.
    bor = confirmed_best_overall_response([(day(56), PR), (day(84), CR)], START, PARAMS)
    assert bor is not None
    assert bor.response is PR


@pytest.mark.parametrize(
    ("sd_day", "expected"),
    [(41, NE), (42, SD), (43, SD)],
)
def test_sd_counts_from_day_42_unconfirmed(sd_day: int, expected: Response) -> None:
    bor = best_overall_response([(day(sd_day), SD)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


@pytest.mark.parametrize(
    ("sd_day", "expected"),
    [(41, NE), (42, NN), (43, NN)],
)
def test_non_cr_non_pd_counts_from_day_42(sd_day: int, expected: Response) -> None:
    # Non-target-only disease (RECIST 1.1 Table 2): non-CR/non-PD has the minimum interval of SD.
    bor = best_overall_response([(day(sd_day), NN)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


@pytest.mark.parametrize(
    ("pr_day", "expected"),
    [(41, NE), (42, SD), (43, SD)],
)
def test_unconfirmed_pr_counts_as_sd_only_from_day_42(pr_day: int, expected: Response) -> None:
    # RECIST 1.1 Table 3: PR then PD = SD if the SD minimum was met, else PD; the PR alone here.
    bor = confirmed_best_overall_response([(day(pr_day), PR)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


@pytest.mark.parametrize(
    ("sd_day", "expected"),
    [(41, PD), (42, SD)],
)
def test_pr_then_pd_is_sd_only_when_the_minimum_was_met(sd_day: int, expected: Response) -> None:
    # RECIST 1.1 Table 3 (worked case W17 c/d): PR -> PD = SD if min SD duration met, otherwise PD.
    bor = confirmed_best_overall_response([(day(sd_day), PR), (day(sd_day + 56), PD)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (NN, CR, CR),  # non-CR/non-PD never ranks above CR
        (CR, NN, CR),
        (NN, PR, PR),
        (SD, NN, SD),  # SD above non-CR/non-PD
        (NN, SD, SD),
        (NN, PD, NN),  # any benefit above PD
        (NE, PD, PD),  # PD above NE (admiralonco order)
        (PR, SD, PR),
        (SD, CR, CR),
    ],
)
def test_recist_best_response_rank_order(first: Response, second: Response, expected: Response) -> None:
    bor = best_overall_response([(day(56), first), (day(112), second)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


def test_recist_best_response_ties_keep_the_earliest_date() -> None:
    bor = best_overall_response([(day(56), SD), (day(112), SD)], START, PARAMS)
    assert bor is not None
    assert bor.response_date == day(56)


@pytest.mark.parametrize(
    ("isd_day", "expected"),
    [(41, INE), (42, ISD), (43, ISD)],
)
def test_isd_counts_in_irecist_best_response_from_day_42(isd_day: int, expected: ImmuneResponse) -> None:
    bor = immune_best_overall_response([(day(isd_day), ISD)], START, PARAMS)
    assert bor is not None
    assert bor.response is expected


def test_inon_cr_non_iupd_has_the_same_minimum() -> None:
    early = immune_best_overall_response([(day(41), INN)], START, PARAMS)
    on_time = immune_best_overall_response([(day(42), INN)], START, PARAMS)
    assert early is not None
    assert on_time is not None
    assert (early.response, on_time.response) == (INE, INN)


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ((IUPD, IPR, ICR), ICR),  # iRECIST Table 3 example 2
        ((IUPD, IPR), IPR),  # example 3
        ((IUPD, ISD), ISD),  # example 5
        ((IUPD, INE, INE), IUPD),  # example 8: iUPD above NE
        ((INN, ICR), ICR),  # non-iCR/non-iUPD never above iCR
        ((ISD, INN), ISD),
        ((INN, IUPD), INN),
    ],
)
def test_irecist_best_response_rank_order(
    sequence: tuple[ImmuneResponse, ...], expected: ImmuneResponse
) -> None:
    assessments = [(day(56 * (n + 1)), r) for n, r in enumerate(sequence)]
    bor = immune_best_overall_response(assessments, START, PARAMS)
    assert bor is not None
    assert bor.response is expected
