"""Patient leases in the database, so that syncs of several processes share the work.

`acquire(patient_id, run_id, run_started_at)` is one upsert that answers whether the run now holds
the patient. It takes the row over only when the lease ended (finished or expired) before this
run started; a lease that was live at any time during this run belongs to a concurrent run that
is doing or has done the patient, and the run skips the patient. The
primary key decides between two runs racing for one patient, on PostgreSQL and SQLite alike (the
statement starts with a write, so SQLite waits for the write lock within its busy timeout instead
of failing a read-to-write upgrade). `release(run_id)` ends the run's leases (expires_at = now);
a process that dies leaves them to expire after `ttl`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

import anyio.to_thread
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from service.adapters.persistence.database import dialect_insert, utc_now
from service.adapters.persistence.tables import PatientLeaseRow


class SqlPatientLeases:
    """`PatientLeases` on the `patient_leases` table (synchronous core, async port methods)."""

    def __init__(self, engine: Engine, *, ttl: timedelta, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock

    def try_acquire(self, patient_id: str, run_id: str, run_started_at: datetime) -> bool:
        now = self._clock()
        with Session(self._engine) as session, session.begin():
            statement = dialect_insert(session, PatientLeaseRow).values(
                fhir_patient_id=patient_id, run_id=run_id, acquired_at=now, expires_at=now + self._ttl
            )
            ended_before_this_run = PatientLeaseRow.expires_at < run_started_at
            upsert = statement.on_conflict_do_update(
                index_elements=[PatientLeaseRow.fhir_patient_id],
                set_={
                    "run_id": statement.excluded.run_id,
                    "acquired_at": statement.excluded.acquired_at,
                    "expires_at": statement.excluded.expires_at,
                },
                where=ended_before_this_run | (PatientLeaseRow.run_id == run_id),
            ).returning(PatientLeaseRow.run_id)
            return session.execute(upsert).scalar_one_or_none() == run_id

    def release_all(self, run_id: str) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(PatientLeaseRow)
                .where(PatientLeaseRow.run_id == run_id)
                .values(expires_at=self._clock())
            )

    async def acquire(self, patient_id: str, run_id: str, run_started_at: datetime) -> bool:
        return await anyio.to_thread.run_sync(partial(self.try_acquire, patient_id, run_id, run_started_at))

    async def release(self, run_id: str) -> None:
        await anyio.to_thread.run_sync(partial(self.release_all, run_id))
