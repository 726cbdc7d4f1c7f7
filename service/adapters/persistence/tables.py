"""Database tables (SQLAlchemy 2 typed declarative models).

The schema itself is owned by the Alembic migrations in `migrations/versions/`; these models
must match them exactly (`tests/integration/persistence` compares the two after
`upgrade head`). Only portable types are used so that the same migrations run on SQLite and
PostgreSQL: strings, integers, booleans, UTC timestamps, and JSON (JSONB on PostgreSQL).

Decision (patient identity): rows are keyed by `fhir_patient_id`, the logical id of the Patient
resource on the FHIR server. It is needed to find a patient again (alerts, statistics, the API)
and it is a server-assigned technical id, not a direct identifier such as an MRN. The salted
`patient_key` is stored beside it and is the only patient reference that may appear in logs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are spelled out so that SQLite batch migrations can find them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON on SQLite, JSONB on PostgreSQL; the same Python values go in and come out.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")
# An auto-incrementing 64-bit key on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zone type, so values are normalised to
    UTC and stored naive, and read back as UTC. Naive datetimes are refused on the way in, since
    their meaning would depend on the server's zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps stored in the database must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class RunTrigger(StrEnum):
    """What started an assessment run."""

    CLI = "cli"
    API = "api"
    SYNC = "sync"
    DEMO = "demo"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every patient was assessed
    PARTIAL = "partial"  # finished, but some patients failed
    FAILED = "failed"  # aborted


class AlertStatus(StrEnum):
    PENDING = "pending"  # waiting for (another) delivery attempt at next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up; no further attempts
    HELD = "held"  # recorded but deliberately not sent (e.g. no recipient, alerts switched off)


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AssessmentRunRow(Base):
    __tablename__ = "assessment_runs"
    __table_args__ = (
        CheckConstraint(_in("trigger", RunTrigger), name="trigger"),
        CheckConstraint(_in("status", RunStatus), name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    trigger: Mapped[str] = mapped_column(String(8))
    patients_total: Mapped[int] = mapped_column(Integer, default=0)
    patients_assessed: Mapped[int] = mapped_column(Integer, default=0)
    patients_failed: Mapped[int] = mapped_column(Integer, default=0)
    observations_created: Mapped[int] = mapped_column(Integer, default=0)
    observations_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))


class PatientAssessmentRow(Base):
    """The latest assessment of one patient (one row per patient, upserted by every run)."""

    __tablename__ = "patient_assessments"
    __table_args__ = (Index("ix_patient_assessments_patient_key", "patient_key"),)

    fhir_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str] = mapped_column(ForeignKey("assessment_runs.id"), index=True)
    assessed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    data_version: Mapped[str] = mapped_column(String(64))
    response_group: Mapped[str] = mapped_column(String(16))
    atypical: Mapped[bool] = mapped_column(Boolean)
    best_response: Mapped[str | None] = mapped_column(String(16))
    best_response_confirmed: Mapped[str | None] = mapped_column(String(16))
    immune_best_response: Mapped[str | None] = mapped_column(String(16))
    dr_trigger: Mapped[str | None] = mapped_column(String(24))
    dr_timepoint_index: Mapped[int | None] = mapped_column(Integer)
    pfs_days: Mapped[int | None] = mapped_column(Integer)
    pfs_event: Mapped[bool | None] = mapped_column(Boolean)
    os_days: Mapped[int | None] = mapped_column(Integer)
    os_event: Mapped[bool | None] = mapped_column(Boolean)
    result_json: Mapped[dict[str, Any]] = mapped_column(PortableJSON)


class AlertOutboxRow(Base):
    """Transactional outbox of clinician alerts (contract section 3: once per patient, finding, timepoint)."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        CheckConstraint(_in("status", AlertStatus), name="status"),
        Index("ix_alert_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    patient_key: Mapped[str] = mapped_column(String(16))
    fhir_patient_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    payload_json: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Added by migration 0002 (alert delivery): per-channel state, worker lease, acknowledgement.
    channels_json: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class AuditLogRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    principal: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    detail_json: Mapped[dict[str, Any]] = mapped_column(PortableJSON)


class StoreVersionRow(Base):
    """One row (`id` 1): a counter increased in the same transaction as every write of patient
    assessments (the research portal's cache key; migration 0004 says why)."""

    __tablename__ = "store_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CdsTokenUseRow(Base):
    """CDS Hooks bearer JWTs already used (replay protection shared by every replica):
    one row per token until it expires. `token_key` is a SHA-256 of the issuer and the `jti`
    (bounded length, no token content)."""

    __tablename__ = "cds_token_uses"

    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PatientLeaseRow(Base):
    """A sync run's claim on a patient (migration 0005 says when other runs skip the patient)."""

    __tablename__ = "patient_leases"

    fhir_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
