"""Generate one synthetic patient: FHIR resources plus the ground truth beside them.

Encoding decisions the FHIR reader must match (contract section 1; [P] where the contract is open):

- ICI start = the earliest ICI MedicationAdministration.effectiveDateTime (day 0). ICIs carry their
  ATC L01FF code of the package's drug ValueSets (`ATC_BY_ICI`, system `codes.ATC`) or, for drugs
  without one there (camrelizumab, sintilimab, toripalimab), only `medicationCodeableConcept.text`
  = the drug name (CodeSystem antineoplastic-drug). Doses every 21 days until progression is confirmed (true PD: until the PD
  scan), at most 35. A true-PD patient treated beyond progression (`beyond_progression`, Guan 2024
  Fig. 2g) keeps the 21-day schedule for `BEYOND_PROGRESSION_DAYS` (63) days after the PD scan [P], so
  at least one dose falls strictly after it (the patient is kept alive long enough for that dose).
- Combination therapy = at least one other ATC L01 (not L01FF) administration on day 0 or 1 (inside
  `codes.COMBINATION_WINDOW_DAYS`); monotherapy patients have no other L01 administration at all.
- Line of therapy = extension `codes.EXT_LINE_OF_THERAPY` (valuePositiveInt) on the ICI
  MedicationRequest and on every ICI MedicationAdministration.
- PD-L1 = Observation code `codes.CS_ONCORESPONSE#codes.CODE_PDL1_TPS`, valueQuantity in `%`
  (0 for "< 1 %"); "not available" = no such Observation.
- Responsible oncologist = CareTeam participant with SNOMED 309295000 (and the ICI
  MedicationRequest.requester); Patient.generalPractitioner = a second Practitioner. The CareTeam is
  reachable by id from MedicationRequest.performer and the ECOG Observations' performer.
- Radiotherapy covariate = a radiotherapy Procedure (mCODE course summary) that ended before ICI
  start; local treatment after a DR / PD finding = radiotherapy or thermal-ablation Procedure after
  it, pointing at the lesion with the R4 extension `procedure-targetBodyStructure`.
- Death: Patient.deceasedDateTime (date). Last contact: an Encounter (class AMB) and an ECOG
  Observation dated on the last-contact day; nothing about the patient is dated later. For a dead
  patient the last-contact encounter is 1-14 days before death (never before the last scan).
- Pre-treatment labs 1-14 days before day 0 (inside the 28-day window), post-treatment labs on days
  21-25 (before the first evaluation). The pre-treatment NLR lands on its table side (< 5 or >= 5) with
  margin (1.5-4.2 vs 6.0-12.0).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from service.adapters.fhir import codes
from service.adapters.fhir.drug_terminology import drug_terminology
from service.synthetic import fhir_builder as fb
from service.synthetic.covariates import Covariates, birth_date_for, random_covariates
from service.synthetic.survival import (
    DAYS_PER_MONTH,
    MAX_FOLLOW_UP_MONTHS,
    PAN_TUMOUR_MEDIANS,
    Medians,
    death_day,
    follow_up_day,
    progression_day,
)
from service.synthetic.trajectory import (
    DR_TRAJECTORIES,
    MEASURABLE_DR_ORGANS,
    NEW_NON_TARGET,
    NON_TARGET,
    TOO_SMALL,
    Course,
    CourseError,
    Trajectory,
    TrajectoryOptions,
    dr_triggers,
    has_free_progression,
    plan_course,
    required_timepoints,
)
from service.synthetic.truth import (
    DrTruth,
    EndpointTruth,
    GroundTruth,
    LocalTreatmentTruth,
    confirmed_bor,
    delayed_response,
    irecist_bor,
    response_group,
    unconfirmed_bor,
)

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
LOCAL_TREATMENTS = ("radiotherapy", "thermal-ablation")
ICI_CYCLE_DAYS = 21
BEYOND_PROGRESSION_DAYS = 63  # [P] three more cycles after the PD scan (Guan 2024 Fig. 2g gives none)

ICD10_BY_TYPE: Mapping[str, tuple[tuple[str, str], ...]] = {
    "NSCLC": (
        ("C34.11", "Malignant neoplasm of upper lobe, right bronchus or lung"),
        ("C34.12", "Malignant neoplasm of upper lobe, left bronchus or lung"),
        ("C34.31", "Malignant neoplasm of lower lobe, right bronchus or lung"),
        ("C34.90", "Malignant neoplasm of unspecified part of unspecified bronchus or lung"),
    ),
    "gastric": (("C16.9", "Malignant neoplasm of stomach, unspecified"),),
    "HCC": (("C22.0", "Liver cell carcinoma"),),
    "ovarian": (("C56.9", "Malignant neoplasm of unspecified ovary"),),
    "pancreatic": (("C25.9", "Malignant neoplasm of pancreas, unspecified"),),
}
OTHER_SITES: tuple[tuple[str, str, str, str, str], ...] = (  # ICD-10-CM, display, ICD-O-3, display, sex
    ("C15.9", "Malignant neoplasm of esophagus, unspecified", "8070/3", "Squamous cell carcinoma, NOS", ""),
    ("C18.9", "Malignant neoplasm of colon, unspecified", "8140/3", "Adenocarcinoma, NOS", ""),
    ("C67.9", "Malignant neoplasm of bladder, unspecified", "8120/3", "Transitional cell carcinoma, NOS", ""),
    (
        "C64.9",
        "Malignant neoplasm of unspecified kidney, except renal pelvis",
        "8312/3",
        "Renal cell carcinoma, NOS",
        "",
    ),
    ("C43.9", "Malignant melanoma of skin, unspecified", "8720/3", "Malignant melanoma, NOS", ""),
    (
        "C53.9",
        "Malignant neoplasm of cervix uteri, unspecified",
        "8070/3",
        "Squamous cell carcinoma, NOS",
        "female",
    ),
)
MORPHOLOGY: Mapping[str, tuple[str, str]] = {
    "AC": ("8140/3", "Adenocarcinoma, NOS"),
    "SCC": ("8070/3", "Squamous cell carcinoma, NOS"),
    "NSCLC-other": ("8012/3", "Large cell carcinoma, NOS"),
    "SCLC": ("8041/3", "Small cell carcinoma, NOS"),
    "gastric": ("8140/3", "Adenocarcinoma, NOS"),
    "HCC": ("8170/3", "Hepatocellular carcinoma, NOS"),
    "ovarian": ("8441/3", "Serous cystadenocarcinoma, NOS"),
    "pancreatic": ("8500/3", "Infiltrating duct carcinoma, NOS"),
}
ICI_DOSE_MG: Mapping[str, int] = {
    "camrelizumab": 200,
    "sintilimab": 200,
    "tislelizumab": 200,
    "pembrolizumab": 200,
    "toripalimab": 240,
    "nivolumab": 360,
    "atezolizumab": 1200,
    "durvalumab": 1500,
    "avelumab": 800,
    "cemiplimab": 350,
    "dostarlimab": 500,
}
# The ICI's ATC code from the package's drug ValueSets (drug_terminology.py); None: name only.
ATC_BY_ICI: Mapping[str, str] = {
    drug.name: code
    for (system, code), drug in drug_terminology().by_code.items()
    if system == codes.ATC and drug.is_ici and code.startswith(codes.ICI_ATC_PREFIX)
}
# Chemotherapy / anti-angiogenic partners (ATC L01, not L01FF) [R].
PARTNERS: Mapping[str, tuple[tuple[str, str, int], ...]] = {
    "AC": (("pemetrexed", "L01BA04", 800), ("carboplatin", "L01XA02", 450)),
    "SCC": (("paclitaxel", "L01CD01", 300), ("carboplatin", "L01XA02", 450)),
    "NSCLC-other": (("pemetrexed", "L01BA04", 800), ("carboplatin", "L01XA02", 450)),
    "SCLC": (("etoposide", "L01CB01", 180), ("carboplatin", "L01XA02", 450)),
    "gastric": (("oxaliplatin", "L01XA03", 230), ("capecitabine", "L01BC06", 1500)),
    "HCC": (("bevacizumab", "L01FG01", 1000),),
    "ovarian": (("paclitaxel", "L01CD01", 300), ("carboplatin", "L01XA02", 450)),
    "pancreatic": (("gemcitabine", "L01BC05", 1800), ("paclitaxel", "L01CD01", 200)),
    "other": (("docetaxel", "L01CD02", 120),),
}
FAMILY_NAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun")
GIVEN_NAMES = ("Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Hui", "Qiang", "Li", "Jun", "Ping", "Hong")


@dataclass(frozen=True, slots=True)
class GeneratedPatient:
    """FHIR resources (plain JSON-able dicts, in load order) and the intended ground truth."""

    patient_id: str
    resources: list[dict[str, object]]
    truth: GroundTruth


def group_of(trajectory: Trajectory) -> str:
    """Response group (contract section 2) a trajectory is built to land in."""
    if trajectory in DR_TRAJECTORIES:
        return "DR"
    return {
        Trajectory.CR: "CR-PR",
        Trajectory.PR: "CR-PR",
        Trajectory.DELAYED_RESPONSE: "CR-PR",
        Trajectory.SD: "SD",
        Trajectory.PD: "PD",
        Trajectory.HPD: "PD",
        Trajectory.PSPD: "PsPD",
    }[trajectory]


def _median_key(trajectory: Trajectory, local: str | None, beyond: bool = False) -> str:
    if trajectory in DR_TRAJECTORIES:
        return "DR+local" if local else "DR-local"
    if trajectory is Trajectory.PD:
        if local:
            return "PD+local"
        return "PD+beyond" if beyond else "PD-beyond"  # survival.py: Fig. 2f/2g
    if trajectory is Trajectory.HPD:
        return "HPD"
    if trajectory is Trajectory.DELAYED_RESPONSE:
        return "DeR"
    return group_of(trajectory)


def complete_options(
    trajectory: Trajectory, options: TrajectoryOptions, rng: random.Random
) -> TrajectoryOptions:
    """Fill the variant choices a caller left open, and reject impossible combinations."""
    if trajectory in DR_TRAJECTORIES:
        k = options.dr_timepoint or rng.randint(1, 4)
        fe = options.first_evaluation
        if fe is None:
            fe = "PD" if (k == 1 and trajectory is not Trajectory.DR_TARGET) else rng.choice(("PR", "SD"))
        if trajectory is Trajectory.DR_TARGET and fe not in ("PR", "SD"):
            raise ValueError("a DR by a target lesion is PR or SD at detection (seed study Fig. 5a/b)")
        if trajectory is not Trajectory.DR_TARGET and (fe == "PD") != (k == 1):
            raise ValueError("a new-lesion/non-target DR at timepoint 1 is PD at the first evaluation")
        organ = options.dr_organ
        if organ is None:
            organ = rng.choice(MEASURABLE_DR_ORGANS) if trajectory is not Trajectory.DR_NON_TARGET else "bone"
        return replace(options, dr_timepoint=k, first_evaluation=fe, dr_organ=organ)
    if options.first_evaluation not in (None, "PR") or (
        options.first_evaluation and trajectory is not Trajectory.PD
    ):
        raise ValueError("first_evaluation is only for DR trajectories and the PD early-PR variant")
    return options


def _fixed_confirmations(trajectory: Trajectory, options: TrajectoryOptions) -> set[int]:
    """Timepoints followed by a confirmation scan (35-49 days), known before the survival draw."""
    if trajectory is Trajectory.PD:
        return {2} if options.first_evaluation == "PR" else {1}
    if trajectory is Trajectory.HPD:
        return {1}
    if trajectory is Trajectory.PSPD:
        return {2}
    if trajectory in (Trajectory.DR_NEW_LESION, Trajectory.DR_NON_TARGET):
        return {options.dr_timepoint or 1}
    return set()


def _iupd_run_from(trajectory: Trajectory, options: TrajectoryOptions) -> int | None:
    """First timepoint of an open-ended run of unchanged iUPDs, or None.

    A DR by new lesion / non-target is iUPD at its timepoint and stays iUPD, unchanged, at every later
    scan until the generalised progression (iCPD; iRECIST FAQ "iUPD, iUPD, iUPD, iCPD"). Each of those
    scans is the confirmation assessment of the iUPD before it, so each comes 35-49 days after it
    (iRECIST recommends the next assessment 4-8 weeks after iUPD; the engine confirms at the next
    assessment whatever the gap unless a protocol sets `icpd_max_days`, docs/rules/irecist.md, so the
    generator keeps to the recommended schedule and the truth holds under either setting).
    """
    if trajectory in (Trajectory.DR_NEW_LESION, Trajectory.DR_NON_TARGET):
        return options.dr_timepoint or 1
    return None


def _last_index(trajectory: Trajectory, options: TrajectoryOptions, q: int | None) -> int:
    """Scans stop after the progression is confirmed (true PD: after the confirmation scan)."""
    if trajectory is Trajectory.PD:
        return 3 if options.first_evaluation == "PR" else 2
    if trajectory is Trajectory.HPD:
        return 2
    if q is None:
        return 10_000
    if trajectory in (Trajectory.DR_NEW_LESION, Trajectory.DR_NON_TARGET):
        return q
    return q + 1


def _uid(resource_id: str) -> str:
    return "2.25." + str(int.from_bytes(hashlib.sha256(resource_id.encode()).digest()[:12], "big"))


def _q2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def generate_patient(
    trajectory: Trajectory,
    *,
    seed: int,
    patient_id: str,
    treatment_start: date | None = None,
    options: TrajectoryOptions | None = None,
    covariates: Covariates | None = None,
    local_treatment: str | None = None,
    medians: Mapping[str, Medians] = PAN_TUMOUR_MEDIANS,
    cohort: str | None = None,
    beyond_progression: bool = False,
) -> GeneratedPatient:
    """One patient showing `trajectory`; same arguments give the same output, byte for byte.

    `local_treatment` ("radiotherapy" / "thermal-ablation") adds a local treatment of the progressing
    lesion after a DR (DR trajectories) or after the PD (PD, HPD). `beyond_progression` (PD, HPD)
    continues the ICI after the PD scan (treatment beyond progression); otherwise true PD stops there.
    """
    if not FHIR_ID.match(patient_id) or len(patient_id) > 30:
        raise ValueError("patient_id must be a FHIR id of at most 30 characters")
    if local_treatment not in (None, *LOCAL_TREATMENTS):
        raise ValueError(f"local_treatment must be one of {LOCAL_TREATMENTS}")
    if local_treatment and trajectory not in (*DR_TRAJECTORIES, Trajectory.PD, Trajectory.HPD):
        raise ValueError("local treatment follows a DR or PD finding")
    if beyond_progression and trajectory not in (Trajectory.PD, Trajectory.HPD):
        raise ValueError("beyond_progression is for true PD (PD, HPD) only")
    rng = random.Random(f"oncoresponse-synthetic/{seed}/{patient_id}/{trajectory.value}")
    cov = covariates or random_covariates(rng)
    start = treatment_start or date(2019, 12, 1) + timedelta(days=rng.randint(0, 880))
    opts = complete_options(trajectory, options or TrajectoryOptions(), rng)
    median = medians[_median_key(trajectory, local_treatment, beyond_progression)]

    # --- schedule and survival -----------------------------------------------------------------
    early = trajectory is Trajectory.PD and opts.first_evaluation == "PR"
    conf = _fixed_confirmations(trajectory, opts)
    run_from = _iupd_run_from(trajectory, opts)
    required = required_timepoints(trajectory, opts)

    def interval(after_index: int, q: int | None) -> int:
        confirming = (
            after_index in conf or after_index == q or (run_from is not None and after_index >= run_from)
        )
        return rng.randint(35, 49) if confirming else rng.randint(42, 63)

    days = [rng.randint(26, 30) if early else rng.randint(45, 63)]
    while len(days) < required:
        days.append(days[-1] + interval(len(days), None))
    drawn = (
        progression_day(rng, median.pfs_months, after_day=days[-1])
        if has_free_progression(trajectory)
        else None
    )
    q = None
    horizon = round(MAX_FOLLOW_UP_MONTHS * DAYS_PER_MONTH) + 60
    while days[-1] < horizon:
        days.append(days[-1] + interval(len(days), q))
        if drawn is not None and q is None and days[-1] >= drawn:
            q = len(days)
    finding = (opts.dr_timepoint or 1) if trajectory in DR_TRAJECTORIES else (2 if early else 1)
    local_day = days[finding - 1] + rng.randint(10, 24) if local_treatment else None
    min_alive = days[required - 1] + 7 if local_day is None else max(days[required - 1] + 7, local_day + 21)
    if beyond_progression:  # alive (and in contact) 3 weeks past the first dose after the PD scan
        min_alive = max(min_alive, (days[finding - 1] // ICI_CYCLE_DAYS + 1) * ICI_CYCLE_DAYS + 21)
    death = death_day(rng, median.os_months, after_day=min_alive)
    if drawn is not None:  # deaths come after the (drawn) progression, so PFS keeps its median
        death = max(death, drawn + rng.randint(21, 120))
    follow_end = follow_up_day(rng, at_least_day=min_alive)
    dead = death <= follow_end
    end = death if dead else follow_end
    last_index = _last_index(trajectory, opts, q)
    n = sum(1 for j, d in enumerate(days, start=1) if d <= end - 3 and j <= last_index)
    q_seen = q if q is not None and q <= n else None
    course = plan_course(
        trajectory, replace(opts, progression_index=q_seen), rng, tumour_type=cov.tumour_type, n_timepoints=n
    )
    if len(course.follow_ups) != n:
        raise CourseError(f"{trajectory}: {len(course.follow_ups)} follow-ups planned, {n} scheduled")
    scan_days = days[:n]
    baseline_day = -rng.randint(0, 21)
    pre_day = baseline_day - rng.randint(42, 70) if course.pre_baseline is not None else None

    last_contact = end if not dead else max(scan_days[-1] + 1, end - rng.randint(1, 14))
    builder = _PatientBuilder(rng, patient_id, start, cov, course)
    builder.people_and_condition(dead_on=start + timedelta(days=death) if dead else None)
    last_treated = min(
        _last_treatment_day(trajectory, course, scan_days, end, beyond=beyond_progression), last_contact - 1
    )
    builder.therapy(last_treated, active=not dead and last_treated >= end - 1)
    all_days = ([pre_day] if pre_day is not None else []) + [baseline_day, *scan_days]
    builder.imaging(all_days)
    builder.labs_and_status()
    local = builder.local_treatment(local_treatment, local_day, finding)
    builder.last_contact(last_contact)

    truth = _truth(
        patient_id=patient_id,
        cohort=cohort,
        trajectory=trajectory,
        course=course,
        start=start,
        baseline_day=baseline_day,
        pre_day=pre_day,
        scan_days=scan_days,
        death=death if dead else None,
        last_contact=last_contact,
        drawn=drawn,
        median=median,
        covariates=builder.covariates,
        local=local,
        ici_days=builder.ici_days,
    )
    return GeneratedPatient(patient_id, builder.resources, truth)


def _last_treatment_day(
    trajectory: Trajectory, course: Course, scan_days: list[int], end: int, *, beyond: bool = False
) -> int:
    """ICI given until the confirmed progression; true PD / HPD stop at the PD scan [P], or go on
    for `BEYOND_PROGRESSION_DAYS` after it when treated beyond progression."""
    follow = course.follow_ups
    if trajectory in (Trajectory.PD, Trajectory.HPD):
        first_pd = next(i for i, tp in enumerate(follow) if tp.recist == "PD")
        return scan_days[first_pd] + (BEYOND_PROGRESSION_DAYS if beyond else 0)
    if follow[-1].irecist == "iCPD":
        return scan_days[-1]
    return end - 1


class _PatientBuilder:
    """Collects one patient's resources in load order (referenced resources first)."""

    def __init__(self, rng: random.Random, pid: str, start: date, cov: Covariates, course: Course) -> None:
        self.rng = rng
        self.pid = pid
        self.start = start
        self.covariates = cov
        self.course = course
        self.resources: list[dict[str, object]] = []
        self.condition_id = f"{pid}-condition-1"
        self.oncologist_id = f"{pid}-practitioner-1"
        self.gp_id = f"{pid}-practitioner-2"
        self.care_team_id = f"{pid}-careteam-1"
        self.lab_n = 0
        self.ici_days: list[int] = []  # days of the ICI administrations (for the truth)

    def day(self, offset: int) -> date:
        return self.start + timedelta(days=offset)

    def when(self, offset: int) -> str:
        return fb.date_time(self.day(offset), self.rng.randint(0, 599))

    def add(self, resource: dict[str, object]) -> None:
        self.resources.append(resource)

    # --- people, condition ----------------------------------------------------------------------
    def people_and_condition(self, *, dead_on: date | None) -> None:
        rng, cov, pid = self.rng, self.covariates, self.pid
        self.add(
            fb.practitioner(
                self.oncologist_id, family=rng.choice(FAMILY_NAMES), given=rng.choice(GIVEN_NAMES)
            )
        )
        self.add(fb.practitioner(self.gp_id, family=rng.choice(FAMILY_NAMES), given=rng.choice(GIVEN_NAMES)))
        birth = birth_date_for(rng, cov.age_years, self.start)
        self.add(
            fb.patient(
                pid,
                gender=cov.sex,
                birth_date=birth,
                deceased=dead_on,
                gp_id=self.gp_id,
                family=rng.choice(FAMILY_NAMES),
                given=rng.choice(GIVEN_NAMES),
            )
        )
        icd10, morphology = self._diagnosis()
        self.add(
            fb.primary_condition(
                self.condition_id,
                pid,
                icd10=icd10,
                morphology=morphology,
                onset=self.day(-rng.randint(60, 700)),
            )
        )
        self.add(
            fb.care_team(
                self.care_team_id,
                pid,
                oncologist_id=self.oncologist_id,
                gp_id=self.gp_id,
                start=self.day(-30),
            )
        )

    def _diagnosis(self) -> tuple[tuple[str, str], tuple[str, str] | None]:
        cov, rng = self.covariates, self.rng
        tumour = cov.tumour_type
        if tumour in ("NSCLC", "SCLC"):
            icd10 = rng.choice(ICD10_BY_TYPE["NSCLC"])
            key = {"AC": "AC", "SCC": "SCC", "SCLC": "SCLC"}.get(cov.histology, "NSCLC-other")
            if tumour == "SCLC":
                key = "SCLC"
            return icd10, MORPHOLOGY[key]
        if tumour == "other":
            sites = [s for s in OTHER_SITES if s[4] in ("", cov.sex)]
            code, display, morph, morph_display, _ = rng.choice(sites)
            return (code, display), (morph, morph_display)
        return rng.choice(ICD10_BY_TYPE[tumour]), MORPHOLOGY[tumour]

    # --- therapy -----------------------------------------------------------------------------------
    def therapy(self, last_day: int, *, active: bool) -> None:
        cov, pid, rng = self.covariates, self.pid, self.rng
        atc = ATC_BY_ICI.get(cov.ici_drug)
        ici_req = f"{pid}-medicationrequest-1"
        authored = self.when(-rng.randint(1, 7))
        self.add(
            fb.medication_request(
                ici_req,
                pid,
                drug=cov.ici_drug,
                atc=atc,
                line=cov.line_of_therapy,
                authored=authored,
                active=active,
                requester_id=self.oncologist_id,
                care_team_id=self.care_team_id,
                condition_id=self.condition_id,
            )
        )
        partners: tuple[tuple[str, str, int], ...] = ()
        if cov.combination:
            key = cov.tumour_type
            if key == "NSCLC":
                key = {"AC": "AC", "SCC": "SCC"}.get(cov.histology, "NSCLC-other")
            partners = PARTNERS[key]
            for i, (name, code, _) in enumerate(partners, start=2):
                self.add(
                    fb.medication_request(
                        f"{pid}-medicationrequest-{i}",
                        pid,
                        drug=name,
                        atc=code,
                        line=cov.line_of_therapy,
                        authored=authored,
                        active=False,
                        requester_id=self.oncologist_id,
                        care_team_id=self.care_team_id,
                        condition_id=self.condition_id,
                    )
                )
        n = 0
        partner_day = rng.randint(0, 1)
        for cycle in range(35):
            day = ICI_CYCLE_DAYS * cycle
            if day > last_day:
                break
            n += 1
            self.ici_days.append(day)
            self.add(
                fb.medication_administration(
                    f"{pid}-medicationadministration-{n}",
                    pid,
                    drug=cov.ici_drug,
                    atc=atc,
                    dose_mg=ICI_DOSE_MG[cov.ici_drug],
                    when=self.when(day),
                    request_id=ici_req,
                    condition_id=self.condition_id,
                    line=cov.line_of_therapy,
                )
            )
            if cycle < 4 and day + partner_day <= last_day:
                for i, (name, code, dose) in enumerate(partners, start=2):
                    n += 1
                    self.add(
                        fb.medication_administration(
                            f"{pid}-medicationadministration-{n}",
                            pid,
                            drug=name,
                            atc=code,
                            dose_mg=dose,
                            when=self.when(day + partner_day),
                            request_id=f"{pid}-medicationrequest-{i}",
                            condition_id=self.condition_id,
                            line=None,
                        )
                    )

    # --- imaging ------------------------------------------------------------------------------------
    def imaging(self, study_days: list[int]) -> None:
        pid, course = self.pid, self.course
        for lesion in course.lesions:
            n = int(lesion.key[1:])
            self.add(
                fb.body_structure(
                    f"{pid}-bodystructure-{n}",
                    pid,
                    lesion_identifier=f"{pid}-{lesion.key}",
                    organ=lesion.organ,
                    role=lesion.role,
                    lymph_node=lesion.is_node,
                    description=f"{lesion.role} lesion {n} ({lesion.organ})",
                )
            )
        for study_n, (tp, offset) in enumerate(zip(course.timepoints, study_days, strict=True), start=1):
            study_id = f"{pid}-imagingstudy-{study_n}"
            when = self.when(offset)
            self.add(
                fb.imaging_study(
                    study_id,
                    pid,
                    started=when,
                    uid=_uid(study_id),
                    description="CT chest, abdomen and pelvis with contrast",
                )
            )
            in_cm = self.rng.random() < 0.15
            for lesion in course.lesions:
                n = int(lesion.key[1:])
                bs_id = f"{pid}-bodystructure-{n}"
                if lesion.key in tp.sizes:
                    value = tp.sizes[lesion.key]
                    flag = None
                    if not lesion.is_node and value == 0:
                        flag = "disappeared"
                    elif not lesion.is_node and value < 50:
                        flag, value = TOO_SMALL, 50
                    long_tenths = value * lesion.long_pct // 100 if lesion.is_node else value
                    self.add(
                        fb.tumour_size(
                            f"{pid}-tumorsize-{study_n}-{n}",
                            pid,
                            bs_id=bs_id,
                            study_id=study_id,
                            when=when,
                            long_tenths=long_tenths,
                            short_tenths=value if lesion.is_node else None,
                            flag=flag,
                            in_cm=in_cm,
                        )
                    )
                elif lesion.key in tp.statuses and lesion.role in (NON_TARGET, NEW_NON_TARGET):
                    self.add(
                        fb.non_target_status(
                            f"{pid}-ntstatus-{study_n}-{n}",
                            pid,
                            bs_id=bs_id,
                            study_id=study_id,
                            when=when,
                            status=tp.statuses[lesion.key],
                        )
                    )

    # --- labs, status ---------------------------------------------------------------------------------
    def lab(self, loinc: str, value: Decimal, offset: int) -> None:
        self.lab_n += 1
        self.add(
            fb.lab(f"{self.pid}-lab-{self.lab_n}", self.pid, loinc=loinc, value=value, when=self.when(offset))
        )

    def labs_and_status(self) -> None:
        rng, cov, pid = self.rng, self.covariates, self.pid
        pre, post = -rng.randint(1, 14), rng.randint(21, 25)
        lymph = Decimal(rng.randint(80, 240)) / 100
        neut = _q2(cov.nlr_pre * lymph)
        self.covariates = replace(cov, nlr_pre=_q2(neut / lymph))
        group = self.course.trajectory
        favourable = group in (Trajectory.CR, Trajectory.PR, Trajectory.PSPD, Trajectory.DELAYED_RESPONSE)
        unfavourable = group in (Trajectory.PD, Trajectory.HPD)
        lymph_factor = (1.15, 1.45) if favourable else (0.65, 0.9) if unfavourable else (0.9, 1.15)
        ldh_code = sorted(codes.LOINC_LDH)[rng.randint(0, 1)]
        for offset, ly, ne in (
            (pre, lymph, neut),
            (
                post,
                _q2(lymph * Decimal(str(round(rng.uniform(*lymph_factor), 2)))),
                _q2(neut * Decimal(str(round(rng.uniform(0.8, 1.2), 2)))),
            ),
        ):
            leuko = ne + ly + Decimal(rng.randint(40, 110)) / 100
            self.lab(codes.LOINC_NEUTROPHILS, ne, offset)
            self.lab(codes.LOINC_LYMPHOCYTES, ly, offset)
            self.lab(codes.LOINC_LEUKOCYTES, leuko, offset)
            self.lab(codes.LOINC_LYMPHOCYTES_PCT, (100 * ly / leuko).quantize(Decimal("0.1")), offset)
            ldh_hi = 480 if unfavourable else 320
            self.lab(ldh_code, Decimal(rng.randint(140, ldh_hi)), offset)
        self.lab(codes.LOINC_IL6, Decimal(rng.randint(15, 400)) / 10, pre)
        self.add(
            fb.ecog(
                f"{pid}-ecog-1",
                pid,
                value=cov.ecog,
                when=self.when(-rng.randint(0, 7)),
                care_team_id=self.care_team_id,
            )
        )
        self.add(fb.bmi(f"{pid}-bmi-1", pid, value=cov.bmi, when=self.when(-rng.randint(0, 7))))
        self.add(fb.smoking(f"{pid}-smoking-1", pid, status=cov.smoking, when=self.when(-rng.randint(0, 30))))
        if cov.pdl1_tps_pct is not None:
            self.add(
                fb.pdl1(f"{pid}-pdl1-1", pid, tps_pct=cov.pdl1_tps_pct, when=self.when(-rng.randint(14, 120)))
            )
        if cov.radiotherapy:
            end = -rng.randint(30, 400)
            organ = self.course.lesions[0].organ
            self.add(
                fb.radiotherapy(
                    f"{pid}-procedure-1",
                    pid,
                    start=self.day(end - rng.randint(14, 35)),
                    end=self.day(end),
                    organ=organ,
                    condition_id=self.condition_id,
                    lesion_bs_id=None,
                )
            )

    def local_treatment(
        self, kind: str | None, day: int | None, finding: int | None
    ) -> LocalTreatmentTruth | None:
        """Local treatment of the progressing lesion after the DR / PD finding at `finding`."""
        if kind is None or day is None or finding is None:
            return None
        course, pid = self.course, self.pid
        position = finding - 1
        _, _, progressing = dr_triggers(course, position)
        if not progressing:
            new = [lesion.key for lesion in course.lesions if lesion.first_seen == finding]
            progressing = set(new) or {lesion.key for lesion in course.lesions if lesion.role == "target"}
        key = sorted(progressing, key=lambda k: int(k[1:]))[0]
        lesion = course.lesion(key)
        bs_id = f"{pid}-bodystructure-{int(key[1:])}"
        proc_id = f"{pid}-procedure-2"
        if kind == "radiotherapy":
            self.add(
                fb.radiotherapy(
                    proc_id,
                    pid,
                    start=self.day(day),
                    end=self.day(day + self.rng.randint(5, 12)),
                    organ=lesion.organ,
                    condition_id=self.condition_id,
                    lesion_bs_id=bs_id,
                )
            )
        else:
            self.add(
                fb.thermal_ablation(
                    proc_id,
                    pid,
                    when=self.when(day),
                    organ=lesion.organ,
                    condition_id=self.condition_id,
                    lesion_bs_id=bs_id,
                )
            )
        return LocalTreatmentTruth(
            kind=kind,
            date=self.day(day).isoformat(),
            after_finding="DR" if course.dr_timepoint is not None else "PD",
            lesion=f"{pid}-{key}",
        )

    def last_contact(self, offset: int) -> None:
        pid = self.pid
        self.add(
            fb.last_contact_encounter(
                f"{pid}-encounter-1", pid, day=self.day(offset), condition_id=self.condition_id
            )
        )
        value = min(4, self.covariates.ecog + self.rng.choice((0, 0, 1)))
        self.add(
            fb.ecog(f"{pid}-ecog-2", pid, value=value, when=self.when(offset), care_team_id=self.care_team_id)
        )


