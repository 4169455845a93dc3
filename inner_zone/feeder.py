"""Hands the envelopes the receiver published on this host into the shared queue.

With inner.queue: database each runner first drains its host's inbound folder into the
database (shared_queue.SharedQueue), so whichever host's receiver got an envelope, any
runner can load it. The local side keeps the spool's claim protocol (spoolq.IntakeQueue):
a file is claimed, copied into the queue in one transaction, and only then removed, so a
crash at any point either leaves it claimed (start-up puts it back, and the queue's unique
name drops the second copy) or has already removed it. Entries that are not regular files
are quarantined as POISON here, as the spool runner would.

Several runners on one host share its inbound folder, but the spool's claims assume one
owner (recovery puts every claimed file back), so one runner at a time feeds: whichever
holds the folder's feeder lock. When that runner dies its lock goes with it and the next
runner to try takes over, recovering what the dead one had claimed.
"""

from __future__ import annotations

import logging

from tgw_common.db import utcnow
from tgw_common.instance_lock import AlreadyRunning, InstanceLock

from .context import Inner
from .intake import HOP
from .quarantine_ops import quarantine_unreadable
from .shared_queue import SharedQueue
from .spoolq import IntakeQueue, unreadable

log = logging.getLogger(__name__)


class Feeder:
    def __init__(self, inner: Inner, shared: SharedQueue) -> None:
        self.inner = inner
        self.shared = shared
        self.local = IntakeQueue(inner.inbound, max_tries=inner.config.inner.max_tries)
        self._lock: InstanceLock | None = None

    def _holds_the_folder(self) -> bool:
        if self._lock is None:
            try:
                self._lock = InstanceLock(self.local.root / ".feeder.lock", holder="inbound feeder").acquire()
            except AlreadyRunning:
                return False
            recovered = self.recover()
            if recovered:
                log.warning("feeder took over the inbound folder", extra={"put_back": recovered})
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def recover(self) -> int:
        back, exhausted = self.local.recover()
        for claimed in exhausted:  # a file that killed the feeder: hand it in anyway, the runner judges it
            self.local.release(claimed)
        return len(back) + len(exhausted)

    def feed(self, limit: int = 200) -> int:
        """Hand in up to `limit` files; returns how many were taken from the folder."""
        if not self._holds_the_folder():
            return 0
        done = 0
        for name in self.local.ready():
            if done >= limit:
                break
            claimed = self.local.claim(name)
            if claimed is None:
                continue
            done += 1
            problem = unreadable(claimed.path)
            if problem is not None:
                self._quarantine(claimed, problem)
                continue
            try:
                fresh = self.shared.enqueue_file(claimed.path, claimed.name)
            except ValueError as exc:
                log.error("cannot hand in a file: set aside", extra={"file": claimed.name, "error": str(exc)})
                self.local.set_aside(claimed)
                continue
            except Exception:
                self.local.release(claimed)
                raise
            log.info("handed in" if fresh else "handed in before; local copy dropped", extra={"file": claimed.name})
            self.local.forget(claimed)
        if done:
            self.local.sync()
        return done

    def _quarantine(self, claimed, problem: str) -> None:
        entry = quarantine_unreadable(self.inner, claimed.path, name=claimed.name, tries=claimed.tries,
                                      problem=problem, hop=HOP, claimed_at=utcnow(),
                                      set_aside=lambda: self.local.set_aside(claimed))
        log.error("unreadable file quarantined", extra={"file": claimed.name, "problem": problem,
                                                        "quarantine_id": entry["id"]})
        self.local.forget(claimed)
