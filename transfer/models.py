"""The transfer's own tables, kept in the zone's database beside the provenance events.

The sender (outer database) keeps one row per file it has numbered: the sequence number
is the primary key and rows are never deleted, so the highest number ever given out can
always be found and is never reused. The receiver (inner database) keeps what it has
published or dropped as a duplicate (its dedup memory, which outlives restarts) and the
gaps it has found.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tgw_common.db import Base, UTCDateTime


class SentFile(Base):
    __tablename__ = "transfer_sent"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    copies_sent: Mapped[int] = mapped_column(Integer, default=0)
    # When the carousel's next copy is due (first_sent_at + its offset); None once all are out.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Operator resends waiting (a count: the same file may be asked for twice).
    resend_pending: Mapped[int] = mapped_column(Integer, default=0, index=True)
    resend_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resends_done: Mapped[int] = mapped_column(Integer, default=0)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def tracking_id(self) -> str:
        return tracking_id(self.name)

    def as_dict(self) -> dict:
        return {
            "seq": self.seq, "name": self.name, "size": self.size, "sha256": self.sha256,
            "copies_sent": self.copies_sent, "resends_done": self.resends_done,
            "resend_pending": self.resend_pending,
            "enqueued_at": _iso(self.enqueued_at), "first_sent_at": _iso(self.first_sent_at),
            "last_sent_at": _iso(self.last_sent_at), "removed_at": _iso(self.removed_at),
        }


class ReceivedFile(Base):
    __tablename__ = "transfer_received"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    session: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # publishing: verified, rename under way (a crash here is finished at start-up);
    # published: in the inbound spool; duplicate: identical to a file published before.
    status: Mapped[str] = mapped_column(String(16))
    staging: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which receiver (host:state folder) wrote the row: only it can finish a "publishing" row,
    # since the file is in its staging folder (a standby receiver on another host cannot see it).
    owner: Mapped[str | None] = mapped_column(String(1024), nullable=True)

    __table_args__ = (Index("ix_transfer_received_status", "status"),)


class TransferGap(Base):
    __tablename__ = "transfer_gaps"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # "sequence" or "ledger"
    sender_session: Mapped[str | None] = mapped_column(String(32), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    closed_by: Mapped[str | None] = mapped_column(String(16), nullable=True)

    def as_dict(self) -> dict:
        return {
            "seq": self.seq, "name": self.name, "tracking_id": tracking_id(self.name) if self.name else None,
            "size": self.size, "sha256": self.sha256, "source": self.source,
            "sender_session": self.sender_session, "opened_at": _iso(self.opened_at),
            "closed_at": _iso(self.closed_at), "closed_by": self.closed_by,
        }


def tracking_id(name: str) -> str:
    """The outer zone names a file `<tracking_id>.p7m`: the tracking id is the name's stem."""
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
