"""The receipts the inner zone signed, one per envelope fate (docs/receipts.md), and the
payment results they report (docs/payments.md).

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
        sa.Column("mailed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("mailed_to", sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_receipts")),
        sa.UniqueConstraint("event_id", name=op.f("uq_intake_receipts_event_id")),
    )
    op.create_index("ix_intake_receipts_tracking_id", "intake_receipts", ["tracking_id"])
    op.create_index("ix_intake_receipts_unpublished", "intake_receipts", ["published_at"])
    op.create_table(
        "intake_payment_results",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("document_pk", BigKey, nullable=False),
        sa.Column("envelope_pk", BigKey, nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("value_date", sa.String(length=10), nullable=False),
        sa.Column("bank_reference", sa.String(length=64), nullable=False),
        sa.Column("failure_reason", sa.String(length=500), nullable=False),
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("imported_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_pk"], ["intake_documents.id"], ondelete="CASCADE",
                                name=op.f("fk_intake_payment_results_document_pk_intake_documents")),
        sa.ForeignKeyConstraint(["envelope_pk"], ["intake_envelopes.id"], ondelete="CASCADE",
                                name=op.f("fk_intake_payment_results_envelope_pk_intake_envelopes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_payment_results")),
        sa.UniqueConstraint("document_pk", name=op.f("uq_intake_payment_results_document_pk")),
    )
    op.create_index("ix_intake_payment_results_envelope_pk", "intake_payment_results", ["envelope_pk"])
    op.create_index("ix_intake_payment_results_import_id", "intake_payment_results", ["import_id"])


def downgrade() -> None:
    op.drop_index("ix_intake_payment_results_import_id", table_name="intake_payment_results")
    op.drop_index("ix_intake_payment_results_envelope_pk", table_name="intake_payment_results")
    op.drop_table("intake_payment_results")
    op.drop_index("ix_intake_receipts_unpublished", table_name="intake_receipts")
    op.drop_index("ix_intake_receipts_tracking_id", table_name="intake_receipts")
    op.drop_table("intake_receipts")
