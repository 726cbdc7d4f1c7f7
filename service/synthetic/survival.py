"""Survival times and follow-up for generated patients.

Generating medians (months) follow the seed study (Guan et al., Sci Rep 2024, "Prognosis of
patients with DR", Fig. 2c/d, 2e/f and Fig. 3a/b); times are exponential with that median. What
the paper does not give is marked [P]:

| group (pan-tumour) | PFS | OS | source |
|---|---|---|---|
| DR | 11.3 | 32.3 with local treatment, 21.9 without (23.9 overall) | text, Fig. 2c-e |
| PsPD | 10.0 | 24.5 | [P] between AR (10.9 / 24.1) and DR |
| CR-PR | 35.4 | not reached: 60 [P] | text |
| SD | 8.5 | 16.8 | text |
| PD | 1.6 | 4.8 with local treatment, 6.1 without (5.6 overall); 7.9 treated beyond progression, 4.8 not | text, Fig. 2f/2g |
| HPD | 1.4 [P] | 3.5 [P] | (faster than true PD) |
| delayed response | 20.0 [P] | 36.0 [P] | |

NSCLC cohort (Fig. 3): DR 6.7 / 14.9, CR-PR 23.0 / NR (60 [P]), SD 7.8 / 14.1, PD 3.1 / 3.2.

True PD, local treatment and treatment beyond progression (Fig. 2f/2g) [P]: the paper's four OS
medians (local 4.8 / none 6.1; beyond progression 7.9 / not 4.8) cannot all be generating medians of
one partition. A true-PD patient with local treatment draws from "PD+local" (4.8); without, from
"PD+beyond" (7.9) when treated beyond progression, else "PD-beyond" (4.8). So Fig. 2g holds as
generated, and the no-local-treatment group (a mix of 7.9 and 4.8, about half each in the pan-tumour
cohort) comes out near the paper's 6.1. "PD-local" is kept as the paper's value but no longer drawn
from. NSCLC: no subgroup data, 3.2 throughout.

The PFS median drives the *drawn* progression time of trajectories whose progression is not fixed
by the pattern (SD, PR, delayed response, PsPD after recovery, DR after detection); it is shown at
the first scan on or after the drawn time. Realised RECIST PFS therefore also depends on the scan
schedule and, for a DR by new lesion, equals the DR timepoint (RECIST PD there); the generating
medians are recorded in the truth for comparison.

Administrative censoring: each patient's potential follow-up is uniform in [1.3, 27.6] months (the
paper's follow-up range), but never shorter than the scans the pattern needs. Death is drawn
conditional on surviving past those scans (an earlier draw is moved just after them).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

DAYS_PER_MONTH = 30.4375
MIN_FOLLOW_UP_MONTHS = 1.3
MAX_FOLLOW_UP_MONTHS = 27.6


@dataclass(frozen=True, slots=True)
class Medians:
    pfs_months: float
    os_months: float


PAN_TUMOUR_MEDIANS: Mapping[str, Medians] = {
    "DR": Medians(11.3, 23.9),
    "DR+local": Medians(11.3, 32.3),
    "DR-local": Medians(11.3, 21.9),
    "PsPD": Medians(10.0, 24.5),
    "CR-PR": Medians(35.4, 60.0),
    "SD": Medians(8.5, 16.8),
    "PD": Medians(1.6, 5.6),
    "PD+local": Medians(1.6, 4.8),
    "PD-local": Medians(1.6, 6.1),
    "PD+beyond": Medians(1.6, 7.9),
    "PD-beyond": Medians(1.6, 4.8),
    "HPD": Medians(1.4, 3.5),
    "DeR": Medians(20.0, 36.0),
}
NSCLC_MEDIANS: Mapping[str, Medians] = {
    "DR": Medians(6.7, 14.9),
    "DR+local": Medians(6.7, 17.0),
    "DR-local": Medians(6.7, 13.0),
    "CR-PR": Medians(23.0, 60.0),
    "SD": Medians(7.8, 14.1),
    "PD": Medians(3.1, 3.2),
    "PD+local": Medians(3.1, 3.2),
    "PD-local": Medians(3.1, 3.2),
    "PD+beyond": Medians(3.1, 3.2),
    "PD-beyond": Medians(3.1, 3.2),
    "PsPD": Medians(10.0, 24.5),
    "HPD": Medians(1.4, 3.5),
    "DeR": Medians(20.0, 36.0),
}


def exponential_days(rng: random.Random, median_months: float) -> int:
    """An exponential time (whole days) with the given median."""
    rate = math.log(2) / (median_months * DAYS_PER_MONTH)
    return max(1, round(rng.expovariate(rate)))


def death_day(rng: random.Random, median_months: float, *, after_day: int) -> int:
    """Death after `after_day`: a draw that falls earlier is moved to 1-8 weeks after it.

    Moving (rather than redrawing) keeps the median whenever it lies beyond `after_day`.
    """
    day = exponential_days(rng, median_months)
    return day if day > after_day else after_day + rng.randint(7, 56)


def follow_up_day(rng: random.Random, *, at_least_day: int) -> int:
    """Administrative end of follow-up: uniform in [1.3, 27.6] months, >= `at_least_day`."""
    low = max(round(MIN_FOLLOW_UP_MONTHS * DAYS_PER_MONTH), at_least_day)
    high = max(low, round(MAX_FOLLOW_UP_MONTHS * DAYS_PER_MONTH))
    return rng.randint(low, high)


def progression_day(rng: random.Random, median_months: float, *, after_day: int) -> int:
    """A progression time after `after_day`; an earlier draw is moved to just after it."""
    return max(after_day + 1, exponential_days(rng, median_months))
