"""Cohorts shaped like the seed study, a mixed cohort for acceptance tests, and bundle writers.

Pan-tumour cohort (Guan 2024 Table 1, Fig. 1b/c/f): 177 patients, groups DR 12, PsPD 7, CR/PR 25,
SD 103, PD 30. First-evaluation RECIST 1.1 categories must come out as CR 1, PR 29, SD 117, PD 30 with
DR in 4/29 PR, 7/117 SD, 1/30 PD. Allocation used [P]:

| group | n | first evaluation |
|---|---|---|
| DR | 12 | PR 4, SD 7, PD 1 (the DR at TP1 by new lesion) |
| PsPD | 7 | SD 7 (iUPD at TP2, iSD at TP3) |
| CR/PR | 25 | CR 1, PR 24 (confirmed at TP2) |
| SD | 103 | SD 103 |
| PD | 30 | PD 29 (2 of them HPD), PR 1 (unconfirmed PR at day ~28, PD at TP2: confirmed BOR PD) |
| total | 177 | CR 1, PR 4+24+1 = 29, SD 7+7+103 = 117, PD 1+29 = 30 |

DR timepoints TP1 2, TP2 1, TP3 5, TP4 3, TP5 1; triggers 9 new lesion, 3 target lesion (75 % / 25 %);
progressing-lesion organs liver 3, lymph node 3, lung 2, bone 2, brain 1, adrenal 1 (all from the
paper's text). Local treatment after the finding: 4 DR (2 radiotherapy, 2 thermal ablation) and 6 PD
(4 radiotherapy, 2 ablation). Treatment beyond progression (Fig. 2g; the paper gives no count) [P]:
`TREATED_BEYOND_PROGRESSION_FRACTION` (40 %, rounded) of group PD, taken from the plain true-PD
patients without local treatment (not HPD, not the early PR): 12 of 30 pan-tumour, 10 of 24 NSCLC; so
both pan-tumour arms (12 / 18) reach the default privacy threshold of 11. The rest stop at the PD scan.

NSCLC cohort (Table 2, "Independent validation"): 80 patients, DR 10, CR/PR 19, SD 27, PD 24;
first evaluation PR 23, SD 33, PD 24 with DR 3/23, 6/33, 1/24: CR/PR 19 PR; PD 23 PD + 1 early
unconfirmed PR; DR 3 PR / 6 SD / 1 PD. DR timepoints and triggers are not reported for this cohort;
chosen [P]: TP1 2, TP2 3, TP3 3, TP4 2; 7 new lesion, 2 target, 1 non-target.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from service.adapters.fhir import codes
from service.synthetic.covariates import TABLE1, TABLE2, Table, allocate_group
from service.synthetic.patient import GeneratedPatient, generate_patient
from service.synthetic.survival import NSCLC_MEDIANS, PAN_TUMOUR_MEDIANS, Medians
from service.synthetic.trajectory import Trajectory, TrajectoryOptions

GENERATOR_VERSION = "1"
FULL_URL_BASE = f"{codes.OR_BASE}/synthetic"

T = Trajectory
# (trajectory, DR timepoint, first evaluation, organ of the progressing lesion, local treatment)
DrSpec = tuple[Trajectory, int, str, str, str | None]
PAN_TUMOUR_DR: tuple[DrSpec, ...] = (
    (T.DR_NEW_LESION, 1, "PD", "liver", None),
    (T.DR_TARGET, 1, "SD", "lymph-node", None),
    (T.DR_TARGET, 2, "PR", "lung", "thermal-ablation"),
    (T.DR_TARGET, 3, "SD", "liver", None),
    (T.DR_NEW_LESION, 3, "PR", "lymph-node", "radiotherapy"),
    (T.DR_NEW_LESION, 3, "PR", "bone", None),
    (T.DR_NEW_LESION, 3, "SD", "brain", None),
    (T.DR_NEW_LESION, 3, "SD", "liver", "thermal-ablation"),
    (T.DR_NEW_LESION, 4, "PR", "lymph-node", None),
    (T.DR_NEW_LESION, 4, "SD", "bone", "radiotherapy"),
    (T.DR_NEW_LESION, 4, "SD", "adrenal", None),
    (T.DR_NEW_LESION, 5, "SD", "lung", None),
)
NSCLC_DR: tuple[DrSpec, ...] = (
    (T.DR_NEW_LESION, 1, "PD", "liver", None),
    (T.DR_TARGET, 1, "PR", "lymph-node", None),
    (T.DR_TARGET, 2, "SD", "liver", None),
    (T.DR_NON_TARGET, 2, "PR", "bone", None),
    (T.DR_NEW_LESION, 2, "SD", "brain", None),
    (T.DR_NEW_LESION, 3, "SD", "adrenal", None),
    (T.DR_NEW_LESION, 3, "PR", "liver", None),
    (T.DR_NEW_LESION, 3, "SD", "lymph-node", None),
    (T.DR_NEW_LESION, 4, "SD", "lung", None),
    (T.DR_NEW_LESION, 4, "SD", "bone", None),
)
PAN_TUMOUR_PD_LOCAL = ("radiotherapy",) * 4 + ("thermal-ablation",) * 2
TREATED_BEYOND_PROGRESSION_FRACTION = 0.4


@dataclass(frozen=True, slots=True)
class _Spec:
    group: str
    trajectory: Trajectory
    options: TrajectoryOptions
    local_treatment: str | None = None
    beyond_progression: bool = False


@dataclass(frozen=True, slots=True)
class Cohort:
    name: str
    seed: int
    patients: tuple[GeneratedPatient, ...]

    def by_group(self, group: str) -> list[GeneratedPatient]:
        return [p for p in self.patients if p.truth.response_group == group]


def _pd_specs(n_pd: int, *, hpd: int, early_pr: int, local: Sequence[str]) -> list[_Spec]:
    specs = [_Spec("PD", T.PD, TrajectoryOptions(first_evaluation="PR")) for _ in range(early_pr)]
    specs += [_Spec("PD", T.HPD, TrajectoryOptions()) for _ in range(hpd)]
    plain = n_pd - early_pr - hpd
    beyond = round(n_pd * TREATED_BEYOND_PROGRESSION_FRACTION)
    if beyond > plain - len(local):
        raise ValueError("too few plain true-PD patients for treatment beyond progression")
    modes = ["target", "new-lesion", "non-target"]
    for i in range(plain):
        treatment = local[i] if i < len(local) else None
        specs.append(
            _Spec(
                "PD",
                T.PD,
                TrajectoryOptions(pd_mode=modes[i % 3] if i % 5 else "target"),
                treatment,
                beyond_progression=len(local) <= i < len(local) + beyond,
            )
        )
    return specs


def _dr_specs(table: Sequence[DrSpec]) -> list[_Spec]:
    return [
        _Spec("DR", traj, TrajectoryOptions(dr_timepoint=k, first_evaluation=fe, dr_organ=organ), local)
        for traj, k, fe, organ, local in table
    ]


def _build(
    name: str,
    seed: int,
    prefix: str,
    table: Table,
    specs: list[_Spec],
    *,
    first_start: date,
    span_days: int,
    medians: dict[str, Medians] | Any,
) -> Cohort:
    if seed < 0:
        raise ValueError("seed must be >= 0")
    rng = random.Random(f"oncoresponse-synthetic/{name}/{seed}")
    covariates = {group: allocate_group(rng, table, group) for group in table}
    paired = []
    for group in table:
        group_specs = [s for s in specs if s.group == group]
        if len(group_specs) != len(covariates[group]):
            raise ValueError(
                f"{name}/{group}: {len(group_specs)} specs for {len(covariates[group])} patients"
            )
        paired += list(zip(group_specs, covariates[group], strict=True))
    rng.shuffle(paired)  # ids do not reveal the group
    patients = []
    for i, (spec, cov) in enumerate(paired, start=1):
        patients.append(
            generate_patient(
                spec.trajectory,
                seed=seed,
                patient_id=f"{prefix}-{seed}-{i:03d}",
                treatment_start=first_start + timedelta(days=rng.randint(0, span_days)),
                options=spec.options,
                covariates=cov,
                local_treatment=spec.local_treatment,
                medians=medians,
                cohort=name,
                beyond_progression=spec.beyond_progression,
            )
        )
    return Cohort(name, seed, tuple(patients))


def pan_tumour_cohort(seed: int) -> Cohort:
    """The 177-patient pan-tumour cohort of Table 1 (treated December 2019 to April 2022)."""
    specs = _dr_specs(PAN_TUMOUR_DR)
    specs += [_Spec("PsPD", T.PSPD, TrajectoryOptions()) for _ in range(7)]
    specs += [_Spec("CR-PR", T.CR, TrajectoryOptions())]
    specs += [_Spec("CR-PR", T.PR, TrajectoryOptions()) for _ in range(24)]
    specs += [_Spec("SD", T.SD, TrajectoryOptions()) for _ in range(103)]
    specs += _pd_specs(30, hpd=2, early_pr=1, local=PAN_TUMOUR_PD_LOCAL)
    return _build(
        "pan-tumour",
        seed,
        "pan",
        TABLE1,
        specs,
        first_start=date(2019, 12, 1),
        span_days=880,
        medians=PAN_TUMOUR_MEDIANS,
    )


def nsclc_cohort(seed: int) -> Cohort:
    """The 80-patient NSCLC validation cohort of Table 2 (treated June 2019 to January 2022)."""
    specs = _dr_specs(NSCLC_DR)
    specs += [_Spec("CR-PR", T.PR, TrajectoryOptions()) for _ in range(19)]
    specs += [_Spec("SD", T.SD, TrajectoryOptions()) for _ in range(27)]
    specs += _pd_specs(24, hpd=0, early_pr=1, local=())
    return _build(
        "nsclc",
        seed,
        "nsclc",
        TABLE2,
        specs,
        first_start=date(2019, 6, 1),
        span_days=945,
        medians=NSCLC_MEDIANS,
    )


def mixed_cohort(n: int, seed: int) -> Cohort:
    """`n` patients with every trajectory in rotation (variants and covariates drawn from the seed)."""
    if seed < 0 or n < 0:
        raise ValueError("seed and n must be >= 0")
    rotation = list(Trajectory)
    patients = tuple(
        generate_patient(
            rotation[i % len(rotation)], seed=seed, patient_id=f"mix-{seed}-{i + 1:04d}", cohort="mixed"
        )
        for i in range(n)
    )
    return Cohort("mixed", seed, patients)


# --- bundles and files -------------------------------------------------------------------------------
def _entry(resource: dict[str, Any], *, request: bool, full_url_base: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if full_url_base is not None:
        entry["fullUrl"] = f"{full_url_base}/{resource['resourceType']}/{resource['id']}"
    entry["resource"] = resource
    if request:
        entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
    return entry


def transaction_bundle(
    patient: GeneratedPatient, *, full_url_base: str | None = FULL_URL_BASE
) -> dict[str, Any]:
    """One patient as a FHIR transaction of PUTs (idempotent: ids are deterministic)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(r, request=True, full_url_base=full_url_base) for r in patient.resources],
    }


