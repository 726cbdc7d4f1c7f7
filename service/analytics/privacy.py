"""Small-cell suppression for the research portal: no count of 1 to `threshold - 1` patients is
shown, nor derivable from what one response shows.

Model. A response is built from *base cells*: disjoint counts of patients (e.g. the patients of
group g in category c of one characteristic). Several partitions of the same patients may appear
in one response (each Table 1 characteristic, the response categories, ...); `link` records that
two sums of base cells count the same patients (each partition adds up to the same group sizes).
A *candidate* is a count the response would show: a base cell or a sum of base cells (a row or
column total, ORR = CR + PR, ...).

Rules (`protect`):
1. Primary suppression: a candidate whose value is 1 to `threshold - 1` is not shown.
2. Complementary suppression: what is shown (plus the zero cells and the links, which a reader
   may know) must not determine any *sensitive* quantity: a base cell or a candidate with a value
   of 1 to `threshold - 1`. Exactness is checked with linear algebra: a quantity q is determined by
   the shown equations A x = b exactly when q lies in the row space of A (then q = y'A for some y),
   i.e. when q is orthogonal to the null space of A. While some sensitive q is determined, the
   shown candidate with the smallest value among those that q's derivation uses (non-zero y) is
   suppressed too (inner cells before totals), and the check runs again. Each round handles every
   determined quantity at once (one complement per derivation not already broken in that round)
   and removes at least one shown count, so the loop ends (at worst only zeros stay shown).
3. Zero cells are shown (a zero is no patient) and treated as known; a zero is never chosen as a
   complement (hiding it would protect nothing, as the reader may know it from the zero cells).

Why linear algebra suffices here: when a sensitive q is not in the row space, there is a direction
d in the null space with q'd != 0 and d = 0 on the zero cells; every other base cell is >= 1, so a
small move along d keeps all cells non-negative and changes q: the shown numbers are consistent
with more than one value of q. For tables with margins (network matrices) the constraint matrix
is totally unimodular, so integer alternatives exist as well; the property tests check exactly
that with linear programs over the shown numbers of whole API responses.

Suppression alone does not survive differencing between two responses (two overlapping cohorts,
a filter and its complement): every count shown to a protected role is therefore also perturbed
by the cell-key method (`CellKeyPerturbation`, docs/privacy/disclosure-control.md): each patient
has a secret record key, a count's cell key is the sum of its patients' record keys, and a fixed
perturbation table maps (count, cell key) to the noise. The same patients always get the same
noise (repeating or rephrasing a query gains nothing) and the two sides of a difference get
independent noise. Only the trusted-analyst role sees exact counts.

Other outputs: a proportion is shown only when numerator and denominator are; curves are cut at
the first time fewer than `threshold` patients remain at risk; tests and models refuse groups
with fewer than `threshold` patients and say why (`refusal_reason`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The portal's default minimum cell size (counts 1-10 are never shown).
DEFAULT_THRESHOLD = 11


def is_small(value: int, threshold: int) -> bool:
    """A count that must not be shown: 1 to threshold - 1 (zero is shown)."""
    return 0 < value < threshold


def refusal_reason(name: str, n: int, threshold: int) -> str | None:
    """Why a group cannot enter a test or model, or None when it can."""
    if n == 0:
        return f"{name} has no patients in this cohort"
    if n < threshold:
        return f"{name} has fewer than {threshold} patients; tests and models need at least {threshold}"
    return None


@dataclass
class DisclosureProblem:
    """Base cells, links between their sums, and the candidate counts of one response."""

    values: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)  # cell key of each base cell (sum of record keys)
    links: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    candidates: dict[str, tuple[tuple[int, ...], bool]] = field(default_factory=dict)
    fixed: set[str] = field(default_factory=set)

    def cells(self, values: Sequence[int], keys: Sequence[int] | None = None) -> tuple[int, ...]:
        """Add base cells (one partition or part of one) with the sums of their patients' record
        keys (`keys`, zeros when not given); returns their indices."""
        start = len(self.values)
        if any(v < 0 for v in values):
            raise ValueError("counts are never negative")
        self.values.extend(int(v) for v in values)
        self.keys.extend(int(k) for k in keys) if keys is not None else self.keys.extend(0 for _ in values)
        return tuple(range(start, len(self.values)))

    def link(self, a: Sequence[int], b: Sequence[int]) -> None:
        """Record that the base cells `a` and `b` add up to the same number (known to a reader)."""
        if sum(self.values[i] for i in a) != sum(self.values[i] for i in b):
            raise ValueError("linked sums differ")
        self.links.append((tuple(a), tuple(b)))

    def candidate(self, key: str, cells: Sequence[int], *, total: bool = False, fixed: bool = False) -> str:
        """A count the response would show (`total`: a margin, suppressed after inner cells;
        `fixed`: always shown, e.g. group sizes already checked to be large enough)."""
        if key in self.candidates:
            raise ValueError(f"duplicate candidate {key!r}")
        self.candidates[key] = (tuple(cells), total)
        if fixed:
            self.fixed.add(key)
        return key

    def value(self, key: str) -> int:
        return sum(self.values[i] for i in self.candidates[key][0])

    def cell_key(self, key: str) -> int:
        """The cell key of a candidate: the sum of its patients' record keys, modulo the range."""
        return sum(self.keys[i] for i in self.candidates[key][0]) % RECORD_KEY_RANGE

    def _vector(self, cells: Sequence[int]) -> np.ndarray:
        v = np.zeros(len(self.values))
        v[list(cells)] = 1.0
        return v


