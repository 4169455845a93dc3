"""`tgw inner run`: the daemon that drains the inbound spool through the intake pipeline.

Mailman-style (tgw_common.runner): each file is claimed by a rename into the spool's
.claimed/ folder, so it belongs to this runner until it is archived, quarantined or put
back. At start-up, claimed files a crash left behind go back into the queue with their
try counted; a file that has used up `inner.max_tries` is quarantined as POISON, so one
file that kills the runner cannot keep it in a crash loop. An entry that cannot be read at
all (a directory, a FIFO, a link, a file whose open fails) is quarantined as POISON at
once, or set aside in .bad/, and the runner goes on. Filesystem events only wake
the loop early; a full listing runs every pass and a rescan every `inner.rescan_seconds`.

The rescan also watches the CRL files: when one changes the trust store is reloaded and
every held envelope (CRL_STALE with trust.stale_crl: hold) goes back into the queue.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tgw_common.config import Config
from tgw_common.db import utcnow
from tgw_common.instance_lock import InstanceLock
from tgw_common.runner import Runner
from tgw_common.spool import Claimed

from .context import make_intake, open_inner
from .feeder import Feeder
from .intake import HOP, Outcome
from .quarantine_ops import quarantine_unreadable
from .runner_registry import one_runner_lock, record_runner
from .shared_queue import LeaseLost, SharedQueue
from .spoolq import IntakeQueue, unreadable

log = logging.getLogger(__name__)

# Envelopes per loop pass: between passes the loop sends its heartbeat, and the "archived"
# marks of the pass are committed together (WATCHDOG=1 goes out between envelopes).
BATCH = 50
# Errors that say nothing about the envelope: the database or the disk is in trouble.
_DISK_TROUBLE = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
_BACKOFF_SECONDS = 5.0


def _operational(exc: BaseException) -> bool:
    """Connection trouble, locks and full disks say nothing about the envelope; a value the
    database rejects (DataError, IntegrityError) is the envelope's problem and spends a try."""
    return (isinstance(exc, OperationalError | InterfaceError)
            or (isinstance(exc, OSError) and exc.errno in _DISK_TROUBLE))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class Action(Enum):
    """What a claimed file that was not loaded calls for."""

    RETRY = "retry"  # give it back to the queue; the try is spent
    PAUSE = "pause"  # the database's or the disk's trouble: give it back, try kept, and wait
    POISON = "poison"  # out of tries: quarantine as POISON (unless its load had committed)
    UNREADABLE = "unreadable"  # cannot be read as an envelope: quarantine as POISON, or set aside
    FILED = "filed"  # the error came after the file reached the archive or quarantine
    LOST = "lost"  # the shared queue's lease went to another runner: drop the copy, touch nothing


@dataclass(frozen=True)
class Verdict:
    """What to do with a claimed file, decided once from what went wrong."""

    action: Action
    problem: str | None = None  # UNREADABLE: why the file cannot be read
    error: str | None = None  # POISON: the last error, for the entry's message
    exc: Exception | None = None  # the exception judged, logged with its traceback


def crl_stamp(config: Config) -> tuple:
    """What changes when an operator installs a CRL: names, sizes and mtimes of the CRL files."""
    trust = config.trust
    files = [Path(p) for p in trust.crls]
    if trust.crl_dir is not None and Path(trust.crl_dir).is_dir():
        files += [p for p in Path(trust.crl_dir).iterdir() if p.suffix.lower() in (".crl", ".der", ".pem")]
    stamp = []
    for p in sorted(files):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        stamp.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(stamp)


