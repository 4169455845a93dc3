"""The receiver's second thread: verify, publish, and write everything to the database.

Database commits (synchronous, durable) and hashing a multi-GB file take time; doing
them here keeps the datagram loop and the receiving thread running. Tasks run one at a
time in order, so "is this SHA-256 published already?" and "publish it" cannot race.

Publishing is crash-safe by a write-ahead row: the verified `.part` file is made durable,
a row `status=publishing` naming staging and final path is committed, the file is renamed
into the inbound spool, and the row becomes `published` with the "arrived" event in the
same commit. `recover()` finishes any publication a kill -9 interrupted (the rename is
atomic, so the file is in exactly one of the two places), so a file is never published
twice, never lost after its hash was checked, and never published unchecked.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from tgw_common.db import transaction, utcnow
from tgw_common.events import Provenance
from tgw_common.spool import publish, sha256_file, sync_file

from .models import ReceivedFile, TransferGap, tracking_id
from .wire import Meta

log = logging.getLogger(__name__)

HOP = "transfer-receive"
SENDER_DAEMON = "outer.transfer-send"
RESOLVED = ("publishing", "published", "duplicate")


@dataclass(frozen=True)
class Result:
    kind: str  # "resolved", "corrupt" (SHA-256 mismatch) or "failed" (could not publish)
    seq: int
    key: tuple[bytes, int] | None = None


class Keeper:
    def __init__(self, engine: Engine, provenance: Provenance, *, inbound: Path, staging: Path,
                 owner: str | None = None, fence: Callable[[Any], None] | None = None) -> None:
        self.engine = engine
        self.provenance = provenance
        self.inbound = inbound
        self.staging = staging
        # Standby receivers: `owner` names this receiver's rows; `fence(session)` raises inside
        # a transaction when this receiver is no longer the active one (active_lock.py).
        self.owner = owner
        self.fence = fence
        self.halted = False
        self.tasks: queue.Queue[tuple[Callable[..., Any], tuple] | None] = queue.Queue()
        self.results: deque[Result] = deque()
        self.counters = {"files_arrived": 0, "files_duplicate": 0, "files_corrupt": 0, "gaps_opened": 0,
                         "gaps_closed": 0, "sender_heartbeats": 0, "keeper_errors": 0}
        self._thread = threading.Thread(target=self._run, name="transfer-keeper", daemon=True)

    # --- thread
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.tasks.put(None)
        self._thread.join()

    def halt(self) -> None:
        """Stop at once, dropping queued work: this receiver lost the right to publish."""
        self.halted = True
        self.stop()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.tasks.put((fn, args))

    def backlog(self) -> int:
        return self.tasks.qsize()

    def _run(self) -> None:
        while True:
            item = self.tasks.get()
            if item is None:
                return
            fn, args = item
            if self.halted:
                continue
            try:
                fn(*args)
            except Exception:  # one failed task must not stop publication; it is logged and counted
                self.counters["keeper_errors"] += 1
                log.exception("receiver task failed", extra={"task": fn.__name__})

    # --- start-up (runs before the threads)
    def recover(self) -> dict[str, int]:
        """Finish interrupted publications; remove staging files nobody will finish."""
        finished = elsewhere = 0
        with transaction(self.engine) as s:
            rows = s.scalars(select(ReceivedFile).where(ReceivedFile.status == "publishing")).all()
        for row in rows:
            if self.owner is not None and row.owner not in (None, self.owner):
                # Another receiver's file, in its staging folder: it finishes it when it starts
                # again; the row keeps the number resolved, so no copy is published meanwhile.
                elsewhere += 1
                log.warning("a publication begun by another receiver is left for it to finish",
                            extra={"seq": row.seq, "file": row.name, "owner": row.owner})
                continue
            staging, dest = Path(row.staging), Path(row.path)
            if staging.exists():
                publish(staging, dest)
            self._mark_published(row.id)
            finished += 1
        removed = 0
        for entry in os.scandir(self.staging):
            # Half-received files: their datagrams are gone with the old process's memory.
            if entry.name.endswith((".part", ".fec")):
                os.unlink(entry.path)
                removed += 1
        done = {"publications_finished": finished, "staging_removed": removed}
        return {**done, "publications_elsewhere": elsewhere} if elsewhere else done

    # --- tasks
    def publish(self, key: tuple[bytes, int], meta: Meta, part: Path) -> None:
        try:
            self._publish(key, meta, part)
        except Exception:
            # Disk or database trouble: give the number back so a later copy can try again.
            # A row left as "publishing" makes that copy a duplicate, and recover() finishes
            # the publication at the next start: still exactly once.
            self.results.append(Result("failed", meta.seq, key))
            raise

    def _publish(self, key: tuple[bytes, int], meta: Meta, part: Path) -> None:
        seq = meta.seq
        sha = meta.sha256.hex()
        size, digest = part.stat().st_size, sha256_file(part)
        if size != meta.file_size or digest != sha:
            part.unlink(missing_ok=True)
            self.counters["files_corrupt"] += 1
            log.error("reassembled file failed its SHA-256 check; dropped, a later copy will do",
                      extra={"seq": seq, "file": meta.name, "expected": sha, "got": digest})
            self.results.append(Result("corrupt", seq, key))
            return
        try:
            sync_file(part)
            dup, dest, row_id = self._intent(meta, part, size, sha)
        except Exception:
            part.unlink(missing_ok=True)  # no intent row refers to it
            raise
        if dup:
            part.unlink(missing_ok=True)
            self.counters["files_duplicate"] += 1
        else:
            try:
                publish(part, dest)
            except Exception:
                self._forget_intent(row_id, part)
                raise
            self._mark_published(row_id)
        self.results.append(Result("resolved", seq, key))

    def _intent(self, meta: Meta, part: Path, size: int, sha: str) -> tuple[bool, Path | None, int | None]:
        """Commit either a duplicate row or the write-ahead row of a publication."""
        seq, session = meta.seq, meta.session.hex()
        tid = tracking_id(meta.name)
        with transaction(self.engine) as s:
            if self.fence is not None:
                self.fence(s)
            first = s.scalars(select(ReceivedFile).where(
                ((ReceivedFile.sha256 == sha) & ReceivedFile.status.in_(("publishing", "published")))
                | (ReceivedFile.seq == seq)).order_by(ReceivedFile.id).limit(1)).first()
            if first is not None:
                s.add(ReceivedFile(seq=seq, session=session, name=meta.name, size=size, sha256=sha,
                                   status="duplicate", at=utcnow()))
                closed = self._close_gap(s, seq, "duplicate")
                self.provenance.record("duplicate", HOP, sha256=sha, tracking_id=tid, session=s, seq=seq,
                                       sender_session=session, copy=meta.copy, file=meta.name,
                                       first_seq=first.seq, gap_closed=closed)
                return True, None, None
            dest = self._free_name(meta.name, seq)
            row = ReceivedFile(seq=seq, session=session, name=meta.name, size=size, sha256=sha,
                               status="publishing", staging=str(part), path=str(dest), at=utcnow(),
                               owner=self.owner)
            s.add(row)
            s.flush()
            return False, dest, row.id

    def _forget_intent(self, row_id: int, part: Path) -> None:
        """The rename failed: withdraw the write-ahead row, then the file it named."""
        try:
            with transaction(self.engine) as s:
                row = s.get(ReceivedFile, row_id)
                if row is not None:
                    s.delete(row)
        except Exception:
            log.exception("cannot withdraw a publication intent; recover() will finish it")
            return
        part.unlink(missing_ok=True)

    def _mark_published(self, row_id: int) -> None:
        with transaction(self.engine) as s:
            row = s.get(ReceivedFile, row_id)
            row.status, row.staging = "published", None
            closed = self._close_gap(s, row.seq, "arrived")
            self.provenance.record("arrived", HOP, sha256=row.sha256, tracking_id=tracking_id(row.name), session=s,
                                   seq=row.seq, sender_session=row.session, file=row.name, size=row.size,
                                   path=row.path, gap_closed=closed)
        self.counters["files_arrived"] += 1

    def _close_gap(self, s, seq: int, how: str) -> bool:
        gap = s.get(TransferGap, seq)
        if gap is None or gap.closed_at is not None:
            return False
        gap.closed_at, gap.closed_by = utcnow(), how
        self.counters["gaps_closed"] += 1
        return True

    def _free_name(self, name: str, seq: int) -> Path:
        dest = self.inbound / name
        if not dest.exists():
            return dest
        # Same name, different content (same content was caught as a duplicate): keep both.
        stem, dot, ext = name.rpartition(".")
        alt = self.inbound / (f"{stem}-{seq}.{ext}" if dot else f"{name}-{seq}")
        log.warning("name already in the inbound spool; published under another name",
                    extra={"file": name, "published_as": alt.name, "seq": seq})
        return alt

    def open_gap(self, seq: int, source: str, session: str | None, name: str | None, size: int | None,
                 sha: str | None) -> None:
        with transaction(self.engine) as s:
            if self.fence is not None:
                self.fence(s)  # a receiver that lost the link would see false gaps
            if s.get(TransferGap, seq) is not None and s.get(TransferGap, seq).closed_at is None:
                return
            if s.scalar(select(func.count()).select_from(ReceivedFile).where(ReceivedFile.seq == seq)):
                return  # arrived while the gap waited in this queue
            gap = s.get(TransferGap, seq)
            if gap is None:
                gap = TransferGap(seq=seq)
                s.add(gap)
            gap.name, gap.size, gap.sha256, gap.source, gap.sender_session = name, size, sha, source, session
            gap.opened_at, gap.closed_at, gap.closed_by = utcnow(), None, None
            self.provenance.record("gap", HOP, sha256=sha, tracking_id=tracking_id(name) if name else None,
                                   session=s, seq=seq, source=source, sender_session=session, file=name, size=size)
        self.counters["gaps_opened"] += 1
        log.warning("file missing on the link", extra={"seq": seq, "source": source, "file": name})

    def fill_gap(self, seq: int, name: str, size: int, sha: str) -> None:
        with transaction(self.engine) as s:
            gap = s.get(TransferGap, seq)
            if gap is not None and gap.closed_at is None and gap.name is None:
                gap.name, gap.size, gap.sha256 = name, size, sha

    def duplicate_copy(self, meta: Meta) -> None:
        """A later copy of a file already published was seen and dropped unassembled."""
        self.counters["files_duplicate"] += 1
        self.provenance.record("duplicate", HOP, sha256=meta.sha256.hex(), tracking_id=tracking_id(meta.name),
                               seq=meta.seq, sender_session=meta.session.hex(), copy=meta.copy,
                               file=meta.name, early=True)

    def sender_heartbeat(self, session: str, started: str | None, state: dict[str, Any],
                         host: str | None = None) -> None:
        from datetime import datetime

        try:
            started_at = datetime.fromisoformat(started) if started else utcnow()
            if started_at.tzinfo is None:
                raise ValueError
        except ValueError:
            started_at = utcnow()
        self.provenance.heartbeat(SENDER_DAEMON, session_id=session, started_at=started_at, host=host, **state)
        self.counters["sender_heartbeats"] += 1


def load_state(engine: Engine, window: int) -> tuple[int, set[int], int, dict[int, bool]]:
    """(highest seq known, resolved seqs in the recent window, window's low end, open gaps)."""
    with transaction(engine) as s:
        top_rx = s.scalar(select(func.max(ReceivedFile.seq))) or 0
        top_gap = s.scalar(select(func.max(TransferGap.seq))) or 0
        top = max(top_rx, top_gap)
        low = max(0, top - window)
        resolved = set(s.scalars(select(ReceivedFile.seq).where(ReceivedFile.seq >= low)))
        gaps = {g.seq: g.name is not None for g in
                s.scalars(select(TransferGap).where(TransferGap.closed_at.is_(None)))}
    return top, resolved, low, gaps


def is_resolved_in_db(engine: Engine, seq: int) -> bool:
    with transaction(engine) as s:
        return bool(s.scalar(select(func.count()).select_from(ReceivedFile).where(ReceivedFile.seq == seq)))