def _spaces(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Null space of `a` and the eigenpairs of a'a spanning its row space (eigh of the n x n Gram
    matrix: much cheaper than an SVD of the tall matrix, and exact enough for 0/1 rows)."""
    if a.size == 0:
        return np.eye(n), np.empty((n, 0)), np.empty(0)
    lam, vec = np.linalg.eigh(a.T @ a)
    tol = max(float(lam.max()), 1.0) * 1e-10
    return vec[:, lam <= tol], vec[:, lam > tol], lam[lam > tol]


def protect(problem: DisclosureProblem, threshold: int) -> frozenset[str]:
    """The candidate keys to suppress (module docstring, rules 1-3)."""
    if threshold <= 1:
        return frozenset()
    n = len(problem.values)
    values = np.asarray(problem.values)
    keys = list(problem.candidates)
    vectors = {k: problem._vector(problem.candidates[k][0]) for k in keys}
    cand_values = {k: problem.value(k) for k in keys}
    suppressed = {k for k in keys if is_small(cand_values[k], threshold)}
    if suppressed & problem.fixed:
        raise ValueError(f"counts that must be shown are small: {sorted(suppressed & problem.fixed)}")
    sensitive = [np.eye(n)[i] for i in range(n) if is_small(int(values[i]), threshold)]
    sensitive += [vectors[k] for k in keys if is_small(cand_values[k], threshold)]
    if not sensitive:
        return frozenset(suppressed)
    fixed = [np.eye(n)[i] for i in range(n) if values[i] == 0]
    fixed += [problem._vector(a) - problem._vector(b) for a, b in problem.links]
    sens = np.array(sensitive)
    while True:
        shown_keys = [k for k in keys if k not in suppressed]
        rows = np.array([vectors[k] for k in shown_keys] + fixed) if shown_keys or fixed else np.empty((0, n))
        null, span, lam = _spaces(rows, n)
        exposure = np.linalg.norm(sens @ null, axis=1) if null.size else np.zeros(len(sens))
        determined = np.flatnonzero(exposure < 1e-6)
        if determined.size == 0:
            return frozenset(suppressed)
        # One complement per determined quantity per round (one decomposition per round). The
        # minimum-norm derivation q = y'A is y = A (A'A)^+ q; its non-zero y are the counts used.
        ys = rows @ (span @ ((span.T @ sens[determined].T) / lam[:, None]))
        added: set[str] = set()
        for column in range(ys.shape[1]):
            used = [
                k
                for k, coef in zip(shown_keys, ys[: len(shown_keys), column], strict=True)
                if abs(coef) > 1e-9 and k not in problem.fixed and cand_values[k] > 0
            ]
            if not used or added.intersection(used):
                continue  # a complement chosen this round already breaks this derivation
            added.add(min(used, key=lambda k: (problem.candidates[k][1], cand_values[k], k)))
        if not added:
            # Determined by fixed counts, zeros and links alone: the caller showed too much as fixed.
            raise ValueError("a small count is determined by counts marked as always shown")
        suppressed |= added


def shown(
    problem: DisclosureProblem,
    suppressed: frozenset[str],
    key: str,
    perturbation: CellKeyPerturbation | None = None,
) -> int | None:
    """The value of a candidate as the response shows it: None when suppressed, perturbed by its
    cell key for protected roles (`perturbation`; None: the exact count)."""
    if key in suppressed:
        return None
    value = problem.value(key)
    return value if perturbation is None else perturbation.perturb(value, problem.cell_key(key))


def cut_curve(at_risk: Sequence[int], threshold: int) -> int:
    """How many leading points of a curve may be shown: up to the first with fewer than `threshold`
    patients at risk (that point and everything after it are cut)."""
    for i, n in enumerate(at_risk):
        if n < threshold:
            return i
    return len(at_risk)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Minimum cell size per role: the researcher default, lowered for approved studies."""

    by_role: Mapping[str, int]
    default: int = DEFAULT_THRESHOLD

    def for_roles(self, roles: Sequence[str]) -> int:
        """The lowest threshold among the caller's roles (the default when none is listed)."""
        found = [self.by_role[r] for r in roles if r in self.by_role]
        return min(found) if found else self.default


