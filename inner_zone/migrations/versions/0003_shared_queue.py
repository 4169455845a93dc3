"""The shared queue of envelopes for runners on several hosts, and the runners' own rows
(docs/deployment.md, "Many runners").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgw_common.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intake_queue",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_host", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueued_by", sa.String(length=128), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_queue")),
        sa.UniqueConstraint("name", name=op.f("uq_intake_queue_name")),
    )
    op.create_index("ix_intake_queue_state", "intake_queue", ["state", "id"], unique=False)
    op.create_table(
        "intake_queue_chunks",
        sa.Column("queue_id", BigKey, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["intake_queue.id"], name=op.f("fk_intake_queue_chunks_queue_id_intake_queue"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue_id", "seq", name=op.f("pk_intake_queue_chunks")),
    )
    op.create_table(
        "intake_runners",
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=8), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("leases", sa.Integer(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("session", name=op.f("pk_intake_runners")),
    )
    op.create_index(op.f("ix_intake_runners_seen_at"), "intake_runners", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_intake_runners_seen_at"), table_name="intake_runners")
    op.drop_table("intake_runners")
    op.drop_table("intake_queue_chunks")
    op.drop_index("ix_intake_queue_state", table_name="intake_queue")
    op.drop_table("intake_queue")
