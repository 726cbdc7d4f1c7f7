"""Patient leases: syncs of several processes or replicas share the work through the database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

A sync takes a lease on a patient before it reads, assesses and writes them. Another run skips the
patient if the lease was live at any time since that run started (a concurrent run is doing or
has done the patient). A lease ends when its run finishes (`expires_at` set to then) or at
`expires_at` when its process died. `acquired_at` is kept for operators (who took it when).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_leases",
        sa.Column("fhir_patient_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fhir_patient_id", name="pk_patient_leases"),
    )
    op.create_index("ix_patient_leases_run_id", "patient_leases", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_patient_leases_run_id", table_name="patient_leases")
    op.drop_table("patient_leases")
