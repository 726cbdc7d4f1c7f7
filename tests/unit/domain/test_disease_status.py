"""Cancer disease status from the iRECIST timepoint response (docs/rules/disease-status.md).

Sources: mCODE STU4 CancerDiseaseStatus and ConditionStatusTrendVS (improved, stable, worsened,
undetermined); iRECIST (Seymour et al., Lancet Oncol 2017): iUPD is unconfirmed progression and
needs a confirming assessment (iCPD) before it is progression; iCR and iPR are responses; iSD and
iNonCR-NonUPD are neither response nor progression.
"""

from __future__ import annotations

import pytest

from service.domain.disease_status import DiseaseTrend, disease_trend
from service.domain.results import ImmuneResponse


@pytest.mark.parametrize(
    ("response", "trend"),
    [
        (ImmuneResponse.ICR, DiseaseTrend.IMPROVED),  # complete response
        (ImmuneResponse.IPR, DiseaseTrend.IMPROVED),  # >= 30 % smaller than baseline
        (ImmuneResponse.ISD, DiseaseTrend.STABLE),
        (ImmuneResponse.INON_CR_NON_UPD, DiseaseTrend.STABLE),  # non-target disease persists, no progression
        (ImmuneResponse.IUPD, DiseaseTrend.UNDETERMINED),  # iRECIST: progression not yet confirmed
        (ImmuneResponse.ICPD, DiseaseTrend.WORSENED),  # iRECIST: confirmed progression
        (ImmuneResponse.NE, DiseaseTrend.UNDETERMINED),  # not evaluable
    ],
)
def test_irecist_timepoint_response_gives_the_mcode_condition_trend(
    response: ImmuneResponse, trend: DiseaseTrend
) -> None:
    assert disease_trend(response) is trend


def test_every_irecist_response_has_a_trend() -> None:
    assert {disease_trend(r) for r in ImmuneResponse} == set(DiseaseTrend)


def test_only_confirmed_progression_is_worsened_so_pseudoprogression_never_reads_as_worse() -> None:
    """Pseudoprogression is an iUPD later followed by shrinkage (iRECIST): its growing scan must not
    tell an mCODE reader that the cancer got worse."""
    worsened = [r for r in ImmuneResponse if disease_trend(r) is DiseaseTrend.WORSENED]
    assert worsened == [ImmuneResponse.ICPD]
