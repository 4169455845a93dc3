"""Provenance events and daemon heartbeats: kept in the zone's database, published on ZeroMQ.

Every hop calls `Provenance.record()` for each envelope it touches and `heartbeat()` from its
main loop. The database copy is the record (the console and `tgw ... status` read it); the
PUB socket is a live feed for the zone's monitor and may drop messages when nobody listens.
docs/events.md lists the event names.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Engine, Index, Integer, String, insert, or_, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, UTCDateTime, create_tables, transaction, utcnow

log = logging.getLogger(__name__)

# The envelope events, in the order an envelope meets them. Keep docs/events.md in step.
EVENT_NAMES = (
    "received",  # outer: upload accepted after the release check
    "refused",  # any hop: refused with a reason code
    "spooled",  # outer: published into the transfer's outbound spool
    "sent",  # transfer sender: copy n of the file sent
    "resent",  # transfer sender: sent again by an operator's resend
    "arrived",  # transfer receiver: reassembled, hash checked, published inbound
    "duplicate",  # transfer receiver or intake: an identical copy seen again and dropped
    "gap",  # transfer receiver: a sequence number or ledger entry never arrived
    "claimed",  # inner runner: taken from the inbound spool
    "decrypted",  # inner: seal opened
    "verified",  # inner: every signature, path and role checked
    "unpacked",  # inner: archive unpacked and manifest checked
    "validated",  # inner: documents passed schema and business checks
    "loaded",  # inner: committed to the payment database
    "quarantined",  # inner: moved to quarantine with its reason
    "retried",  # inner: an operator put a quarantined envelope back
    "rejected",  # inner: an operator closed a quarantined envelope for good
    "archived",  # inner: the original file kept in the archive
    "payments",  # inner: payment results imported for some of a loaded envelope's documents
)


class EventRow(Base):
    __tablename__ = "provenance_events"

    # SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    zone: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(128))
    hop: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    tracking_id: Mapped[str | None] = mapped_column(String(64), index=True)
    envelope_id: Mapped[str | None] = mapped_column(String(200), index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_provenance_event_at", "event", "at"),)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "zone": self.zone,
            "host": self.host,
            "hop": self.hop,
            "event": self.event,
            "sha256": self.sha256,
            "tracking_id": self.tracking_id,
            "envelope_id": self.envelope_id,
            "reason": self.reason,
            "detail": self.detail or {},
        }


class DaemonStatusRow(Base):
    """The latest heartbeat of each daemon (one row per daemon, updated in place)."""

    __tablename__ = "daemon_status"

    daemon: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(128))
    session: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "daemon": self.daemon,
            "zone": self.zone,
            "host": self.host,
            "session": self.session,
            "started_at": self.started_at.isoformat(),
            "at": self.at.isoformat(),
            "state": self.state or {},
        }


def _insert_queued(session: Session) -> None:
    rows = session.info.pop("tgw_event_rows", None)
    if rows:
        session.connection().execute(insert(EventRow.__table__), rows)


def _forget_queued(session: Session) -> None:
    session.info.pop("tgw_event_rows", None)
    session.info.pop("tgw_events", None)


@dataclass
class _Publisher:
    endpoint: str

    def __post_init__(self) -> None:
        import zmq

        self._zmq = zmq
        self._socket = zmq.Context.instance().socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 200)
        self._socket.setsockopt(zmq.SNDHWM, 10000)
        self._socket.connect(self.endpoint)
        self._lock = threading.Lock()  # ZeroMQ sockets must not be used from two threads at once

    def send(self, topic: str, body: dict[str, Any]) -> None:
        try:
            with self._lock:
                self._socket.send_multipart([topic.encode(), json.dumps(body, ensure_ascii=False).encode()],
                                            flags=self._zmq.NOBLOCK)
        except self._zmq.Again:
            log.debug("event feed full; the database keeps the record")

    def close(self) -> None:
        self._socket.close()


class Provenance:
    """The event API every hop uses."""

    def __init__(self, engine: Engine, *, zone: str, host: str, publish: str | None = None) -> None:
        self.engine = engine
        self.zone = zone
        self.host = host
        create_tables(engine)
        self._publisher = _Publisher(publish) if publish else None

    def record(
        self,
        event: str,
        hop: str,
        *,
        sha256: str | None = None,
        tracking_id: str | None = None,
        envelope_id: str | None = None,
        reason: str | None = None,
        session: Session | None = None,
        at: datetime | None = None,
        **detail: Any,
    ) -> dict[str, Any]:
        """Record one event; inside `session` it commits (or not) with the caller's work."""
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown event name {event!r}")
        # A plain dict, not an EventRow: building an ORM instance cost more than writing it.
        values = {"at": at or utcnow(), "zone": self.zone, "host": self.host, "hop": hop, "event": event,
                  "sha256": sha256, "tracking_id": tracking_id, "envelope_id": envelope_id, "reason": reason,
                  "detail": detail}
        body = {**values, "at": values["at"].isoformat()}
        if session is not None:
            # Queued and written in one executemany just before the commit: a hop records
            # several events per envelope, and one statement costs less than six flushes.
            rows = session.info.get("tgw_event_rows")
            if rows is None:
                rows = session.info["tgw_event_rows"] = []
                sa_event.listen(session, "before_commit", _insert_queued, once=True)
                sa_event.listen(session, "after_rollback", _forget_queued, once=True)
                if self._publisher:
                    sa_event.listen(session, "after_commit", self._flush_pending, once=True)
            rows.append(values)
            if self._publisher:
                session.info.setdefault("tgw_events", []).append(body)
        else:
            with transaction(self.engine) as own:
                own.connection().execute(insert(EventRow.__table__), values)
            if self._publisher:
                self._publisher.send("event", body)
        return body

    def _flush_pending(self, session: Session) -> None:
        for body in session.info.pop("tgw_events", []):
            self._publisher.send("event", body)

    def heartbeat(self, daemon: str, *, session_id: str, started_at: datetime, at: datetime | None = None,
                  host: str | None = None, **state: Any) -> dict[str, Any]:
        """`host` names another machine when the heartbeat was relayed (the outer sender's, seen
        across the one-way link); by default it is this process's host."""
        now = at or utcnow()
        with transaction(self.engine) as s:
            row = s.get(DaemonStatusRow, daemon)
            if row is None:
                row = DaemonStatusRow(daemon=daemon)
                s.add(row)
            row.zone, row.host, row.session = self.zone, (host or self.host)[:255], session_id
            row.started_at, row.at, row.state = started_at, now, state
            body = row.as_dict()
        if self._publisher:
            self._publisher.send("heartbeat", body)
        return body

    def history(
        self, *, sha256: str | None = None, tracking_id: str | None = None, envelope_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every event of one envelope, oldest first, by any of its three names."""
        conds = []
        if sha256:
            conds.append(EventRow.sha256 == sha256)
        if tracking_id:
            conds.append(EventRow.tracking_id == tracking_id)
        if envelope_id:
            conds.append(EventRow.envelope_id == envelope_id)
        if not conds:
            return []
        with transaction(self.engine) as s:
            rows = s.scalars(select(EventRow).where(or_(*conds)).order_by(EventRow.at, EventRow.id)).all()
            return [r.as_dict() for r in rows]

    def recent(self, limit: int = 20, *, event: str | None = None) -> list[dict[str, Any]]:
        with transaction(self.engine) as s:
            q = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if event:
                q = q.where(EventRow.event == event)
            return [r.as_dict() for r in s.scalars(q).all()]

    def daemons(self) -> list[dict[str, Any]]:
        with transaction(self.engine) as s:
            return [r.as_dict() for r in s.scalars(select(DaemonStatusRow).order_by(DaemonStatusRow.daemon))]

    def close(self) -> None:
        if self._publisher:
            self._publisher.close()
