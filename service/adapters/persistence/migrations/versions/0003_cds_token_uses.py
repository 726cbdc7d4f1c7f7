"""CDS Hooks token uses: the `jti` replay ledger shared by every replica.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

A CDS client's bearer JWT may be used once. Each replica used to remember the `jti`s it had seen
in its own memory, so a token replayed to another replica was accepted. One row per used token
(`token_key`: SHA-256 of issuer and `jti`) until its expiry makes the check hold across replicas.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cds_token_uses",
        sa.Column("token_key", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_key", name="pk_cds_token_uses"),
    )
    op.create_index("ix_cds_token_uses_expires_at", "cds_token_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_cds_token_uses_expires_at", table_name="cds_token_uses")
    op.drop_table("cds_token_uses")
