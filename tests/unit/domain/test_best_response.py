"""Best overall response, unconfirmed and confirmed (RECIST 1.1 section 4.4, 4.6, Table 3)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from service.domain.engine import assess
from service.domain.parameters import AssessmentParameters
from service.domain.recist import best_overall_response, confirmed_best_overall_response
from service.domain.results import Response

from .builders import AS_OF, single_target

CR, PR, SD, PD, NE, NN = (
    Response.CR,
    Response.PR,
    Response.SD,
    Response.PD,
    Response.NE,
    Response.NON_CR_NON_PD,
)

# admiralonco derive_param_confirmed_bor example (worked case W8, docs/rules/worked-cases.md): ref_start_window = 28, ref_confirm = 28,
# max_nr_ne = 1, accept_sd = FALSE.
W8 = AssessmentParameters(min_sd_days=28, confirmation_min_days=28, max_ne_between=1, accept_sd=False)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("start", "assessments", "expected", "expected_date"),
    [
        # S1: PR, CR, NE, CR, SD => CR (2020-02-01) confirmed by CR 03-01 with one NE in between.
        (
            "2020-01-01",
            [
                ("2020-01-01", PR),
                ("2020-02-01", CR),
                ("2020-02-16", NE),
                ("2020-03-01", CR),
                ("2020-04-01", SD),
            ],
            CR,
            "2020-02-01",
        ),
        # S2: SD, PR, SD, CR => SD (2020-02-01): the PR is broken by an SD (accept_sd FALSE).
        (
            "2019-12-12",
            [("2020-01-01", SD), ("2020-02-01", PR), ("2020-03-01", SD), ("2020-03-13", CR)],
            SD,
            "2020-02-01",
        ),
        # S3: CR, CR (20 days), SD => SD (2020-01-01): CRs unconfirmed and before the SD window.
        ("2019-11-11", [("2019-11-12", CR), ("2019-12-02", CR), ("2020-01-01", SD)], SD, "2020-01-01"),
        # S5: PR, SD, PR, NON-CR/NON-PD => NON-CR/NON-PD.
        (
            "2020-01-01",
            [("2020-01-01", PR), ("2020-01-10", SD), ("2020-01-20", PR), ("2020-05-15", NN)],
            NN,
            "2020-05-15",
        ),
        # S7: PR, CR, NE => NE (all within the start window, nothing confirmed).
        ("2020-02-02", [("2020-02-06", PR), ("2020-02-16", CR), ("2020-04-01", NE)], NE, "2020-02-06"),
        # S9: PD then SD => PD (assessments after the first PD are ignored).
        ("2020-01-01", [("2020-02-16", PD), ("2020-03-06", SD)], PD, "2020-02-16"),
    ],
)
def test_admiralonco_confirmed_bor_example(
    start: str, assessments: list[tuple[str, Response]], expected: Response, expected_date: str
) -> None:
    bor = confirmed_best_overall_response([(d(a), r) for a, r in assessments], d(start), W8)
    assert bor is not None
    assert bor.response is expected
    assert bor.response_date == d(expected_date)
    assert bor.confirmation_required


def test_admiralonco_s8_no_data_is_missing() -> None:
    # W8 S8: no assessment => MISSING (None).
    assert confirmed_best_overall_response([], d("2020-01-01"), W8) is None
    assert best_overall_response([], d("2020-01-01"), W8) is None


def test_admiralonco_second_call_accept_sd_and_two_ne() -> None:
    # admiralonco example, second call (accept_sd TRUE, max_nr_ne 2): S2's PR is confirmed by CR 03-13.
    params = AssessmentParameters(min_sd_days=28, confirmation_min_days=28, max_ne_between=2, accept_sd=True)
    seq = [(d("2020-01-01"), SD), (d("2020-02-01"), PR), (d("2020-03-01"), SD), (d("2020-03-13"), CR)]
    bor = confirmed_best_overall_response(seq, d("2019-12-12"), params)
    assert bor is not None
    assert bor.response is PR
    # Subject 9 data of the same roxygen example: CR, NE, NE, CR (46 days later); by the rule, two NE
    # allowed => CR confirmed; one allowed (W8 parameters) => not confirmed, SD.
    seq9 = [(d("2020-03-16"), CR), (d("2020-04-01"), NE), (d("2020-04-16"), NE), (d("2020-05-01"), CR)]
    bor9 = confirmed_best_overall_response(seq9, d("2020-01-01"), params)
    assert bor9 is not None
    assert bor9.response is CR
    bor9_strict = confirmed_best_overall_response(seq9, d("2020-01-01"), W8)
    assert bor9_strict is not None
    assert bor9_strict.response is SD


def test_no_pr_after_cr_within_confirmation_period() -> None:
    # admiralonco: "no PR after CR" in the confirmation window.
    seq = [(d("2020-02-01"), PR), (d("2020-02-20"), CR), (d("2020-03-10"), PR)]
    bor = confirmed_best_overall_response(seq, d("2020-01-01"), W8)
    assert bor is not None
    assert bor.response is SD


W17 = AssessmentParameters(min_sd_days=42)
START = date(2024, 1, 1)


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([(56, PR), (112, PR)], PR),  # W17 (a) PR wk8, PR wk16 => PR
        ([(56, PR), (112, SD)], SD),  # W17 (b) PR, SD => SD
        ([(56, PR), (112, PD)], SD),  # W17 (c) PR, PD => SD (PR at wk8 meets min SD 42 d)
        ([(28, PR), (56, PD)], PD),  # W17 (d) PR at day 28 < 42 d, PD => PD
        ([(56, PR), (112, NE)], SD),  # W17 (e) PR, NE => SD
        ([(56, CR), (112, CR)], CR),  # Table 3 CR -> CR
        ([(56, CR), (112, PR)], SD),  # Table 3 CR -> PR (admiralonco: SD)
        ([(28, CR), (56, NE)], NE),  # Table 3 CR -> NE, min SD not met => NE
        ([(56, PR), (112, CR)], PR),  # Table 3 PR -> CR => PR
        ([(56, NE), (112, NE)], NE),  # Table 3 NE -> NE
    ],
)
def test_recist_table3_confirmation(sequence: list[tuple[int, Response]], expected: Response) -> None:
    seq = [(START + timedelta(days=n), r) for n, r in sequence]
    bor = confirmed_best_overall_response(seq, START, W17)
    assert bor is not None
    assert bor.response is expected


def test_confirmation_boundary_27_vs_28_days() -> None:
    base = START + timedelta(days=56)
    at27 = [(base, PR), (base + timedelta(days=27), PR)]
    at28 = [(base, PR), (base + timedelta(days=28), PR)]
    bor27 = confirmed_best_overall_response(at27, START, W17)
    bor28 = confirmed_best_overall_response(at28, START, W17)
    assert bor27 is not None
    assert bor27.response is SD
    assert bor28 is not None
    assert bor28.response is PR


def test_unconfirmed_bor_best_until_pd_with_min_sd_window() -> None:
    def seq(*items: tuple[int, Response]) -> list[tuple[date, Response]]:
        return [(START + timedelta(days=n), r) for n, r in items]

    bor = best_overall_response(seq((56, SD), (112, PR), (168, PD), (224, CR)), START, W17)
    assert bor is not None
    assert bor.response is PR
    assert not bor.confirmation_required
    early = best_overall_response(seq((28, SD), (56, PD)), START, W17)
    assert early is not None
    assert early.response is PD
    pd_after = best_overall_response(seq((56, PD), (112, CR)), START, W17)
    assert pd_after is not None
    assert pd_after.response is PD


def test_w20_unconfirmed_pr_becomes_sd_in_confirmed_bor() -> None:
    # Reference W20: BL 50; wk8 35 (PR); wk16 45 (PD) => BOR PR unconfirmed, SD confirmed.
    result = assess(single_target(50, 35, 45), as_of=AS_OF)
    assert result.best_response is not None
    assert result.best_response.response is PR
    assert result.best_response_confirmed is not None
    assert result.best_response_confirmed.response is SD
