"""Cancer disease status at an assessed timepoint: improved, stable, worsened or undetermined.

mCODE's CancerDiseaseStatus (LOINC 97509-4) says whether the cancer is getting better, staying
the same or getting worse. The service derives it from the iRECIST timepoint response, the
criterion written for immunotherapy: an unconfirmed progression (iUPD) is "undetermined", not
"worsened", because iRECIST asks for confirmation before calling it progression, and
pseudoprogression and dissociated response begin exactly there. Only confirmed progression (iCPD)
is "worsened". The mapping and its reasons are in docs/rules/disease-status.md.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

from service.domain.results import ImmuneResponse


class DiseaseTrend(StrEnum):
    IMPROVED = "improved"
    STABLE = "stable"
    WORSENED = "worsened"
    UNDETERMINED = "undetermined"


TREND_OF_IRECIST: Final = MappingProxyType(
    {
        ImmuneResponse.ICR: DiseaseTrend.IMPROVED,
        ImmuneResponse.IPR: DiseaseTrend.IMPROVED,
        ImmuneResponse.ISD: DiseaseTrend.STABLE,
        ImmuneResponse.INON_CR_NON_UPD: DiseaseTrend.STABLE,
        ImmuneResponse.IUPD: DiseaseTrend.UNDETERMINED,
        ImmuneResponse.ICPD: DiseaseTrend.WORSENED,
        ImmuneResponse.NE: DiseaseTrend.UNDETERMINED,
    }
)


def disease_trend(response: ImmuneResponse) -> DiseaseTrend:
    """The disease status that an iRECIST timepoint response stands for."""
    return TREND_OF_IRECIST[response]
