"""The portal's disclosure control under attack, and what it costs the researchers.

An automated attacker with a researcher token (minimum cell size 11, counts perturbed by the
cell-key method, docs/privacy/disclosure-control.md) queries the 177-patient cohort shaped like the
seed study (Guan et al., Sci Rep 2024) as often as it likes: differences across filter complements,
overlapping filters, `as_of` shifts, the survival and subgroup endpoints, and repeated queries.
The truth comes from the audited trusted-analyst scope (exact counts). The attack succeeds on a
count when the shown numbers leave only one value possible, knowing the perturbation table (at
most `MAX_NOISE` per shown count, Kerckhoffs: the table is public, only the record keys are secret).

The utility test states the error a protected role sees on the paper's figures: every count within
`MAX_NOISE` of the paper's, cohort-level rates within 2.5 percentage points (the worst case of
(30 +- 3) / (177 +- 3) for ORR is 2.0 points).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

import httpx

from service.analytics.privacy import PORTAL_PERTURBATION
from tests.unit.api.test_stats_acceptance import TABLE1, TRUSTED, Acceptance, acceptance, assessed
from tests.unit.api.test_stats_api import bearer, token

__all__ = ["acceptance", "assessed"]  # the fixtures, re-used from the acceptance tests

LOG = logging.getLogger(__name__)  # the figures: pytest --log-cli-level=INFO
GROUPS = ("DR", "PsPD", "CR-PR", "SD", "PD")
MAX_NOISE = PORTAL_PERTURBATION.max_noise
RESEARCHER = "stats.read"
APPROVED = "stats.read stats.approved-study"
PARTITIONS: Mapping[str, tuple[str, ...]] = {
    "sex": ("male", "female"),
    "age_band": ("<60", ">=60"),
    "ecog_band": ("0-1", ">=2"),
    "line": ("first", "later"),
    "ici_class": ("PD-1", "PD-L1"),
    "strategy": ("monotherapy", "combination"),
}


class Portal:
    def __init__(self, http: httpx.AsyncClient, scope: str) -> None:
        self.http = http
        self.headers = bearer(token(scope))
        self.queries = 0

    async def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        self.queries += 1
        r = await self.http.get(f"{path}?{urlencode(list(params))}", headers=self.headers)
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()["report"]
        return report

    async def n(self, params: Sequence[tuple[str, str]] = ()) -> int | None:
        """The cohort size `/stats/response` shows for a filter (None: suppressed)."""
        value = (await self.get("/stats/response", params))["n"]
        return None if value is None else int(value)


def _groups(chosen: Sequence[str]) -> list[tuple[str, str]]:
    return [("response_group", g) for g in chosen]


@dataclass
class Target:
    """A count the attacker wants, its truth, and every estimate with the number of perturbed
    counts it combines (each may be off by up to MAX_NOISE)."""

    name: str
    truth: int
    estimates: list[tuple[int, int]] = field(default_factory=list)

    def add(self, terms: Sequence[int | None], signs: Sequence[int]) -> None:
        if any(t is None for t in terms):
            return  # a suppressed count: this route gives nothing
        value = sum(s * t for s, t in zip(signs, terms, strict=True) if t is not None)
        self.estimates.append((value, len(terms)))

    def possible(self) -> range:
        """The values consistent with every estimate (true count within terms x MAX_NOISE of it)."""
        low = max(v - k * MAX_NOISE for v, k in self.estimates)
        high = min(v + k * MAX_NOISE for v, k in self.estimates)
        return range(max(low, 0), high + 1)

    def best_guess(self) -> int:
        """The attacker's point estimate: the mean of its estimates, weighted by 1 / variance."""
        weights = [1 / k for _, k in self.estimates]
        return round(sum(w * v for w, (v, _) in zip(weights, self.estimates, strict=True)) / sum(weights))