# -- cell-key perturbation ------------------------------------------------------------------------

#: Record keys are 0 to RECORD_KEY_RANGE - 1; a cell key is the sum of its record keys modulo it
#: (the range of the ABS TableBuilder and ONS implementations).
RECORD_KEY_RANGE = 256

_RECORD_KEY_CONTEXT = b"oncoresponse/stats/cell-key-record-key/"


def record_key(patient_id: str, secret: str) -> int:
    """A patient's record key: HMAC-SHA256 of the FHIR id under the deployment's secret (domain
    separated from the pseudonymous `patient_key`, which logs carry), reduced to the key range.
    Fixed for the life of the secret, so a patient always adds the same amount to a cell key."""
    digest = hmac.new(secret.encode(), _RECORD_KEY_CONTEXT + patient_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % RECORD_KEY_RANGE


def cell_key(record_keys: Sequence[int]) -> int:
    """The cell key of a count: the sum of its patients' record keys modulo the range."""
    return sum(record_keys) % RECORD_KEY_RANGE


@dataclass(frozen=True, slots=True)
class CellKeyPerturbation:
    """The perturbation table: noise for a (count, cell key) pair.

    Noise d in -max_noise..max_noise has triangular weights max_noise + 1 - |d| (for the default
    of 3: 1 2 3 4 3 2 1 out of 16; mean 0, variance 2.5). A zero stays zero (no patients, no
    noise) and a positive count stays positive (the weights of d <= -count are dropped for counts
    up to max_noise). The noise is the inverse distribution function at the cell key's position in
    the key range, so it is a pure function of the count and the cell key."""

    max_noise: int = 3

    def noise(self, count: int, key: int) -> int:
        if count <= 0:
            return 0
        if not 0 <= key < RECORD_KEY_RANGE:
            raise ValueError(f"cell key {key} outside 0..{RECORD_KEY_RANGE - 1}")
        support = [d for d in range(-self.max_noise, self.max_noise + 1) if count + d >= 1]
        weights = [self.max_noise + 1 - abs(d) for d in support]
        position = key * sum(weights)  # compare key / RANGE with cumulative / total, in integers
        cumulative = 0
        for d, w in zip(support, weights, strict=True):
            cumulative += w
            if position < cumulative * RECORD_KEY_RANGE:
                return d
        return support[-1]

    def perturb(self, count: int, key: int) -> int:
        return count + self.noise(count, key)


#: The portal's table for protected roles (docs/privacy/disclosure-control.md).
PORTAL_PERTURBATION = CellKeyPerturbation()
