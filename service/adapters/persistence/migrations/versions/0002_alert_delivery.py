"""Alert delivery state: per-channel progress and acknowledgement.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

`channels_json` keeps what each delivery channel (FHIR Communication + Flag, each webhook URL)
has done for the alert, so that a retry only repeats the channels that failed; `lease_token`
marks a row claimed by one worker until `next_attempt_at` (a crashed worker's claim expires);
`acknowledged_at`/`acknowledged_by` record who acknowledged the alert through the API.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.add_column(sa.Column("channels_json", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("lease_token", sa.String(32), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
        batch.drop_column("lease_token")
        batch.drop_column("channels_json")