def cohort_bundle(
    cohort: Cohort, *, bundle_type: str = "collection", full_url_base: str | None = FULL_URL_BASE
) -> dict[str, Any]:
    """All patients in one Bundle (`collection` for `POST /$assess`, or `transaction`)."""
    if bundle_type not in ("collection", "transaction"):
        raise ValueError("bundle_type must be collection or transaction")
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [
            _entry(r, request=bundle_type == "transaction", full_url_base=full_url_base)
            for p in cohort.patients
            for r in p.resources
        ],
    }


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_cohort(cohort: Cohort, directory: Path | str) -> Path:
    """Write `bundles/<id>.json` (transactions), `truth/<id>.json` and `cohort.json`; returns the manifest."""
    root = Path(directory)
    (root / "bundles").mkdir(parents=True, exist_ok=True)
    (root / "truth").mkdir(parents=True, exist_ok=True)
    rows = []
    for patient in cohort.patients:
        _dump(root / "bundles" / f"{patient.patient_id}.json", transaction_bundle(patient))
        _dump(root / "truth" / f"{patient.patient_id}.json", patient.truth.to_json())
        rows.append(
            {
                "patient_id": patient.patient_id,
                "trajectory": patient.truth.trajectory,
                "response_group": patient.truth.response_group,
                "bundle": f"bundles/{patient.patient_id}.json",
                "truth": f"truth/{patient.patient_id}.json",
                "resources": len(patient.resources),
            }
        )
    manifest = root / "cohort.json"
    _dump(
        manifest,
        {
            "generator": "service.synthetic",
            "generator_version": GENERATOR_VERSION,
            "cohort": cohort.name,
            "seed": cohort.seed,
            "patient_count": len(cohort.patients),
            "patients": rows,
        },
    )
    return manifest
