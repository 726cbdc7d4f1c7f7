"""Store version: one counter that every write of patient assessments increases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

The research portal caches results per data version. It used to derive the version from
`count(*)` and `max(assessed_at)` of `patient_assessments`: a scan of the table at every check, and
blind to a re-assessment stamped earlier than the latest one (clocks of two replicas). One row,
increased in the same transaction as the assessments it versions, is read in constant time and
changes with every write whatever the clocks say.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "store_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_version"),
        sa.CheckConstraint("id = 1", name="ck_store_version_single_row"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0, "changed_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("store_version")
