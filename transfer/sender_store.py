"""The sender's memory: numbered files, what is due, the ledger (table transfer_sent).

A file's number is fixed by renaming it into `sent_dir` as `<seq:012d>-<name>` BEFORE
its row is written. A crash between the two leaves a numbered file without a row, which
`recover()` adopts; so the next number is always above every number in the table and in
the folder, and no number is ever skipped or used twice.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, or_, select

from tgw_common.db import create_tables, transaction, utcnow
from tgw_common.spool import sha256_file

from .models import SentFile

SENT_NAME = re.compile(r"^(\d{12})-(.+)$")


@dataclass(frozen=True)
class Job:
    """One copy of one file to put on the link."""

    seq: int
    name: str
    size: int
    sha256: str
    path: str
    copy: int  # the copy's number among all copies of this file, 1 for the first
    resend: bool


class SenderStore:
    def __init__(self, engine: Engine, sent_dir: Path) -> None:
        self.engine = engine
        self.sent_dir = sent_dir
        create_tables(engine)

    # --- numbering
    def recover(self) -> tuple[int, list[int], list[int]]:
        """Adopt numbered files without a row and note rows whose file is gone.

        Returns (next sequence number, adopted seqs, rows marked removed).
        """
        self.sent_dir.mkdir(parents=True, exist_ok=True)
        on_disk: dict[int, Path] = {}
        for entry in os.scandir(self.sent_dir):
            m = SENT_NAME.match(entry.name)
            if m and entry.is_file():
                on_disk[int(m.group(1))] = Path(entry.path)
        adopted, removed = [], []
        with transaction(self.engine) as s:
            known = {seq: (path, removed_at) for seq, path, removed_at in
                     s.execute(select(SentFile.seq, SentFile.path, SentFile.removed_at))}
        for seq, path in sorted(on_disk.items()):
            if seq not in known:
                self.add(seq, SENT_NAME.match(path.name).group(2), path)
                adopted.append(seq)
        with transaction(self.engine) as s:
            for seq, (path, removed_at) in known.items():
                if removed_at is None and seq not in on_disk and not Path(path).exists():
                    row = s.get(SentFile, seq)
                    row.removed_at, row.next_due_at, row.resend_pending = utcnow(), None, 0
                    removed.append(seq)
            top = s.scalar(select(func.max(SentFile.seq))) or 0
        top = max([top, *on_disk])
        return top + 1, adopted, removed

    def add(self, seq: int, name: str, path: Path) -> SentFile:
        size, digest = path.stat().st_size, sha256_file(path)
        now = utcnow()
        row = SentFile(seq=seq, name=name, size=size, sha256=digest, path=str(path), enqueued_at=now,
                       copies_sent=0, next_due_at=now, resend_pending=0, resends_done=0)
        with transaction(self.engine) as s:
            s.add(row)
        return row

    def reschedule(self, schedule: list[float]) -> int:
        """Set the due time of every file with copies still to go from `schedule`; returns how many."""
        changed = 0
        with transaction(self.engine) as s:
            rows = s.scalars(select(SentFile).where(SentFile.removed_at.is_(None), SentFile.copies_sent > 0,
                                                    SentFile.next_due_at.is_not(None))).all()
            for row in rows:
                due = next_due(row.first_sent_at or row.last_sent_at or row.enqueued_at, row.copies_sent, schedule)
                if due != row.next_due_at:
                    row.next_due_at = due
                    changed += 1
        return changed

    # --- what to send next
    def next_job(self, now: datetime) -> Job | None:
        """First copies in number order, then operator resends, then scheduled repeats."""
        with transaction(self.engine) as s:
            live = SentFile.removed_at.is_(None)
            row = s.scalars(select(SentFile).where(live, SentFile.copies_sent == 0, SentFile.next_due_at.is_not(None))
                            .order_by(SentFile.seq).limit(1)).first()
            if row is not None:
                return _job(row, resend=False)
            row = s.scalars(select(SentFile).where(live, SentFile.resend_pending > 0)
                            .order_by(SentFile.resend_requested_at, SentFile.seq).limit(1)).first()
            if row is not None:
                return _job(row, resend=True)
            row = s.scalars(select(SentFile).where(live, SentFile.next_due_at <= now)
                            .order_by(SentFile.next_due_at, SentFile.seq).limit(1)).first()
            return _job(row, resend=False) if row is not None else None

    def next_due_in(self, now: datetime) -> float | None:
        with transaction(self.engine) as s:
            due = s.scalar(select(func.min(SentFile.next_due_at)).where(SentFile.removed_at.is_(None)))
        return None if due is None else max(0.0, (due - now).total_seconds())

    def pending(self) -> int:
        with transaction(self.engine) as s:
            return s.scalar(select(func.count()).select_from(SentFile).where(
                SentFile.removed_at.is_(None),
                or_(SentFile.next_due_at.is_not(None), SentFile.resend_pending > 0))) or 0

    def oldest_waiting(self, now: datetime) -> float | None:
        """Seconds the oldest numbered file has waited for its first copy (None: none waits)."""
        with transaction(self.engine) as s:
            first = s.scalar(select(func.min(SentFile.enqueued_at)).where(
                SentFile.removed_at.is_(None), SentFile.copies_sent == 0, SentFile.next_due_at.is_not(None)))
        return None if first is None else round(max(0.0, (now - first).total_seconds()), 1)

    def mark_missing(self, seq: int) -> None:
        with transaction(self.engine) as s:
            row = s.get(SentFile, seq)
            row.removed_at, row.next_due_at, row.resend_pending = utcnow(), None, 0

    # --- the ledger the heartbeats carry
    def ledger(self, size: int) -> list[list]:
        """The newest `size` files whose first copy is out: [seq, name, size, sha256]."""
        with transaction(self.engine) as s:
            rows = s.execute(select(SentFile.seq, SentFile.name, SentFile.size, SentFile.sha256)
                             .where(SentFile.copies_sent > 0).order_by(SentFile.seq.desc()).limit(size)).all()
        return [list(r) for r in reversed(rows)]

    # --- retention
    def expire(self, retention: timedelta) -> list[SentFile]:
        """Delete files sent in full longer ago than `retention`; rows stay (numbers stay taken)."""
        cutoff = utcnow() - retention
        gone = []
        with transaction(self.engine) as s:
            rows = s.scalars(select(SentFile).where(
                SentFile.removed_at.is_(None), SentFile.next_due_at.is_(None), SentFile.resend_pending == 0,
                SentFile.last_sent_at < cutoff)).all()
            for row in rows:
                Path(row.path).unlink(missing_ok=True)
                row.removed_at = utcnow()
                gone.append(row)
        return gone


def next_due(first_sent_at: datetime, copies_sent: int, schedule: list[float]) -> datetime | None:
    """When copy number copies_sent + 1 is due: its offset in the carousel after the first copy.

    Computed from the row's first_sent_at and copies_sent alone, so the table needs no column
    for the schedule, and a sender restarted with another schedule follows the new one. None:
    every copy is out. A copy overdue (a long file, a sender that was down) goes at once.
    """
    if copies_sent >= len(schedule):
        return None
    return first_sent_at + timedelta(seconds=schedule[copies_sent])


def _job(row: SentFile, *, resend: bool) -> Job:
    return Job(row.seq, row.name, row.size, row.sha256, row.path,
               row.copies_sent + row.resends_done + 1, resend)
