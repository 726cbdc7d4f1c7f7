"""Test-only builder of patient timelines (days are counted from treatment start)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

from service.domain.model import (
    LabKind,
    LabResult,
    Lesion,
    LesionMeasurement,
    LesionRole,
    MeasurementFlag,
    NonTargetAssessment,
    NonTargetState,
    PatientTimeline,
    Scan,
)

START = date(2024, 1, 1)
AS_OF = date(2030, 1, 1)

# A diameter: mm as int/str/Decimal, "too-small", "disappeared", or a tuple of fragments.
Value = int | str | Decimal | tuple[int | str | Decimal, ...]


def mm(value: int | str | Decimal) -> Decimal:
    return Decimal(str(value))


class TimelineBuilder:
    def __init__(self, start: date = START, patient_id: str = "p1") -> None:
        self.start = start
        self.patient_id = patient_id
        self._lesions: dict[str, Lesion] = {}
        self._scans: list[Scan] = []
        self._labs: list[LabResult] = []
        self._death: date | None = None
        self._last_contact: date | None = None

    def day(self, n: int) -> date:
        return self.start + timedelta(days=n)

    def lesion(
        self, lesion_id: str, organ: str = "lung", *, node: bool = False, role: LesionRole | None = None
    ) -> TimelineBuilder:
        self._lesions[lesion_id] = Lesion(
            lesion_id, "lymph-node" if node else organ, node, role, f"BodyStructure/{lesion_id}"
        )
        return self

    def target(self, lesion_id: str, organ: str = "lung", *, node: bool = False) -> TimelineBuilder:
        return self.lesion(lesion_id, organ, node=node, role=LesionRole.TARGET)

    def non_target(self, lesion_id: str, organ: str = "lung", *, node: bool = False) -> TimelineBuilder:
        return self.lesion(lesion_id, organ, node=node, role=LesionRole.NON_TARGET)

    def new_target(self, lesion_id: str, organ: str = "lung", *, node: bool = False) -> TimelineBuilder:
        return self.lesion(lesion_id, organ, node=node, role=LesionRole.NEW_TARGET)

    def scan(
        self,
        day: int,
        values: Mapping[str, Value] | None = None,
        nt: Mapping[str, str] | None = None,
    ) -> TimelineBuilder:
        measurements: list[LesionMeasurement] = []
        for lid, value in (values or {}).items():
            node = self._lesions[lid].is_lymph_node if lid in self._lesions else False
            parts = value if isinstance(value, tuple) else (value,)
            for n, part in enumerate(parts):
                ref = f"Observation/{lid}-{day}-{n}"
                if part in ("too-small", "disappeared"):
                    flag = MeasurementFlag(str(part))
                    measurements.append(LesionMeasurement(lid, flag=flag, ref=ref))
                elif node:
                    measurements.append(LesionMeasurement(lid, short_axis_mm=mm(part), ref=ref))
                else:
                    measurements.append(LesionMeasurement(lid, long_axis_mm=mm(part), ref=ref))
        statuses = tuple(
            NonTargetAssessment(lid, NonTargetState(state), f"Observation/nt-{lid}-{day}")
            for lid, state in (nt or {}).items()
        )
        self._scans.append(Scan(self.day(day), tuple(measurements), statuses, f"ImagingStudy/{day}"))
        return self

    def death(self, day: int) -> TimelineBuilder:
        self._death = self.day(day)
        return self

    def last_contact(self, day: int) -> TimelineBuilder:
        self._last_contact = self.day(day)
        return self

    def lab(self, kind: LabKind, day: int, value: int | str) -> TimelineBuilder:
        self._labs.append(LabResult(kind, self.day(day), mm(value)))
        return self

    def build(self) -> PatientTimeline:
        return PatientTimeline(
            patient_id=self.patient_id,
            treatment_start=self.start,
            lesions=tuple(self._lesions.values()),
            scans=tuple(self._scans),
            death_date=self._death,
            last_contact=self._last_contact,
            labs=tuple(self._labs),
        )


def single_target(baseline: Value, *follow_ups: Value, every: int = 56) -> PatientTimeline:
    """One target lesion T (liver) at day -7, then one value per follow-up every `every` days."""
    b = TimelineBuilder().target("T", "liver").scan(-7, {"T": baseline})
    for n, value in enumerate(follow_ups, start=1):
        b.scan(n * every, {"T": value})
    return b.build()