async def _attack_group(attacker: Portal, target: Target, group: str, base: list[tuple[str, str]]) -> None:
    others = [g for g in GROUPS if g != group]
    whole = await attacker.n(base)
    # 1. filter complement: everyone minus every other response group
    target.add([whole, await attacker.n(base + _groups(others))], [1, -1])
    # 2. the same complement inside each half of every binary characteristic, added up
    for name, halves in PARTITIONS.items():
        terms: list[int | None] = []
        for half in halves:
            terms += [
                await attacker.n([*base, (name, half)]),
                await attacker.n([*base, (name, half), *_groups(others)]),
            ]
        target.add(terms, [1, -1] * len(halves))
    # 3. overlapping filters: n(X or Y) + n(X or Z) - n(X or Y or Z)
    for y, z in pairwise(others):
        target.add(
            [
                await attacker.n(base + _groups([group, y])),
                await attacker.n(base + _groups([group, z])),
                await attacker.n(base + _groups([group, y, z])),
            ],
            [1, 1, -1],
        )
    # 4. the response report's own group counts: n minus the other groups as shown
    report = await attacker.get("/stats/response", base)
    shown = {c["label"]: c["count"] for c in report["groups"]}
    target.add([report["n"], *(shown[g] for g in others)], [1, *([-1] * len(others))])
    # 5. survival endpoint: the curves' n split by sex, with and without the other groups
    for endpoint in ("os", "pfs"):
        with_all = await attacker.get("/stats/survival", [*base, ("endpoint", endpoint), ("by", "sex")])
        without = await attacker.get(
            "/stats/survival", [*base, *_groups(others), ("endpoint", endpoint), ("by", "sex")]
        )
        if not with_all["refused"] and not without["refused"]:
            target.add(
                [c["n"] for c in with_all["curves"]] + [c["n"] for c in without["curves"]],
                [1] * len(with_all["curves"]) + [-1] * len(without["curves"]),
            )


