"""Seeded generator of realistic FHIR R4 patients on immune checkpoint inhibitors, with ground truth.

Shape: `docs/fhir-contract.md` section 1 (codes from `service.adapters.fhir.codes`). Cohorts follow
the seed study (Guan et al., Sci Rep 2024; Tables 1 and 2). The truth travels in side files, never in
the FHIR data. Nothing here is imported by the service at run time.
"""

from service.synthetic.cohorts import (
    Cohort,
    cohort_bundle,
    mixed_cohort,
    nsclc_cohort,
    pan_tumour_cohort,
    transaction_bundle,
    write_cohort,
)
from service.synthetic.covariates import Covariates
from service.synthetic.patient import GeneratedPatient, generate_patient, group_of
from service.synthetic.trajectory import CourseError, Trajectory, TrajectoryOptions
from service.synthetic.truth import DrTruth, EndpointTruth, GroundTruth, LocalTreatmentTruth

__all__ = [
    "Cohort",
    "CourseError",
    "Covariates",
    "DrTruth",
    "EndpointTruth",
    "GeneratedPatient",
    "GroundTruth",
    "LocalTreatmentTruth",
    "Trajectory",
    "TrajectoryOptions",
    "cohort_bundle",
    "generate_patient",
    "group_of",
    "mixed_cohort",
    "nsclc_cohort",
    "pan_tumour_cohort",
    "transaction_bundle",
    "write_cohort",
]
