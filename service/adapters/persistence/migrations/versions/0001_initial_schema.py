"""Initial schema: assessment runs, latest patient assessments, alert outbox, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Portable types only: the same revision builds SQLite and PostgreSQL. Constraint names follow
`tables.NAMING_CONVENTION` so that later SQLite batch migrations can address them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assessment_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(8), nullable=False),
        sa.Column("patients_total", sa.Integer(), nullable=False),
        sa.Column("patients_assessed", sa.Integer(), nullable=False),
        sa.Column("patients_failed", sa.Integer(), nullable=False),
        sa.Column("observations_created", sa.Integer(), nullable=False),
        sa.Column("observations_unchanged", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.CheckConstraint("trigger IN ('cli', 'api', 'sync', 'demo')", name="ck_assessment_runs_trigger"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'partial', 'failed')", name="ck_assessment_runs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_assessment_runs"),
    )
    op.create_table(
        "patient_assessments",
        sa.Column("fhir_patient_id", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_version", sa.String(64), nullable=False),
        sa.Column("response_group", sa.String(16), nullable=False),
        sa.Column("atypical", sa.Boolean(), nullable=False),
        sa.Column("best_response", sa.String(16), nullable=True),
        sa.Column("best_response_confirmed", sa.String(16), nullable=True),
        sa.Column("immune_best_response", sa.String(16), nullable=True),
        sa.Column("dr_trigger", sa.String(24), nullable=True),
        sa.Column("dr_timepoint_index", sa.Integer(), nullable=True),
        sa.Column("pfs_days", sa.Integer(), nullable=True),
        sa.Column("pfs_event", sa.Boolean(), nullable=True),
        sa.Column("os_days", sa.Integer(), nullable=True),
        sa.Column("os_event", sa.Boolean(), nullable=True),
        sa.Column("result_json", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["assessment_runs.id"], name="fk_patient_assessments_run_id_assessment_runs"
        ),
        sa.PrimaryKeyConstraint("fhir_patient_id", name="pk_patient_assessments"),
    )
    op.create_index("ix_patient_assessments_patient_key", "patient_assessments", ["patient_key"])
    op.create_index("ix_patient_assessments_run_id", "patient_assessments", ["run_id"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.Column("patient_key", sa.String(16), nullable=False),
        sa.Column("fhir_patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload_json", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'held')", name="ck_alert_outbox_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        sa.UniqueConstraint("dedup_key", name="uq_alert_outbox_dedup_key"),
    )
    op.create_index(
        "ix_alert_outbox_status_next_attempt_at", "alert_outbox", ["status", "next_attempt_at"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("detail_json", JSON_TYPE, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_alert_outbox_status_next_attempt_at", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_index("ix_patient_assessments_run_id", table_name="patient_assessments")
    op.drop_index("ix_patient_assessments_patient_key", table_name="patient_assessments")
    op.drop_table("patient_assessments")
    op.drop_table("assessment_runs")
