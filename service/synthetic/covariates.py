"""Patient covariates and the seed study's characteristic tables.

Guan et al., Sci Rep 2024 (doi 10.1038/s41598-024-84009-8): Table 1 (pan-tumour cohort, n = 177)
and Table 2 (NSCLC cohort, n = 80), per response-group column. The printed percentages contain
typos; the counts are used. Two decisions where the table contradicts itself [P]:
- Table 2 "PD-L1 not available" prints 19 and ">= 50 %" prints 10 in the All column, but the group
  columns sum to 24 (3+9+6+6) and 5 (1+2+1+1); the group columns are used (they sum to each
  group's n). Table 2 BMI >= 18.6 prints 72 in the All column; the group columns sum to 74.
- "Others" tumour types are split into ovarian / pancreatic / other so that the DR column matches the
  text (DR: ovarian 2, pancreatic 2) and every ovarian cancer is in a female patient.

Allocation: for each group and characteristic, a list with exactly the table's counts is shuffled
with the cohort's seeded generator and dealt to the group's patients, so every marginal count is
exact; characteristics are independent of each other except sex/ovarian.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

Table = Mapping[str, Mapping[str, Mapping[str, int]]]  # group -> characteristic -> category -> n

# Table 1, pan-tumour cohort (group columns DR, PsPD, CR/PR, SD, PD).
TABLE1: Table = {
    "DR": {
        "sex": {"male": 10, "female": 2},
        "age": {"<60": 4, ">=60": 8},
        "smoking": {"never": 6, "previous/current": 6},
        "ecog": {"0-1": 10, ">=2": 2},
        "bmi": {"<18.6": 2, ">=18.6": 10},
        "tumour_type": {"NSCLC": 4, "SCLC": 2, "GC": 1, "HCC": 1, "Others": 4},
        "line": {"first": 6, "later": 6},
        "ici_class": {"PD-1": 11, "PD-L1": 1},
        "strategy": {"monotherapy": 0, "combination": 12},
        "pdl1": {"NA": 8, "<1": 1, "1-49": 2, ">=50": 1},
        "nlr": {"<5": 10, ">=5": 2},
        "radiotherapy": {"no": 7, "yes": 5},
    },
    "PsPD": {
        "sex": {"male": 3, "female": 4},
        "age": {"<60": 2, ">=60": 5},
        "smoking": {"never": 5, "previous/current": 2},
        "ecog": {"0-1": 5, ">=2": 2},
        "bmi": {"<18.6": 3, ">=18.6": 4},
        "tumour_type": {"NSCLC": 1, "SCLC": 0, "GC": 2, "HCC": 1, "Others": 3},
        "line": {"first": 3, "later": 4},
        "ici_class": {"PD-1": 7, "PD-L1": 0},
        "strategy": {"monotherapy": 3, "combination": 4},
        "pdl1": {"NA": 1, "<1": 3, "1-49": 2, ">=50": 1},
        "nlr": {"<5": 5, ">=5": 2},
        "radiotherapy": {"no": 6, "yes": 1},
    },
    "CR-PR": {
        "sex": {"male": 23, "female": 2},
        "age": {"<60": 8, ">=60": 17},
        "smoking": {"never": 10, "previous/current": 15},
        "ecog": {"0-1": 22, ">=2": 3},
        "bmi": {"<18.6": 2, ">=18.6": 23},
        "tumour_type": {"NSCLC": 12, "SCLC": 0, "GC": 7, "HCC": 0, "Others": 6},
        "line": {"first": 14, "later": 11},
        "ici_class": {"PD-1": 21, "PD-L1": 4},
        "strategy": {"monotherapy": 4, "combination": 21},
        "pdl1": {"NA": 14, "<1": 6, "1-49": 2, ">=50": 3},
        "nlr": {"<5": 25, ">=5": 0},
        "radiotherapy": {"no": 18, "yes": 7},
    },
    "SD": {
        "sex": {"male": 72, "female": 31},
        "age": {"<60": 50, ">=60": 53},
        "smoking": {"never": 55, "previous/current": 48},
        "ecog": {"0-1": 81, ">=2": 22},
        "bmi": {"<18.6": 9, ">=18.6": 94},
        "tumour_type": {"NSCLC": 36, "SCLC": 9, "GC": 22, "HCC": 8, "Others": 28},
        "line": {"first": 44, "later": 59},
        "ici_class": {"PD-1": 94, "PD-L1": 9},
        "strategy": {"monotherapy": 20, "combination": 83},
        "pdl1": {"NA": 23, "<1": 58, "1-49": 16, ">=50": 6},
        "nlr": {"<5": 84, ">=5": 19},
        "radiotherapy": {"no": 76, "yes": 27},
    },
    "PD": {
        "sex": {"male": 8, "female": 22},
        "age": {"<60": 11, ">=60": 19},
        "smoking": {"never": 16, "previous/current": 14},
        "ecog": {"0-1": 26, ">=2": 4},
        "bmi": {"<18.6": 2, ">=18.6": 28},
        "tumour_type": {"NSCLC": 0, "SCLC": 5, "GC": 7, "HCC": 5, "Others": 13},
        "line": {"first": 12, "later": 18},
        "ici_class": {"PD-1": 26, "PD-L1": 4},
        "strategy": {"monotherapy": 5, "combination": 25},
        "pdl1": {"NA": 10, "<1": 15, "1-49": 5, ">=50": 0},
        "nlr": {"<5": 23, ">=5": 7},
        "radiotherapy": {"no": 24, "yes": 6},
    },
}

# Table 2, NSCLC cohort (group columns DR, CR/PR, SD, PD); "histology" replaces tumour type.
TABLE2: Table = {
    "DR": {
        "sex": {"male": 8, "female": 2},
        "age": {"<60": 5, ">=60": 5},
        "smoking": {"never": 4, "previous/current": 6},
        "ecog": {"0-1": 10, ">=2": 0},
        "bmi": {"<18.6": 0, ">=18.6": 10},
        "histology": {"AC": 6, "SCC": 3, "Others": 1},
        "line": {"first": 1, "later": 9},
        "ici_class": {"PD-1": 8, "PD-L1": 2},
        "strategy": {"monotherapy": 7, "combination": 3},
        "pdl1": {"NA": 3, "<1": 3, "1-49": 3, ">=50": 1},
        "nlr": {"<5": 7, ">=5": 3},
        "radiotherapy": {"no": 5, "yes": 5},
    },
    "CR-PR": {
        "sex": {"male": 17, "female": 2},
        "age": {"<60": 4, ">=60": 15},
        "smoking": {"never": 3, "previous/current": 16},
        "ecog": {"0-1": 18, ">=2": 1},
        "bmi": {"<18.6": 1, ">=18.6": 18},
        "histology": {"AC": 8, "SCC": 9, "Others": 2},
        "line": {"first": 5, "later": 14},
        "ici_class": {"PD-1": 17, "PD-L1": 2},
        "strategy": {"monotherapy": 9, "combination": 10},
        "pdl1": {"NA": 9, "<1": 4, "1-49": 4, ">=50": 2},
        "nlr": {"<5": 15, ">=5": 4},
        "radiotherapy": {"no": 16, "yes": 3},
    },
    "SD": {
        "sex": {"male": 17, "female": 10},
        "age": {"<60": 8, ">=60": 19},
        "smoking": {"never": 9, "previous/current": 18},
        "ecog": {"0-1": 27, ">=2": 0},
        "bmi": {"<18.6": 2, ">=18.6": 25},
        "histology": {"AC": 15, "SCC": 10, "Others": 2},
        "line": {"first": 11, "later": 16},
        "ici_class": {"PD-1": 21, "PD-L1": 6},
        "strategy": {"monotherapy": 14, "combination": 13},
        "pdl1": {"NA": 6, "<1": 7, "1-49": 13, ">=50": 1},
        "nlr": {"<5": 22, ">=5": 5},
        "radiotherapy": {"no": 22, "yes": 5},
    },
    "PD": {
        "sex": {"male": 12, "female": 12},
        "age": {"<60": 6, ">=60": 18},
        "smoking": {"never": 13, "previous/current": 11},
        "ecog": {"0-1": 23, ">=2": 1},
        "bmi": {"<18.6": 3, ">=18.6": 21},
        "histology": {"AC": 16, "SCC": 6, "Others": 2},
        "line": {"first": 3, "later": 21},
        "ici_class": {"PD-1": 23, "PD-L1": 1},
        "strategy": {"monotherapy": 11, "combination": 13},
        "pdl1": {"NA": 6, "<1": 6, "1-49": 11, ">=50": 1},
        "nlr": {"<5": 16, ">=5": 8},
        "radiotherapy": {"no": 24, "yes": 0},
    },
}

# Split of Table 1 "Others" per group into (ovarian, pancreatic, other) [P; DR from the paper's text].
OTHERS_SPLIT: Mapping[str, tuple[int, int, int]] = {
    "DR": (2, 2, 0),
    "PsPD": (1, 1, 1),
    "CR-PR": (0, 1, 5),
    "SD": (3, 5, 20),
    "PD": (2, 3, 8),
}

TUMOUR_TYPE_OF_TABLE: Mapping[str, str] = {"NSCLC": "NSCLC", "SCLC": "SCLC", "GC": "gastric", "HCC": "HCC"}

PD1_DRUGS = ("camrelizumab", "sintilimab", "tislelizumab", "pembrolizumab", "nivolumab", "toripalimab")
PDL1_DRUGS = ("atezolizumab", "durvalumab")


@dataclass(frozen=True, slots=True)
class Covariates:
    """Baseline characteristics of one patient, in the categories of Tables 1 and 2."""

    sex: str  # "male" | "female"
    age_years: int  # at ICI start
    smoking: str  # "never" | "former" | "current"
    ecog: int
    bmi: Decimal
    tumour_type: str  # TumourType value: NSCLC, SCLC, gastric, HCC, ovarian, pancreatic, other
    histology: str  # "AC" | "SCC" | "SCLC" | "other" (ICD-O-3 morphology chosen from it)
    line_of_therapy: int
    ici_drug: str
    ici_class: str  # "PD-1" | "PD-L1"
    combination: bool
    pdl1_tps_pct: int | None  # None = not available (no Observation)
    nlr_pre: Decimal  # neutrophils / lymphocytes before ICI start
    radiotherapy: bool  # radiotherapy before ICI start

    @property
    def categories(self) -> dict[str, str]:
        """The table categories this patient falls in (what the cohort tests count)."""
        tumour = {"gastric": "GC", "ovarian": "Others", "pancreatic": "Others", "other": "Others"}
        return {
            "sex": self.sex,
            "age": "<60" if self.age_years < 60 else ">=60",
            "smoking": "never" if self.smoking == "never" else "previous/current",
            "ecog": "0-1" if self.ecog <= 1 else ">=2",
            "bmi": "<18.6" if self.bmi < Decimal("18.6") else ">=18.6",
            "tumour_type": tumour.get(self.tumour_type, self.tumour_type),
            "histology": {"AC": "AC", "SCC": "SCC"}.get(self.histology, "Others"),
            "line": "first" if self.line_of_therapy == 1 else "later",
            "ici_class": self.ici_class,
            "strategy": "combination" if self.combination else "monotherapy",
            "pdl1": pdl1_category(self.pdl1_tps_pct),
            "nlr": "<5" if self.nlr_pre < 5 else ">=5",
            "radiotherapy": "yes" if self.radiotherapy else "no",
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bmi"] = str(self.bmi)
        data["nlr_pre"] = str(self.nlr_pre)
        data["categories"] = self.categories
        return data


def pdl1_category(tps: int | None) -> str:
    if tps is None:
        return "NA"
    if tps < 1:
        return "<1"
    return "1-49" if tps < 50 else ">=50"


def _dealt(rng: random.Random, counts: Mapping[str, int]) -> list[str]:
    items = [category for category, n in counts.items() for _ in range(n)]
    rng.shuffle(items)
    return items


def _value(rng: random.Random, characteristic: str, category: str) -> object:
    """A concrete value inside a category, well away from the category boundary."""
    match characteristic, category:
        case "age", "<60":
            return rng.randint(36, 58)
        case "age", _:
            return rng.randint(61, 81)
        case "smoking", "never":
            return "never"
        case "smoking", _:
            return rng.choice(("former", "current"))
        case "ecog", "0-1":
            return rng.choice((0, 1, 1))
        case "ecog", _:
            return 2
        case "bmi", "<18.6":
            return Decimal(rng.randint(155, 182)) / 10
        case "bmi", _:
            return Decimal(rng.randint(190, 290)) / 10
        case "line", "first":
            return 1
        case "line", _:
            return rng.choice((2, 2, 3, 4))
        case "pdl1", "NA":
            return None
        case "pdl1", "<1":
            return 0
        case "pdl1", "1-49":
            return rng.randint(3, 45)
        case "pdl1", _:
            return rng.randint(55, 90)
        case "nlr", "<5":
            return Decimal(rng.randint(150, 420)) / 100
        case "nlr", _:
            return Decimal(rng.randint(600, 1200)) / 100
    raise ValueError(f"unknown category {characteristic}={category}")


def allocate_group(rng: random.Random, table: Table, group: str) -> list[Covariates]:
    """Covariates for every patient of one group column, with exactly the table's counts."""
    columns = table[group]
    n = sum(columns["sex"].values())
    dealt = {name: _dealt(rng, counts) for name, counts in columns.items()}
    for name, items in dealt.items():
        if len(items) != n:
            raise ValueError(f"{group}/{name}: {len(items)} != {n}")
    if "tumour_type" in columns:
        tumour_types, histologies = _tumour_types(
            rng, columns["tumour_type"], OTHERS_SPLIT[group], dealt["sex"]
        )
    else:
        tumour_types = ["NSCLC"] * n
        histologies = [{"AC": "AC", "SCC": "SCC"}.get(h, "other") for h in dealt["histology"]]
    out = []
    for i in range(n):
        ici_class = dealt["ici_class"][i]
        drug = rng.choice(PD1_DRUGS if ici_class == "PD-1" else PDL1_DRUGS)
        out.append(
            Covariates(
                sex=dealt["sex"][i],
                age_years=int(_value(rng, "age", dealt["age"][i])),  # type: ignore[call-overload]
                smoking=str(_value(rng, "smoking", dealt["smoking"][i])),
                ecog=int(_value(rng, "ecog", dealt["ecog"][i])),  # type: ignore[call-overload]
                bmi=_decimal(_value(rng, "bmi", dealt["bmi"][i])),
                tumour_type=tumour_types[i],
                histology=histologies[i],
                line_of_therapy=int(_value(rng, "line", dealt["line"][i])),  # type: ignore[call-overload]
                ici_drug=drug,
                ici_class=ici_class,
                combination=dealt["strategy"][i] == "combination",
                pdl1_tps_pct=_optional_int(_value(rng, "pdl1", dealt["pdl1"][i])),
                nlr_pre=_decimal(_value(rng, "nlr", dealt["nlr"][i])),
                radiotherapy=dealt["radiotherapy"][i] == "yes",
            )
        )
    return out


