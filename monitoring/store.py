"""The monitor's tables in the zone database: alert states, their history, the notification
log, the daemon sessions seen, and the last status snapshot (for `tgw monitor status`).

Everything the notifier must remember across a restart is here, so a restarted monitor
neither forgets a pending timer nor mails again what it already mailed. A notice's log row is
written right after the SMTP server accepted the mail: a kill -9 between the two re-sends that
one mail once (an alert mailed twice is better than one never mailed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Engine, Index, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from tgw_common.db import Base, UTCDateTime, create_tables, transaction

from .model import AlertState, GroupEntry, Notice, Transition

_ID = BigInteger().with_variant(Integer(), "sqlite")


class AlertRow(Base):
    __tablename__ = "monitor_alerts"

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    zone: Mapped[str] = mapped_column(String(16), index=True)
    hop: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    summary_zh: Mapped[str] = mapped_column(Text)
    summary_en: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active_since: Mapped[datetime] = mapped_column(UTCDateTime())
    firing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    inhibited_by: Mapped[str | None] = mapped_column(String(32))
    muted: Mapped[bool] = mapped_column(Boolean, default=False)


class AlertHistoryRow(Base):
    __tablename__ = "monitor_alert_history"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    zone: Mapped[str] = mapped_column(String(16))
    hop: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))  # pending | firing | changed | resolved | cleared
    severity: Mapped[str] = mapped_column(String(16))
    summary_zh: Mapped[str] = mapped_column(Text)
    summary_en: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "state": self.state, "severity": self.severity,
                "labels": {"zone": self.zone, "hop": self.hop, "check": self.check, "host": self.host,
                           "subject": self.subject},
                "fingerprint": self.fingerprint, "summary_zh": self.summary_zh, "summary_en": self.summary_en,
                "facts": self.facts or {}}


class NotificationGroupRow(Base):
    """The notification log proper (Alertmanager's nflog): one row per alert group."""

    __tablename__ = "monitor_nflog"

    group_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    notified: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NotificationRow(Base):
    """Every notice attempted, sent or not (for `tgw monitor alerts --notifications`)."""

    __tablename__ = "monitor_notifications"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    group_key: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(16))  # sent | failed | skipped
    mail_subject: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    fingerprints: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "group": self.group_key, "kind": self.kind, "reason": self.reason,
                "result": self.result, "subject": self.mail_subject, "recipients": self.recipients,
                "fingerprints": self.fingerprints, "error": self.error}


class SessionRow(Base):
    """Each daemon session id the monitor has seen: restarts per hour are counted from these."""

    __tablename__ = "monitor_sessions"

    daemon: Mapped[str] = mapped_column(String(64), primary_key=True)
    session: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_monitor_sessions_started", "daemon", "started_at"),)


class SnapshotRow(Base):
    __tablename__ = "monitor_snapshot"

    zone: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def _state(row: AlertRow) -> AlertState:
    return AlertState(
        fingerprint=row.fingerprint, group_key=row.group_key, state=row.state, severity=row.severity,
        labels={"zone": row.zone, "hop": row.hop, "check": row.check, "host": row.host, "subject": row.subject},
        summary_zh=row.summary_zh, summary_en=row.summary_en, facts=row.facts or {}, since=row.since,
        active_since=row.active_since, firing_since=row.firing_since, resolved_at=row.resolved_at,
        inhibited_by=row.inhibited_by, muted=row.muted)


