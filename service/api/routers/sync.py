"""`POST /sync`: pull patients from the FHIR server, assess them and write the results back."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ContainerDep
from service.api.problems import PROBLEM_RESPONSES
from service.api.schemas.sync import SyncReportOut, SyncRequest
from service.api.security import WriterDep
from service.application.clock import today
from service.application.ports import PatientRef

router = APIRouter(tags=["sync"])


@router.post(
    "/sync",
    operation_id="sync-run",
    responses={k: PROBLEM_RESPONSES[k] for k in (422, 502, 503)},
)
async def run_sync(body: SyncRequest, container: ContainerDep, _caller: WriterDep) -> SyncReportOut:
    """Run one synchronisation now and report what it did. Safe to repeat: writes are idempotent."""
    sync = container.require_sync()
    only = [PatientRef(pid) for pid in body.patient_ids] if body.patient_ids is not None else None
    report = await sync(as_of=today(), since=body.since, only=only)
    container.count_sync(report)
    return SyncReportOut.from_report(report)
