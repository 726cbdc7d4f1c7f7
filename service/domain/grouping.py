"""Patient-level ResponseGroup of the seed study (FHIR contract section 2).

DR if a dissociated response was found at any evaluated timepoint, else PsPD if pseudoprogression
was found (`dr_before_pspd=False` swaps the two), else the RECIST 1.1 best overall response:
CR or PR -> CR-PR; SD or NonCR-NonPD -> SD; PD -> PD; NE or no follow-up -> NE.

Decision (agreed with the synthetic-data engineer): by default the CONFIRMED best overall response
is used (`response_group_uses_confirmed_bor=True`), as RECIST 1.1 section 4.6 requires confirmation
in non-randomised studies and the seed study (Guan et al., Sci Rep 2024) is one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from service.domain.parameters import AssessmentParameters
from service.domain.results import (
    AtypicalFinding,
    AtypicalKind,
    BestResponse,
    ImmuneResponse,
    Response,
    ResponseGroup,
    RuleTrace,
)

_FROM_BOR: dict[Response, ResponseGroup] = {
    Response.CR: ResponseGroup.CR_PR,
    Response.PR: ResponseGroup.CR_PR,
    Response.SD: ResponseGroup.SD,
    Response.NON_CR_NON_PD: ResponseGroup.SD,
    Response.PD: ResponseGroup.PD,
    Response.NE: ResponseGroup.NE,
}


def response_group(
    atypical: Sequence[AtypicalFinding],
    best: BestResponse | None,
    best_confirmed: BestResponse | None,
    params: AssessmentParameters,
) -> tuple[ResponseGroup, RuleTrace]:
    if atypical:
        dr = next((f for f in atypical if f.kind is _DR), None)
        pspd = next((f for f in atypical if f.kind is _PSPD), None)
        order = [(dr, ResponseGroup.DR), (pspd, ResponseGroup.PSPD)]
        if not params.dr_before_pspd:
            order.reverse()
        for finding, group in order:
            if finding is not None:
                return group, RuleTrace.of(
                    f"group/{group}", definition=finding.definition, index=finding.timepoint_index
                )
    chosen = best_confirmed if params.response_group_uses_confirmed_bor else best
    if chosen is None:
        return _NE, _NO_FOLLOW_UP
    response = chosen.response
    group = _FROM_BOR.get(response, _NE) if isinstance(response, Response) else _NE
    return group, _from_bor_trace(response, params.response_group_uses_confirmed_bor)


# Enum members as module constants (see `engine`, "Performance").
_DR = AtypicalKind.DR
_PSPD = AtypicalKind.PSPD
_NE = ResponseGroup.NE
# Traces are values: these few recur for every patient and are made once (see `recist`).
_NO_FOLLOW_UP = RuleTrace.of("group/ne-no-follow-up")


@functools.lru_cache(maxsize=None, typed=True)
def _from_bor_trace(bor: Response | ImmuneResponse, confirmed: bool) -> RuleTrace:
    return RuleTrace.of("group/from-bor", bor=bor, confirmed=confirmed)