class MonitorStore:
    def __init__(self, engine: Engine, zone: str) -> None:
        self.engine = engine
        self.zone = zone
        create_tables(engine)

    # --- notifier state
    def load(self) -> tuple[list[AlertState], list[GroupEntry]]:
        with transaction(self.engine) as s:
            alerts = [_state(r) for r in s.scalars(select(AlertRow).where(AlertRow.zone == self.zone))]
            groups = [GroupEntry(r.group_key, dict(r.labels or {}), dict(r.notified or {}), r.last_sent_at)
                      for r in s.scalars(select(NotificationGroupRow))
                      if (r.labels or {}).get("zone", self.zone) == self.zone]
        return alerts, groups

    def save_cycle(self, states: list[AlertState], transitions: list[Transition], forgotten: set[str]) -> None:
        """The alert states after a cycle, their transitions into history, in one transaction."""
        with transaction(self.engine) as s:
            for st in states:
                row = s.get(AlertRow, st.fingerprint)
                if row is None:
                    row = AlertRow(fingerprint=st.fingerprint)
                    s.add(row)
                lab = st.labels
                row.zone, row.hop, row.check, row.host, row.subject = (
                    lab["zone"], lab["hop"], lab["check"], lab["host"], lab.get("subject", ""))
                row.group_key, row.state, row.severity = st.group_key, st.state, st.severity
                row.summary_zh, row.summary_en, row.facts, row.since = st.summary_zh, st.summary_en, st.facts, st.since
                row.active_since, row.firing_since, row.resolved_at = st.active_since, st.firing_since, st.resolved_at
                row.inhibited_by, row.muted = st.inhibited_by, st.muted
            if forgotten:
                s.execute(delete(AlertRow).where(AlertRow.fingerprint.in_(list(forgotten))))
            for t in transitions:
                a, lab = t.alert, t.alert.labels
                s.add(AlertHistoryRow(
                    at=t.at, fingerprint=a.fingerprint, zone=lab["zone"], hop=lab["hop"], check=lab["check"],
                    host=lab["host"], subject=lab.get("subject", ""), state=t.to_state, severity=a.severity,
                    summary_zh=a.summary_zh, summary_en=a.summary_en, facts=a.facts))

    def record_notice(self, entry: GroupEntry | None, notice: Notice, *, result: str, mail_subject: str,
                      recipients: list[str], error: str | None = None) -> None:
        """Log one notice; with `entry` (the mail went out) the group's log moves on too."""
        with transaction(self.engine) as s:
            if entry is not None:
                row = s.get(NotificationGroupRow, entry.key)
                if row is None:
                    row = NotificationGroupRow(group_key=entry.key)
                    s.add(row)
                row.labels, row.notified, row.last_sent_at = dict(entry.labels), dict(entry.notified), entry.last_sent_at
            s.add(NotificationRow(at=notice.at, group_key=notice.group_key, kind=notice.kind, reason=notice.reason,
                                  result=result, mail_subject=mail_subject, recipients=list(recipients),
                                  fingerprints=notice.fingerprints, error=error))

    # --- daemon sessions
    def note_sessions(self, seen: dict[str, tuple[str, datetime]], now: datetime) -> None:
        if not seen:
            return
        with transaction(self.engine) as s:
            for daemon, (session, started_at) in seen.items():
                if s.get(SessionRow, (daemon, session)) is None:
                    s.add(SessionRow(daemon=daemon, session=session, started_at=started_at, first_seen_at=now))

    def sessions_since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        with transaction(self.engine) as s:
            return [(r.daemon, r.session, r.started_at)
                    for r in s.scalars(select(SessionRow).where(SessionRow.started_at >= since))]

    # --- status snapshot
    def save_snapshot(self, at: datetime, data: dict[str, Any]) -> None:
        with transaction(self.engine) as s:
            row = s.get(SnapshotRow, self.zone)
            if row is None:
                row = SnapshotRow(zone=self.zone)
                s.add(row)
            row.at, row.data = at, data

    def snapshot(self) -> tuple[datetime, dict[str, Any]] | None:
        with transaction(self.engine) as s:
            row = s.get(SnapshotRow, self.zone)
            return (row.at, dict(row.data or {})) if row else None

    def current_alerts(self) -> list[AlertState]:
        with transaction(self.engine) as s:
            return [_state(r) for r in s.scalars(select(AlertRow).where(AlertRow.zone == self.zone))]

    # --- history
    def history(self, *, since: datetime, until: datetime | None = None, limit: int = 1000,
                states: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        with transaction(self.engine) as s:
            q = (select(AlertHistoryRow).where(AlertHistoryRow.zone == self.zone, AlertHistoryRow.at >= since)
                 .order_by(AlertHistoryRow.at.desc(), AlertHistoryRow.id.desc()).limit(limit))
            if until is not None:
                q = q.where(AlertHistoryRow.at <= until)
            if states:
                q = q.where(AlertHistoryRow.state.in_(states))
            return [r.as_dict() for r in s.scalars(q)]

    def notifications(self, *, since: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        with transaction(self.engine) as s:
            q = (select(NotificationRow).where(NotificationRow.at >= since)
                 .order_by(NotificationRow.at.desc(), NotificationRow.id.desc()).limit(limit))
            return [r.as_dict() for r in s.scalars(q) if f'zone="{self.zone}"' in r.group_key or "zone=" not in r.group_key]

    def prune(self, now: datetime, *, keep_days: int) -> None:
        cut = now - timedelta(days=keep_days)
        with transaction(self.engine) as s:
            s.execute(delete(AlertHistoryRow).where(AlertHistoryRow.at < cut))
            s.execute(delete(NotificationRow).where(NotificationRow.at < cut))
            # Two days of sessions are plenty for a per-hour count.
            s.execute(delete(SessionRow).where(SessionRow.started_at < now - timedelta(days=2)))