def _decimal(value: object) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(value)
    return value


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) or value is None else int(str(value))


def _tumour_types(
    rng: random.Random, counts: Mapping[str, int], split: tuple[int, int, int], sexes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Tumour types with ovarian cancers dealt to women only; NSCLC histology drawn AC/SCC/other."""
    n_ovarian, n_pancreatic, n_other = split
    if n_ovarian + n_pancreatic + n_other != counts["Others"]:
        raise ValueError("Others split does not add up")
    n = len(sexes)
    women = [i for i in range(n) if sexes[i] == "female"]
    rng.shuffle(women)
    types: list[str | None] = [None] * n
    for i in women[:n_ovarian]:
        types[i] = "ovarian"
    rest = [TUMOUR_TYPE_OF_TABLE[t] for t, c in counts.items() if t != "Others" for _ in range(c)]
    rest += ["pancreatic"] * n_pancreatic + ["other"] * n_other
    rng.shuffle(rest)
    free = [i for i in range(n) if types[i] is None]
    for i, tumour in zip(free, rest, strict=True):
        types[i] = tumour
    final = [t or "other" for t in types]
    histologies = []
    for tumour in final:
        if tumour == "NSCLC":
            histologies.append(rng.choices(("AC", "SCC", "other"), (6, 3, 1))[0])
        elif tumour == "SCLC":
            histologies.append("SCLC")
        else:
            histologies.append("other")
    return final, histologies


def random_covariates(rng: random.Random, tumour_type: str | None = None) -> Covariates:
    """Covariates for a single patient outside the paper cohorts (free draws, plausible ranges)."""
    sex = rng.choice(("male", "male", "female"))
    tumour = tumour_type or rng.choice(("NSCLC", "NSCLC", "SCLC", "gastric", "HCC", "pancreatic", "other"))
    if tumour == "ovarian":
        sex = "female"
    ici_class = "PD-L1" if rng.random() < 0.12 else "PD-1"
    histology = {"NSCLC": rng.choice(("AC", "SCC", "other")), "SCLC": "SCLC"}.get(tumour, "other")
    pdl1 = rng.choice(("NA", "<1", "1-49", ">=50"))
    return Covariates(
        sex=sex,
        age_years=rng.randint(36, 81) if rng.random() < 0.5 else rng.randint(61, 81),
        smoking=rng.choice(("never", "former", "current")),
        ecog=rng.choice((0, 1, 1, 2)),
        bmi=Decimal(rng.randint(170, 290)) / 10,
        tumour_type=tumour,
        histology=histology,
        line_of_therapy=rng.choice((1, 1, 2, 3)),
        ici_drug=rng.choice(PD1_DRUGS if ici_class == "PD-1" else PDL1_DRUGS),
        ici_class=ici_class,
        combination=rng.random() < 0.8,
        pdl1_tps_pct=_optional_int(_value(rng, "pdl1", pdl1)),
        nlr_pre=Decimal(rng.randint(150, 900)) / 100,
        radiotherapy=rng.random() < 0.25,
    )


def birth_date_for(rng: random.Random, age_years: int, on: date) -> date:
    """A birth date giving exactly `age_years` on `on`, with the birthday 30-330 days away."""
    year = on.year - age_years - 1
    anchor = date(year, on.month, min(on.day, 28))
    return date.fromordinal(anchor.toordinal() + rng.randint(30, 330))
