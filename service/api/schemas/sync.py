"""Schemas of the synchronisation endpoints (our snake_case JSON contract, not FHIR)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.application.assess import SyncReport


class SyncRequest(BaseModel):
    since: datetime | None = Field(
        default=None, description="Only patients whose Patient resource changed after this instant"
    )
    patient_ids: list[str] | None = Field(
        default=None, max_length=1000, description="Only these patients (FHIR logical ids)"
    )


class IssueOut(BaseModel):
    severity: str
    code: str
    message: str
    ref: str | None


class SyncReportOut(BaseModel):
    run_id: str
    patients_seen: int
    patients_assessed: int
    patients_failed: int
    created: int
    updated: int
    unchanged: int
    elapsed_ms: int
    issues: list[IssueOut] = Field(description="At most the first 100 issues")
    issues_total: int
    writes_failed: int = Field(
        description="Patients assessed whose results did not all reach the FHIR server (counted in "
        "patients_failed; the next sync repairs them)"
    )
    permissions_refused: list[str] = Field(
        description="Each permission the FHIR server refused on a write, once, with the scope likely missing"
    )
    not_assessed: dict[str, int] = Field(
        default_factory=dict,
        description="Patients not counted as assessed (in patients_failed), by reason: the code of "
        "their first error issue, e.g. no-ici-start, lesion-not-found, duplicate-resource-conflict",
    )

    @classmethod
    def from_report(cls, r: SyncReport) -> SyncReportOut:
        return cls(
            run_id=r.run_id,
            patients_seen=r.patients_seen,
            patients_assessed=r.patients_assessed,
            patients_failed=r.patients_failed,
            created=r.created,
            updated=r.updated,
            unchanged=r.unchanged,
            elapsed_ms=round(r.elapsed_s * 1000),
            issues=[
                IssueOut(severity=i.severity, code=i.code, message=i.message, ref=i.ref)
                for i in r.issues[:100]
            ],
            issues_total=len(r.issues),
            writes_failed=r.writes_failed,
            permissions_refused=list(r.permissions),
            not_assessed=dict(r.not_assessed),
        )
