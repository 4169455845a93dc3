"""The intake tables: agencies, envelopes, documents, payees, load records.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgw_common.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intake_agencies",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("epayment_limit", sa.BigInteger(), nullable=True),
        sa.Column("contact", sa.String(length=254), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_intake_agencies")),
    )
    op.create_table(
        "intake_envelopes",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("envelope_id", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("release_digest", sa.String(length=64), nullable=False),
        sa.Column("tracking_id", sa.String(length=200), nullable=True),
        sa.Column("agency", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("released_for_payment", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=True),
        sa.Column("loaded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("releaser", sa.JSON(), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("seal", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_envelopes")),
        sa.UniqueConstraint("envelope_id", name=op.f("uq_intake_envelopes_envelope_id")),
        sa.UniqueConstraint("sha256", name=op.f("uq_intake_envelopes_sha256")),
    )
    for column in ("agency", "loaded_at", "release_digest", "released_for_payment", "tracking_id"):
        op.create_index(op.f(f"ix_intake_envelopes_{column}"), "intake_envelopes", [column], unique=False)

    op.create_table(
        "intake_documents",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("envelope_pk", BigKey, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=16), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=True),
        sa.Column("document_no", sa.String(length=64), nullable=True),
        sa.Column("voucher_no", sa.String(length=64), nullable=True),
        sa.Column("ledger", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["envelope_pk"], ["intake_envelopes.id"],
                                name=op.f("fk_intake_documents_envelope_pk_intake_envelopes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_documents")),
        sa.UniqueConstraint("agency", "fiscal_year", "voucher_no", "ledger",
                            name=op.f("uq_intake_documents_agency_fiscal_year_voucher_no_ledger")),
    )
    op.create_index(op.f("ix_intake_documents_envelope_pk"), "intake_documents", ["envelope_pk"], unique=False)

    op.create_table(
        "intake_loads",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("envelope_pk", BigKey, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("tracking_id", sa.String(length=200), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("archive_path", sa.String(length=1024), nullable=False),
        sa.Column("archived_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["envelope_pk"], ["intake_envelopes.id"],
                                name=op.f("fk_intake_loads_envelope_pk_intake_envelopes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_loads")),
        sa.UniqueConstraint("envelope_pk", name=op.f("uq_intake_loads_envelope_pk")),
    )
    op.create_index("ix_intake_loads_unarchived", "intake_loads", ["archived_at"], unique=False)

    op.create_table(
        "intake_payees",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("document_pk", BigKey, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("id_number", sa.String(length=16), nullable=True),
        sa.Column("bank_code", sa.String(length=16), nullable=True),
        sa.Column("account_no", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["document_pk"], ["intake_documents.id"],
                                name=op.f("fk_intake_payees_document_pk_intake_documents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_payees")),
    )
    op.create_index(op.f("ix_intake_payees_document_pk"), "intake_payees", ["document_pk"], unique=False)


def downgrade() -> None:
    op.drop_table("intake_payees")
    op.drop_table("intake_loads")
    op.drop_table("intake_documents")
    op.drop_table("intake_envelopes")
    op.drop_table("intake_agencies")
