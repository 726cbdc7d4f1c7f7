"""A tiny reading of generated FHIR data, written independently of the generator's own rules.

It looks only at the FHIR resources (never at the ground truth) and applies the textbook thresholds
exactly (RECIST 1.1 section 4.3: PR <= -30 % vs baseline, PD >= +20 % and >= 5 mm vs nadir; Bernard-
Tessier DR as extended by Guan 2024: a lesion > 30 % below its baseline while another is > 20 % and
>= 5 mm above its nadir, or a new lesion, or unequivocal non-target progression). It is deliberately
small: enough to check what the generator claims, not an engine.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from service.adapters.fhir import codes
from service.adapters.fhir.drug_terminology import drug_terminology

Resource = dict[str, Any]
# The ICIs of the package's drug ValueSets: their names and the class of each listed code.
_ICI_CLASS = {key: d.ici_class for key, d in drug_terminology().by_code.items() if d.is_ici}
_ICI_NAMES = frozenset(code for system, code in _ICI_CLASS if system == codes.CS_ANTINEOPLASTIC_DRUG)


def day_of(value: str) -> date:
    return date.fromisoformat(value[:10])


def ref_id(reference: dict[str, str]) -> str:
    return reference["reference"].split("/", 1)[1]


def is_ici(resource: Resource) -> bool:
    med = resource["medicationCodeableConcept"]
    atc = [c["code"] for c in med.get("coding", []) if c["system"] == codes.ATC]
    if atc:
        return atc[0].startswith(codes.ICI_ATC_PREFIX)
    return str(med.get("text", "")).lower() in _ICI_NAMES


def other_antineoplastic(resource: Resource) -> bool:
    med = resource["medicationCodeableConcept"]
    atc = [c["code"] for c in med.get("coding", []) if c["system"] == codes.ATC]
    return bool(atc) and atc[0].startswith(codes.ANTINEOPLASTIC_ATC_PREFIX) and not is_ici(resource)


def mm(quantity: dict[str, Any]) -> Decimal:
    value = Decimal(str(quantity["value"]))
    return value * 10 if quantity["code"] == "cm" else value


@dataclass
class Reading:
    ici_start: date
    study_dates: list[date]  # baseline first, then follow-ups (pre-baseline excluded)
    pre_baseline: date | None
    roles: dict[str, str]  # BodyStructure id -> role
    nodes: set[str]
    sizes: list[dict[str, Decimal]]  # per study (aligned with study_dates): lesion -> mm
    statuses: list[dict[str, str]]
    pre_sizes: dict[str, Decimal]

    @property
    def targets(self) -> list[str]:
        return [k for k in self.sizes[0] if self.roles[k] == "target"]

    def sums(self) -> list[Decimal]:
        return [sum((s[k] for k in self.targets), Decimal(0)) for s in self.sizes]

    def new_lesions_at(self, i: int) -> set[str]:
        seen_before = set().union(
            *(set(s) | set(t) for s, t in zip(self.sizes[:i], self.statuses[:i], strict=True))
        )
        return (
            (set(self.sizes[i]) | set(self.statuses[i]))
            - seen_before
            - set(self.sizes[0])
            - set(self.statuses[0])
        )

    def any_new_by(self, i: int) -> bool:
        baseline = set(self.sizes[0]) | set(self.statuses[0])
        return any((set(self.sizes[j]) | set(self.statuses[j])) - baseline for j in range(1, i + 1))


def read(resources: list[Resource]) -> Reading:
    studies: dict[str, date] = {}
    roles: dict[str, str] = {}
    nodes: set[str] = set()
    sizes: dict[str, dict[str, Decimal]] = defaultdict(dict)
    statuses: dict[str, dict[str, str]] = defaultdict(dict)
    ici_days = []
    for r in resources:
        kind = r["resourceType"]
        if kind == "MedicationAdministration" and is_ici(r):
            ici_days.append(day_of(r["effectiveDateTime"]))
        elif kind == "ImagingStudy":
            studies[r["id"]] = day_of(r["started"])
        elif kind == "BodyStructure":
            for ext in r["extension"]:
                if ext["url"] == codes.EXT_LESION_ROLE:
                    roles[r["id"]] = ext["valueCoding"]["code"]
                if ext["url"] == codes.EXT_LYMPH_NODE and ext["valueBoolean"]:
                    nodes.add(r["id"])
        elif kind == "Observation" and r["code"]["coding"][0]["code"] == codes.LOINC_TUMOR_SIZE:
            lesion = ref_id(r["focus"][0])
            study = ref_id(r["derivedFrom"][0])
            comps = {c["code"]["coding"][0]["code"]: mm(c["valueQuantity"]) for c in r["component"]}
            flags = [i["coding"][0]["code"] for i in r.get("interpretation", [])]
            value = comps.get(codes.CODE_SHORT_AXIS, comps[codes.LOINC_LONGEST_DIAMETER])
            if "too-small" in flags:
                value = Decimal(5)
            if "disappeared" in flags:
                value = Decimal(0)
            sizes[study][lesion] = value
        elif kind == "Observation" and r["code"]["coding"][0]["code"] == codes.CODE_NON_TARGET_STATUS:
            statuses[ref_id(r["derivedFrom"][0])][ref_id(r["focus"][0])] = r["valueCodeableConcept"][
                "coding"
            ][0]["code"]
    start = min(ici_days)
    ordered = sorted(studies, key=lambda s: studies[s])
    baseline = max((s for s in ordered if 0 <= (start - studies[s]).days <= 28), key=lambda s: studies[s])
    pre = [s for s in ordered if studies[s] < studies[baseline]]
    kept = [s for s in ordered if studies[s] >= studies[baseline]]
    return Reading(
        ici_start=start,
        study_dates=[studies[s] for s in kept],
        pre_baseline=studies[pre[-1]] if pre else None,
        roles=roles,
        nodes=nodes,
        sizes=[sizes[s] for s in kept],
        statuses=[statuses[s] for s in kept],
        pre_sizes=sizes[pre[-1]] if pre else {},
    )


def recist_overall(reading: Reading) -> list[str]:
    """RECIST 1.1 Table 1 per follow-up (strict per timepoint; nadir = smallest earlier sum)."""
    sums = reading.sums()
    out = []
    for i in range(1, len(sums)):
        base, nadir, now = sums[0], min(sums[:i]), sums[i]
        sizes = reading.sizes[i]
        non_targets = [k for k, role in reading.roles.items() if role == "non-target"]
        nt = [reading.statuses[i].get(k) for k in non_targets]
        if all(sizes[k] < 10 if k in reading.nodes else sizes[k] == 0 for k in reading.targets):
            target = "CR"
        elif 100 * now >= 120 * nadir and now - nadir >= 5:
            target = "PD"
        elif 100 * now <= 70 * base:
            target = "PR"
        else:
            target = "SD"
        if (
            target == "PD"
            or reading.any_new_by(i)
            or any(s in ("unequivocal-progression", "increased") for s in nt)
        ):
            out.append("PD")
        elif target == "CR":
            out.append("CR" if all(s == "absent" for s in nt) else "PR")
        else:
            out.append(target)
    return out


def dr_triggers(reading: Reading) -> list[set[str]]:
    """Bernard-Tessier triggers per follow-up (Guan 2024 extension)."""
    out = []
    targets = reading.targets
    for i in range(1, len(reading.sizes)):
        now = reading.sizes[i]
        shrink = {k for k in targets if 100 * now[k] < 70 * reading.sizes[0][k]}
        grow = set()
        for k in targets:
            nadir = min(s[k] for s in reading.sizes[:i])
            if 100 * now[k] > 120 * nadir and now[k] - nadir >= 5:
                grow.add(k)
        triggers = set()
        if shrink:
            if grow - shrink:
                triggers.add("target-lesion")
            if reading.new_lesions_at(i):
                triggers.add("new-lesion")
            appeared = {
                k
                for k, s in reading.statuses[i].items()
                if reading.roles.get(k) == "non-target"
                and s == "unequivocal-progression"
                and reading.statuses[i - 1].get(k) != "unequivocal-progression"
            }
            if appeared:
                triggers.add("non-target-lesion")
        out.append(triggers)
    return out


def first_dr(reading: Reading) -> tuple[int, set[str]] | None:
    for i, triggers in enumerate(dr_triggers(reading), start=1):
        if triggers:
            return i, triggers
    return None


def tumour_type(condition: Resource) -> str:
    """Contract section 1 mapping, from codes.py (ICD-10-CM prefixes; lung split by ICD-O-3)."""
    code = condition["code"]["coding"][0]["code"]
    morph = [
        e["valueCodeableConcept"]["coding"][0]["code"]
        for e in condition.get("extension", [])
        if e["url"] == codes.MCODE_HISTOLOGY_EXT
    ]
    if code.startswith(codes.LUNG_ICD10_PREFIX):
        return "SCLC" if morph and morph[0] in codes.SCLC_ICDO3_MORPHOLOGIES else "NSCLC"
    for prefix, tumour in codes.TUMOUR_TYPE_BY_ICD10_PREFIX.items():
        if code.startswith(prefix):
            return tumour
    return "other"


def covariate_categories(resources: list[Resource]) -> dict[str, str]:
    """Table 1/2 categories read back from FHIR alone."""
    by_kind: dict[str, list[Resource]] = defaultdict(list)
    for r in resources:
        by_kind[r["resourceType"]].append(r)
    admins = by_kind["MedicationAdministration"]
    ici = sorted((a for a in admins if is_ici(a)), key=lambda a: a["effectiveDateTime"])
    start = day_of(ici[0]["effectiveDateTime"])
    patient = by_kind["Patient"][0]
    birth = date.fromisoformat(patient["birthDate"])
    age = start.year - birth.year - ((start.month, start.day) < (birth.month, birth.day))

    def obs(code: str) -> list[Resource]:
        return [o for o in by_kind["Observation"] if o["code"]["coding"][0]["code"] == code]

    def pre_value(code: str) -> Decimal:
        values = [
            (o["effectiveDateTime"], Decimal(str(o["valueQuantity"]["value"])))
            for o in obs(code)
            if 0 < (start - day_of(o["effectiveDateTime"])).days <= 28
        ]
        return max(values)[1]

    smoking = obs(codes.LOINC_SMOKING)[0]["valueCodeableConcept"]["coding"][0]["code"]
    ecog = min(obs(codes.LOINC_ECOG), key=lambda o: o["effectiveDateTime"])["valueInteger"]
    bmi = Decimal(str(obs(codes.LOINC_BMI)[0]["valueQuantity"]["value"]))
    med = ici[0]["medicationCodeableConcept"]
    atc = [c["code"] for c in med.get("coding", [])]
    ici_class = (
        _ICI_CLASS[(codes.ATC, atc[0])] if atc else _ICI_CLASS[(codes.CS_ANTINEOPLASTIC_DRUG, med["text"])]
    )
    line = next(e["valuePositiveInt"] for e in ici[0]["extension"] if e["url"] == codes.EXT_LINE_OF_THERAPY)
    combination = any(
        other_antineoplastic(a)
        and 0 <= (day_of(a["effectiveDateTime"]) - start).days < codes.COMBINATION_WINDOW_DAYS
        for a in admins
    )
    pdl1 = obs(codes.CODE_PDL1_TPS)
    tps = Decimal(str(pdl1[0]["valueQuantity"]["value"])) if pdl1 else None
    nlr = pre_value(codes.LOINC_NEUTROPHILS) / pre_value(codes.LOINC_LYMPHOCYTES)
    rt = any(
        p["code"]["coding"][0]["code"] == codes.RADIOTHERAPY_SNOMED
        and day_of(p["performedPeriod"]["end"]) < start
        for p in by_kind["Procedure"]
    )
    condition = by_kind["Condition"][0]
    tumour = tumour_type(condition)
    morph = [e["valueCodeableConcept"]["coding"][0]["code"] for e in condition.get("extension", [])]
    return {
        "sex": patient["gender"],
        "age": "<60" if age < 60 else ">=60",
        "smoking": "never" if smoking == "266919005" else "previous/current",
        "ecog": "0-1" if ecog <= 1 else ">=2",
        "bmi": "<18.6" if bmi < Decimal("18.6") else ">=18.6",
        "tumour_type": {"gastric": "GC", "ovarian": "Others", "pancreatic": "Others", "other": "Others"}.get(
            tumour, tumour
        ),
        "histology": {"8140/3": "AC", "8070/3": "SCC"}.get(morph[0], "Others") if morph else "Others",
        "line": "first" if line == 1 else "later",
        "ici_class": ici_class,
        "strategy": "combination" if combination else "monotherapy",
        "pdl1": "NA" if tps is None else "<1" if tps < 1 else "1-49" if tps < 50 else ">=50",
        "nlr": "<5" if nlr < 5 else ">=5",
        "radiotherapy": "yes" if rt else "no",
    }
