"""The synthetic generator and the inbound reader agree (codes.py is their single source).

Ground truth comes from the generator's own intent (`GroundTruth`), not from this reader: a
drift in codes, units, references or dates between the two makes this fail.
"""

from __future__ import annotations

from decimal import Decimal

from service.adapters.fhir.inbound import patient_input
from service.domain.model import LesionRole
from service.synthetic import mixed_cohort


def test_generated_patients_map_without_issues_and_match_their_truth() -> None:
    for generated in mixed_cohort(20, 11).patients:
        result = patient_input(generated.patient_id, generated.resources)
        assert result.issues == (), generated.patient_id
        timeline = result.timeline
        assert timeline is not None
        truth = generated.truth
        assert timeline.treatment_start.isoformat() == truth.treatment_start
        lesions = {lesion.lesion_id: lesion for lesion in timeline.lesions}
        baseline = [s for s in timeline.scans if s.study_date.isoformat() == truth.baseline_date]
        # RECIST 1.1 sum of diameters: long axis of non-nodal targets, short axis of nodal targets.
        total = Decimal(0)
        for scan in baseline:
            for m in scan.measurements:
                lesion = lesions[m.lesion_id]
                if lesion.role is LesionRole.TARGET:
                    total += (m.short_axis_mm if lesion.is_lymph_node else m.long_axis_mm) or Decimal(0)
        assert total == Decimal(truth.baseline_sum_mm), generated.patient_id