class InnerRunner(Runner):
    name = HOP

    def __init__(self, config: Config) -> None:
        config.need("inner", "trust", "treasury")
        self.config = config
        self.inner = open_inner(config)
        super().__init__(self.inner.provenance, watch=[config.inner.inbound])
        self.rescan_seconds = config.inner.rescan_seconds
        self.heartbeat_seconds = config.inner.heartbeat_seconds
        self.shared = config.inner.queue == "database"
        self.feeder: Feeder | None = None
        if self.shared:
            work = config.inner.spool_dir / "work" / self.session_id
            self.queue = SharedQueue(self.inner.engine, work, owner=self.session_id, host=config.node.host,
                                     lease_seconds=config.inner.lease_seconds, max_tries=config.inner.max_tries)
            self.feeder = Feeder(self.inner, self.queue)
        else:
            self.queue = IntakeQueue(config.inner.inbound, max_tries=config.inner.max_tries)
        self.intake = make_intake(self.inner, session_id=self.session_id, via="runner")
        self._lock: InstanceLock | None = None
        self._crl_stamp: tuple | None = None
        self._errors: dict[str, str] = {}
        self.counts = {"loaded": 0, "duplicate": 0, "refused": 0, "held": 0, "poison": 0, "lost": 0}
        self.last_error: str | None = None

    # ------------------------------------------------------------------ start-up
    def startup(self) -> None:
        self._lock = one_runner_lock(self.config, self.inner.engine, self.session_id)
        self._record(stopped=False)  # listed before its first envelope, which may take long
        back, exhausted = self.queue.recover()
        if back or exhausted:
            log.warning("recovered claimed files", extra={"put_back": back, "poison": [c.name for c in exhausted]})
        for claimed in exhausted:
            self._act(claimed, self._before_opening(claimed, out_of_tries=True))
        repaired = self.intake.repair_archive_marks()
        if repaired:
            log.warning("archive marks repaired", extra={"count": repaired})
        # A restart is the natural moment to judge held envelopes again (new CRLs or not).
        self._crl_stamp = crl_stamp(self.config)
        self._release_held("runner start-up")

    # ------------------------------------------------------------------ the loop
    def one_iteration(self) -> int:
        done = 0
        if self.feeder is not None:
            try:
                done += self.feeder.feed()
            except (OperationalError, InterfaceError) as exc:
                self.last_error = _describe(exc)
                log.error("cannot hand envelopes in to the shared queue yet", extra={"error": self.last_error})
        for name in self.queue.ready():
            if self.stopping or done >= BATCH:
                break
            self.keep_alive()
            try:
                claimed = self.queue.claim(name)
            except DBAPIError as exc:
                # The shared queue's database went away mid-claim (its connection ended, a
                # failover): the lease, if any was taken, expires by itself.
                self.last_error = _describe(exc)
                log.error("cannot claim from the shared queue; pausing", extra={"error": self.last_error})
                self._stop.wait(_BACKOFF_SECONDS)
                break
            if claimed is None:
                continue
            done += 1
            if not self._handle(claimed):
                break
        if done:
            self.queue.sync()
            try:
                self.intake.flush_archived()
            except (OperationalError, InterfaceError) as exc:
                # The marks stay pending for the next pass (or the start-up repair).
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("archive marks not committed yet", extra={"error": self.last_error})
        return done

    def _handle(self, claimed: Claimed) -> bool:
        """Process one claimed file; False when the loop should pause (database or disk trouble)."""
        verdict = self._before_opening(claimed, out_of_tries=claimed.tries > self.queue.max_tries)
        if verdict is None:
            try:
                outcome = self.intake.process(claimed.path, name=claimed.name, tries=claimed.tries,
                                              claimed_at=utcnow(), fence=self._fence(claimed))
            except Exception as exc:
                verdict = self._judge(claimed, exc)
            else:
                self._processed(claimed, outcome)
                return True
        return self._act(claimed, verdict)

    def _processed(self, claimed: Claimed, outcome: Outcome) -> None:
        self._errors.pop(claimed.name, None)
        self.counts[outcome.status if outcome.status in self.counts else "loaded"] += 1
        log.info(outcome.status, extra={"file": claimed.name, "envelope_id": outcome.envelope_id,
                                        "reason": outcome.reason, "quarantine_id": outcome.quarantine_id})
        self.queue.forget(claimed)

    # ------------------------------------------------------------------ verdicts
    def _before_opening(self, claimed: Claimed, *, out_of_tries: bool) -> Verdict | None:
        """Judged before anything reads the file: its type (one lstat, never an open that a
        FIFO would block), then its tries. None: let the pipeline have it."""
        problem = unreadable(claimed.path, read=False)
        if problem is not None:
            return Verdict(Action.UNREADABLE, problem=problem)
        if out_of_tries:
            return Verdict(Action.POISON, error=self._errors.pop(claimed.name, None))
        return None

    def _judge(self, claimed: Claimed, exc: Exception) -> Verdict:
        """The one classification of an exception the pipeline raised for a claimed file."""
        self.last_error = _describe(exc)
        if isinstance(exc, LeaseLost):
            return Verdict(Action.LOST, exc=exc)
        if not claimed.path.exists():
            return Verdict(Action.FILED, exc=exc)
        if _operational(exc):
            return Verdict(Action.PAUSE)
        problem = unreadable(claimed.path)
        if problem is not None:
            # Trying again cannot help until someone fixes the file; quarantine says so now.
            return Verdict(Action.UNREADABLE, problem=problem)
        if claimed.tries >= self.queue.max_tries:
            return Verdict(Action.POISON, error=self.last_error, exc=exc)
        return Verdict(Action.RETRY, exc=exc)

    def _act(self, claimed: Claimed, verdict: Verdict) -> bool:
        """The one place a verdict is carried out; an action that fails itself may hand on
        a new verdict (a poison check that finds the file unreadable, a quarantine that
        finds the database gone). False when the loop should pause."""
        while True:
            if verdict.action in (Action.RETRY, Action.POISON) and verdict.exc is not None:
                log.error("envelope processing failed", exc_info=verdict.exc,
                          extra={"file": claimed.name, "tries": claimed.tries})
            match verdict.action:
                case Action.RETRY:
                    done = self._retry(claimed)
                case Action.PAUSE:
                    done = self._pause(claimed)
                case Action.POISON:
                    done = self._poison(claimed, verdict.error)
                case Action.UNREADABLE:
                    done = self._unreadable(claimed, verdict.problem)
                case Action.FILED:
                    done = self._filed(claimed, verdict.exc)
                case Action.LOST:
                    done = self._lost(claimed, verdict.exc)
            if not isinstance(done, Verdict):
                return done
            verdict = done

    def _filed(self, claimed: Claimed, exc: Exception) -> bool:
        # Nothing to retry (a missing archive mark is repaired at the next start-up).
        log.error("error after the envelope was filed", exc_info=exc, extra={"file": claimed.name})
        self.queue.finish(claimed)
        return not _operational(exc)

    def _fence(self, claimed: Claimed):
        return partial(self.queue.fence, claimed) if self.shared else None

    def _lost(self, claimed: Claimed, exc: Exception) -> bool:
        self.counts["lost"] += 1
        log.warning("lease lost: another runner has the envelope; nothing committed",
                    extra={"file": claimed.name, "error": str(exc)})
        self.queue.lost(claimed)
        return True

    def _retry(self, claimed: Claimed) -> bool:
        self._errors[claimed.name] = self.last_error
        self.queue.release(claimed)
        return True

    def _pause(self, claimed: Claimed) -> bool:
        """Not this envelope's fault: give it back without spending one of its tries, and wait."""
        log.error("database or disk trouble; pausing", extra={"file": claimed.name, "error": self.last_error})
        try:
            self.queue.give_back(claimed)
        except (OperationalError, InterfaceError):
            if not self.shared:
                raise
            self.queue.lost(claimed)  # the database is away: the lease expires by itself
        self._stop.wait(_BACKOFF_SECONDS)
        return False

    def _poison(self, claimed: Claimed, error: str | None) -> bool | Verdict:
        self._errors.pop(claimed.name, None)
        try:
            outcome = self.intake.poison(claimed.path, name=claimed.name, tries=claimed.tries, error=error,
                                         fence=self._fence(claimed))
        except OSError:
            # The poison check hashes the file: one that cannot be read would raise here
            # at every start-up, for ever.
            problem = unreadable(claimed.path)
            if problem is None:
                raise
            return Verdict(Action.UNREADABLE, problem=problem)
        self.counts["poison" if outcome.status == "refused" else "loaded"] += 1
        log.error("poison envelope quarantined" if outcome.status == "refused" else "poison check found it loaded",
                  extra={"file": claimed.name, "tries": claimed.tries, "quarantine_id": outcome.quarantine_id})
        self.queue.finish(claimed)
        return True

    def _unreadable(self, claimed: Claimed, problem: str) -> bool | Verdict:
        """Quarantine a spool entry that cannot be read as an envelope (POISON, with why), or set
        it aside in .bad/; the runner goes on with the next file either way."""
        try:
            entry = quarantine_unreadable(self.inner, claimed.path, name=claimed.name, tries=claimed.tries,
                                          problem=problem, hop=HOP, claimed_at=utcnow(),
                                          set_aside=lambda: self.queue.set_aside(claimed))
        except Exception as exc:
            self.last_error = _describe(exc)
            still_claimed = os.path.lexists(claimed.path)
            if still_claimed and _operational(exc):
                return Verdict(Action.PAUSE)
            # Still claimed, start-up recovery puts it back to be judged again; moved, the log
            # line is all that is left to say where.
            log.exception("cannot quarantine or set aside an unreadable file",
                          extra={"file": claimed.name, "problem": problem, "still_claimed": still_claimed})
            if not still_claimed:
                self.queue.forget(claimed)
            return True
        self._errors.pop(claimed.name, None)
        self.counts["poison"] += 1
        log.error("unreadable file quarantined" if entry.get("file") else "unreadable file set aside",
                  extra={"file": claimed.name, "problem": problem, "quarantine_id": entry["id"],
                         "set_aside": entry.get("set_aside_path")})
        self.queue.forget(claimed)
        return True

    # ------------------------------------------------------------------ housekeeping
    def periodic(self) -> None:
        stamp = crl_stamp(self.config)
        if stamp == self._crl_stamp:
            return
        from tgw_common.pki.trust import TrustStore

        try:
            trust = TrustStore.from_config(self.config.trust)
        except (OSError, ValueError) as exc:
            # A half-copied CRL: keep judging with the old store and look again next rescan.
            log.error("CRL files changed but cannot be loaded", extra={"error": str(exc)})
            return
        self.intake.opener.trust = trust
        self._crl_stamp = stamp
        log.info("CRL files changed; trust store reloaded", extra={"crls": len(stamp)})
        self._release_held("CRL files changed")

    def _release_held(self, why: str) -> None:
        for qid in self.inner.quarantine.held_ids():
            self.keep_alive()
            try:
                entry = self.inner.quarantine.retry(qid, self.config.inner.inbound, note=why, by=HOP, auto=True)
            except Exception as exc:  # one bad entry must not stop the others
                log.error("cannot put a held envelope back", extra={"id": qid, "error": str(exc)})
                continue
            self.inner.provenance.record("retried", HOP, sha256=entry["sha256"], tracking_id=entry["tracking_id"],
                                         envelope_id=entry.get("envelope_id"), quarantine_id=qid, auto=True, note=why)
            log.info("held envelope put back", extra={"id": qid, "why": why})

    def health(self) -> dict[str, Any]:
        counts = self.inner.quarantine.counts()
        age = self.queue.oldest_age(time.time())
        return {"queue_depth": self.queue.depth(), "oldest_age_seconds": round(age, 1) if age is not None else None,
                "quarantine": counts["open"], "held": counts["held"], "processed": dict(self.counts),
                "internal_errors": self.inner.quarantine.last_defects,
                "last_error": self.last_error, "queue": self.config.inner.queue, "leases": self.queue.leases}

    def heartbeat(self) -> None:
        super().heartbeat()
        self._record(stopped=False)

    def _record(self, *, stopped: bool) -> None:
        record_runner(self.inner.engine, session=self.session_id, host=self.config.node.host,
                      queue=self.config.inner.queue, started_at=self.started_at, leases=self.queue.leases,
                      stopped=stopped, counts=self.counts, last_error=self.last_error)

    def shutdown(self) -> None:
        try:
            self.intake.flush_archived()
        except Exception:
            log.exception("archive marks not committed; the next start-up repairs them")
        try:
            self.provenance.heartbeat(self.name, session_id=self.session_id, started_at=self.started_at,
                                      pid=os.getpid(), stopping=True, **self.health())
            self._record(stopped=True)
        except Exception:
            log.exception("last heartbeat failed")
        if self.shared:
            self.queue.keeper.stop()
            self.queue.recover()
            self.feeder.release()
        self.inner.provenance.close()
        if self._lock:
            self._lock.release()
