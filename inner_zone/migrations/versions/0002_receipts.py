"""The receipts the inner zone signed, one per envelope fate (docs/receipts.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgw_common.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intake_receipts",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("tracking_id", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_receipts")),
        sa.UniqueConstraint("event_id", name=op.f("uq_intake_receipts_event_id")),
    )
    op.create_index("ix_intake_receipts_tracking_id", "intake_receipts", ["tracking_id"])
    op.create_index("ix_intake_receipts_unpublished", "intake_receipts", ["published_at"])


def downgrade() -> None:
    op.drop_index("ix_intake_receipts_unpublished", table_name="intake_receipts")
    op.drop_index("ix_intake_receipts_tracking_id", table_name="intake_receipts")
    op.drop_table("intake_receipts")