def _truth(
    *,
    patient_id: str,
    cohort: str | None,
    trajectory: Trajectory,
    course: Course,
    start: date,
    baseline_day: int,
    pre_day: int | None,
    scan_days: list[int],
    death: int | None,
    last_contact: int,
    drawn: int | None,
    median: Medians,
    covariates: Covariates,
    local: LocalTreatmentTruth | None,
    ici_days: list[int],
) -> GroundTruth:
    def iso(offset: int) -> str:
        return (start + timedelta(days=offset)).isoformat()

    follow = course.follow_ups
    recist = [tp.recist or "NE" for tp in follow]
    if "PD" in recist:  # RECIST 1.1 section 4.4.1: no response after PD (docs/rules/recist-1.1.md)
        first = recist.index("PD")
        recist[first:] = ["PD"] * (len(recist) - first)
    irecist = [tp.irecist or "NE" for tp in follow]
    targets = [lesion.key for lesion in course.lesions if lesion.role == "target"]

    def sum_mm(tp_index: int) -> str:
        tp = next(t for t in course.timepoints if t.index == tp_index)
        return str(Decimal(sum(tp.effective(k) for k in targets)) / 10)

    dr = None
    if course.dr_timepoint is not None and course.dr_trigger is not None:
        k = course.dr_timepoint
        _, shrinking, progressing = dr_triggers(course, k - 1)
        dr = DrTruth(
            trigger=course.dr_trigger,
            timepoint_index=k,
            timepoint_date=iso(scan_days[k - 1]),
            overall_response_at_detection=recist[k - 1],
            shrinking_lesions=tuple(
                f"{patient_id}-{key}" for key in sorted(shrinking, key=lambda s: int(s[1:]))
            ),
            progressing_lesions=tuple(
                f"{patient_id}-{key}" for key in sorted(progressing, key=lambda s: int(s[1:]))
            ),
        )
    confirmed = confirmed_bor(recist, scan_days)
    first_pd = recist.index("PD") + 1 if "PD" in recist else None
    last_scan = scan_days[-1]
    if first_pd is not None:
        pfs, pfs_event = scan_days[first_pd - 1], True
    elif death is not None:
        pfs, pfs_event = death, True
    else:
        pfs, pfs_event = last_scan, False
    ipfs, ipfs_event = _ipfs(irecist, scan_days, death, last_scan)
    derived_delayed = delayed_response(irecist, scan_days)
    if course.delayed_response and not derived_delayed:
        raise CourseError(f"{trajectory}: delayed response intended but not shown by the schedule")
    os_days, os_event = (death, True) if death is not None else (last_contact, False)
    beyond = None if first_pd is None else any(d > scan_days[first_pd - 1] for d in ici_days)
    return GroundTruth(
        patient_id=patient_id,
        cohort=cohort,
        trajectory=trajectory.value,
        response_group=response_group(
            dr=dr is not None, pspd=course.pspd_timepoint is not None, confirmed=confirmed
        ),
        treatment_start=start.isoformat(),
        baseline_date=iso(baseline_day),
        pre_baseline_date=iso(pre_day) if pre_day is not None else None,
        timepoint_dates=tuple(iso(d) for d in scan_days),
        recist_timepoints=tuple(recist),
        irecist_timepoints=tuple(irecist),
        baseline_sum_mm=sum_mm(0),
        target_sums_mm=tuple(sum_mm(tp.index) for tp in follow),
        first_evaluation=recist[0],
        first_pd_index=first_pd,
        best_overall_response_confirmed=confirmed,
        best_overall_response_unconfirmed=unconfirmed_bor(recist, scan_days),
        irecist_best_overall_response=irecist_bor(irecist, scan_days),
        dr=dr,
        pspd=course.pspd_timepoint is not None,
        pspd_timepoint_index=course.pspd_timepoint,
        hpd=course.hpd,
        delayed_response=derived_delayed,
        local_treatments=(local,) if local is not None else (),
        endpoints=EndpointTruth(
            pfs_days=pfs,
            pfs_event=pfs_event,
            ipfs_days=ipfs,
            ipfs_event=ipfs_event,
            os_days=os_days,
            os_event=os_event,
            last_contact_date=iso(last_contact),
            death_date=iso(death) if death is not None else None,
            last_scan_date=iso(last_scan),
            drawn_progression_day=drawn,
            generating_pfs_median_months=median.pfs_months,
            generating_os_median_months=median.os_months,
        ),
        covariates=covariates,
        lesions=tuple(
            {
                "identifier": f"{patient_id}-{lesion.key}",
                "body_structure": f"BodyStructure/{patient_id}-bodystructure-{int(lesion.key[1:])}",
                "organ": lesion.organ,
                "role": lesion.role,
                "lymph_node": lesion.is_node,
                "first_seen_index": lesion.first_seen,
            }
            for lesion in course.lesions
        ),
        treated_beyond_progression=beyond,
    )


def _ipfs(irecist: list[str], scan_days: list[int], death: int | None, last_scan: int) -> tuple[int, bool]:
    """iPFS: date of the iUPD that a later iCPD confirms (start of that iUPD run), or death."""
    if "iCPD" in irecist:
        i = irecist.index("iCPD")
        while i > 0 and irecist[i - 1] == "iUPD":
            i -= 1
        return scan_days[i], True
    if death is not None:
        return death, True
    return last_scan, False
