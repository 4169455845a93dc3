"""The payment intake tables: agencies, envelopes, documents, payees and load records.

They live on their own MetaData (not tgw_common.db.Base): Alembic owns them
(inner_zone/migrations), and the shared `create_tables()` that other parts call for their
own tables must never create these behind the migrations' back. docs/inner.md describes
every column.

Exactly once is enforced by the database, not by the code that checks first:
- `intake_envelopes.envelope_id` is unique (the agency's replay key), and so is `sha256`
  (the file's content hash: an identical re-delivery is a duplicate, never a second load);
- `intake_documents` is unique on (agency, fiscal_year, voucher_no, ledger), so a voucher
  number is paid at most once per agency and fiscal year. `ledger` keeps parallel-test
  vouchers apart from live ones: an agency that rehearses in parallel-test mode sends the
  same vouchers again once it goes live, and those must not be refused as duplicates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tgw_common.db import UTCDateTime

MODES = ("live", "parallel-test")
LEDGER_LIVE = "live"
LEDGER_TEST = "test"

# Named constraints make the migrations reproducible on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BigKey = BigInteger().with_variant(Integer(), "sqlite")


class IntakeBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agency(IntakeBase):
    """One agency's intake settings. An agency without a row gets inner.default_agency_mode
    and documents.epayment_limit."""

    __tablename__ = "intake_agencies"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # live | parallel-test
    epayment_limit: Mapped[int | None] = mapped_column(BigInteger)  # NT$; None: documents.epayment_limit
    contact: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "mode": self.mode, "epayment_limit": self.epayment_limit,
                "contact": self.contact, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


class Envelope(IntakeBase):
    """One loaded envelope. Refused envelopes never get a row (they are in quarantine)."""

    __tablename__ = "intake_envelopes"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    envelope_id: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    release_digest: Mapped[str] = mapped_column(String(64), index=True)
    tracking_id: Mapped[str | None] = mapped_column(String(200), index=True)
    agency: Mapped[str] = mapped_column(String(16), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # the agency's mode when it was loaded
    is_test: Mapped[bool] = mapped_column(Boolean)
    # The one switch the payment side reads: parallel-test envelopes are never released.
    released_for_payment: Mapped[bool] = mapped_column(Boolean, index=True)
    created_at: Mapped[str | None] = mapped_column(String(40))  # manifest created_at, as sent
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    document_count: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    releaser: Mapped[dict[str, Any]] = mapped_column(JSON)
    approvals: Mapped[list[Any]] = mapped_column(JSON)
    seal: Mapped[dict[str, Any]] = mapped_column(JSON)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)

    def as_dict(self) -> dict[str, Any]:
        return {"envelope_id": self.envelope_id, "sha256": self.sha256, "tracking_id": self.tracking_id,
                "agency": self.agency, "mode": self.mode, "is_test": self.is_test,
                "released_for_payment": self.released_for_payment, "loaded_at": self.loaded_at.isoformat(),
                "document_count": self.document_count, "total_amount": self.total_amount}


class Document(IntakeBase):
    __tablename__ = "intake_documents"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    envelope_pk: Mapped[int] = mapped_column(ForeignKey("intake_envelopes.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # position in the manifest, from 0
    path: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str] = mapped_column(String(16))
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    document_no: Mapped[str | None] = mapped_column(String(64))
    voucher_no: Mapped[str | None] = mapped_column(String(64))  # vouchers only; NULLs never collide
    ledger: Mapped[str] = mapped_column(String(8))  # live | test (see the module docstring)
    amount: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("agency", "fiscal_year", "voucher_no", "ledger"),)


class Payee(IntakeBase):
    __tablename__ = "intake_payees"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    document_pk: Mapped[int] = mapped_column(ForeignKey("intake_documents.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    id_number: Mapped[str | None] = mapped_column(String(16))
    bank_code: Mapped[str | None] = mapped_column(String(16))
    account_no: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)


class LoadRecord(IntakeBase):
    """How and when an envelope was loaded, and where its original file is archived.

    `archive_path` is fixed in the load transaction, so archiving after the commit is a
    plain idempotent rename to a known name; `archived_at` stays NULL until the file is
    there, which is how a restart finds loads whose archive step a crash interrupted.
    """

    __tablename__ = "intake_loads"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    envelope_pk: Mapped[int] = mapped_column(ForeignKey("intake_envelopes.id", ondelete="CASCADE"), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    tracking_id: Mapped[str | None] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(255))
    via: Mapped[str] = mapped_column(String(16))  # runner | process
    host: Mapped[str] = mapped_column(String(128))
    session: Mapped[str] = mapped_column(String(64))  # the runner's (or command's) session id
    tries: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    archive_path: Mapped[str] = mapped_column(String(1024))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_intake_loads_unarchived", "archived_at"),)


class IssuedReceipt(IntakeBase):
    """A receipt signed for one envelope's fate (docs/receipts.md).

    `event_id` is the provenance event the receipt states (a load, or a quarantine with its
    refusal): unique, so an event gets one receipt however often the issuer restarts. The
    signed bytes are kept, so a receipt whose publication a crash interrupted is published
    again byte for byte; `published_at` stays NULL until its file is in the outbound folder.
    """

    __tablename__ = "intake_receipts"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    tracking_id: Mapped[str] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A refusal is also mailed to the agency's contact: when (or when found to have none),
    # and to whom ("" for no contact). NULL: not yet.
    mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mailed_to: Mapped[str | None] = mapped_column(String(254))

    __table_args__ = (Index("ix_intake_receipts_unpublished", "published_at"),)


class PaymentResult(IntakeBase):
    """The payment system's result for one loaded document (回饋帳務資訊), imported by
    `tgw inner payments import`; one per document: a second, different result is refused."""

    __tablename__ = "intake_payment_results"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    document_pk: Mapped[int] = mapped_column(ForeignKey("intake_documents.id", ondelete="CASCADE"), unique=True)
    envelope_pk: Mapped[int] = mapped_column(ForeignKey("intake_envelopes.id", ondelete="CASCADE"), index=True)
    result: Mapped[str] = mapped_column(String(8))  # paid | failed
    value_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    bank_reference: Mapped[str] = mapped_column(String(64))
    failure_reason: Mapped[str] = mapped_column(String(500))
    import_id: Mapped[str] = mapped_column(String(32), index=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QueuedEnvelope(IntakeBase):
    """An envelope waiting in the shared queue (inner.queue: database), for runners on any host.

    The bytes are in `intake_queue_chunks`, so every host reaches them through the database
    and they are replicated with it. A runner claims a row by raising `lease_token` and
    setting its lease; every later write of that runner (renewal, the load's commit, the
    finish) names the token it got, so a runner that lost its lease cannot commit. `name`
    is unique: a file handed in twice (two receivers, a crash between enqueue and unlink)
    is queued once. docs/deployment.md explains the design.
    """

    __tablename__ = "intake_queue"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(8))  # ready | done
    tries: Mapped[int] = mapped_column(Integer)
    lease_token: Mapped[int] = mapped_column(BigInteger)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_host: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    enqueued_by: Mapped[str] = mapped_column(String(128))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_intake_queue_state", "state", "id"),)


class QueuedChunk(IntakeBase):
    """One slice of a queued envelope's bytes; deleted once the envelope is finished."""

    __tablename__ = "intake_queue_chunks"

    queue_id: Mapped[int] = mapped_column(ForeignKey("intake_queue.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RunnerRow(IntakeBase):
    """One inner runner process, as it last told: the console's and the monitor's list."""

    __tablename__ = "intake_runners"

    session: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(8))  # spool | database
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    leases: Mapped[int] = mapped_column(Integer)
    stopped: Mapped[bool] = mapped_column(Boolean)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(String(500))