async def test_differencing_attacker_recovers_no_protected_count(
    acceptance: Acceptance,
) -> None:
    attacker = Portal(acceptance.http, RESEARCHER)
    analyst = Portal(acceptance.http, TRUSTED)
    targets: list[Target] = []
    # as_of shifts: the cohort as it stood at earlier dates is a different set of patients
    for as_of in (None, date(2021, 6, 30), date(2022, 6, 30)):
        base = [] if as_of is None else [("as_of", as_of.isoformat())]
        truth = await analyst.get("/stats/response", base)
        counts = {c["label"]: c["count"] for c in truth["groups"]}
        for group in GROUPS:
            if counts[group] == 0:
                continue  # a zero is shown as zero to every role (no patient, nothing to protect)
            target = Target(f"{group} as_of={as_of}", counts[group])
            await _attack_group(attacker, target, group, base)
            targets.append(target)
    # the subgroup endpoint: true PD patients treated beyond progression or not, added up
    pd_count = next(t for t in targets if t.name == "PD as_of=None")
    beyond = await attacker.get("/stats/subgroups/treatment-beyond-progression")
    if not beyond["refused"]:
        pd_count.add([c["n"] for c in beyond["curves"]], [1] * len(beyond["curves"]))

    # Repeating a query, or phrasing it differently for the same patients, shows the same numbers:
    # averaging them gains nothing.
    again = [await attacker.n(_groups(["PsPD", "DR"])) for _ in range(5)]
    reordered = await attacker.n(_groups(["DR", "PsPD", "DR"]))
    late = await attacker.n([*_groups(["DR", "PsPD"]), ("as_of", "2030-01-01")])  # after every start
    assert len({*again, reordered, late}) == 1

    # not every count falls to the attacker's best guess (chance alone makes some right)
    exact_guesses = 0
    errors = []
    for target in targets:
        assert target.estimates, target.name
        possible = target.possible()
        assert target.truth in possible, (target.name, target.truth, possible)
        # the attack fails: more than one value stays consistent with everything shown
        assert len(possible) >= 2, (target.name, target.truth, target.estimates)
        guess = target.best_guess()
        exact_guesses += guess == target.truth
        errors.append(abs(guess - target.truth))
    widths = [len(t.possible()) for t in targets]
    LOG.info(
        "attack: %d queries, %d protected counts, %d estimates; consistent values per count min %d, "
        "median %d; best guess exact %d/%d, mean abs error %.2f, max %d",
        attacker.queries,
        len(targets),
        sum(len(t.estimates) for t in targets),
        min(widths),
        sorted(widths)[len(widths) // 2],
        exact_guesses,
        len(targets),
        sum(errors) / len(errors),
        max(errors),
    )
    assert exact_guesses < len(targets)
    # The PsPD count of the issue (7 of 177) is no longer the plain difference of two queries.
    pspd = next(t for t in targets if t.name == "PsPD as_of=None")
    assert pspd.truth == 7
    assert len(pspd.possible()) >= 2


async def test_protected_roles_see_the_seed_study_figures_within_the_stated_error(
    acceptance: Acceptance,
) -> None:
    researcher = Portal(acceptance.http, RESEARCHER)
    approved = Portal(acceptance.http, APPROVED)
    errors: list[int] = []
    for portal in (researcher, approved):
        report = await portal.get("/stats/response")
        assert abs(report["n"] - 177) <= MAX_NOISE
        rates = {r["name"]: r for r in report["rates"]}
        # Guan 2024 Fig. 1a: ORR 30/177 = 17.0 %, DCR 147/177 = 83.1 % at the first evaluation
        for name, paper in (("orr_first_evaluation", 30 / 177), ("dcr_first_evaluation", 147 / 177)):
            assert abs(rates[name]["numerator"] - round(paper * 177)) <= MAX_NOISE
            assert abs(rates[name]["estimate"] - paper) <= 0.025, (name, rates[name])
        # DR 12 (6.8 %) and PsPD 7 (4.0 %): shown at the approved study's cell size of 1; at the
        # researcher's 11, PsPD is suppressed and so is DR (it would give PsPD away with the atypical total)
        if portal is approved:
            assert abs(rates["dr"]["numerator"] - 12) <= MAX_NOISE
            assert abs(rates["pspd"]["numerator"] - 7) <= MAX_NOISE
        else:
            assert rates["pspd"]["numerator"] is None
        baseline = await portal.get("/stats/baseline")
        paper_sizes = dict(zip(GROUPS, (12, 7, 25, 103, 30), strict=True))  # Table 1 header
        for group, shown_size in zip(baseline["groups"], baseline["group_sizes"], strict=True):
            assert abs(shown_size - paper_sizes[group]) <= MAX_NOISE
        rows = {(row["variable"], row["category"]): row for row in baseline["rows"]}
        for key, expected in TABLE1.items():
            row = rows[key]
            shown_counts = [row["total"], *row["counts"]]
            kept = [expected[1 + GROUPS.index(g)] for g in baseline["groups"]]  # refused groups left out
            paper_counts = [sum(kept), *kept]
            for shown, paper in zip(shown_counts, paper_counts, strict=True):
                if shown is None:
                    assert portal is researcher  # suppressed: only at the researcher's cell size
                    continue
                assert abs(shown - paper) <= MAX_NOISE, (key, shown, paper)
                errors.append(abs(shown - paper))
            if row["total"] is not None:
                kept_size = sum(paper_sizes[g] for g in baseline["groups"])
                assert abs(row["total_percent"] - 100 * sum(kept) / kept_size) <= 2.5, key
    LOG.info(
        "utility: %d Table 1 counts shown to protected roles, mean abs error %.2f, max %d (bound %d); %d exact",
        len(errors),
        sum(errors) / len(errors),
        max(errors),
        MAX_NOISE,
        sum(e == 0 for e in errors),
    )
    assert 0 < sum(errors) / len(errors) < MAX_NOISE


async def test_km_for_protected_roles_stays_on_the_analysts_curve(acceptance: Acceptance) -> None:
    """Survival estimates rounded to whole percent and read on a weekly grid: within half a
    percentage point of the exact curve at every point shown, medians within half a week."""
    analyst = Portal(acceptance.http, TRUSTED)
    researcher = Portal(acceptance.http, RESEARCHER)
    for endpoint in ("os", "pfs"):
        params = [("endpoint", endpoint), ("by", "response_class")]
        exact = {c["group"]: c for c in (await analyst.get("/stats/survival", params))["curves"]}
        shown = {c["group"]: c for c in (await researcher.get("/stats/survival", params))["curves"]}
        for group, curve in shown.items():
            days = [p["day"] for p in exact[group]["points"]]
            for point in curve["points"]:
                step = max(i for i, d in enumerate(days) if d <= point["day"])
                assert abs(point["survival"] - exact[group]["points"][step]["survival"]) <= 0.005
                assert point["day"] % 7 == 0
            if exact[group]["median_days"] is not None and curve["median_days"] is not None:
                assert abs(curve["median_days"] - exact[group]["median_days"]) <= 3.5
            assert abs(curve["n"] - exact[group]["n"]) <= MAX_NOISE
