"""The shared queue (inner.queue: database): envelopes in the database, claimed under leases.

Why the database and not a shared folder: a lease must expire when its runner's host dies
and must be checked atomically with the load's commit, which only the database can do; and
bytes kept beside the lease are replicated with it to the standby site, so an envelope the
receiver handed in survives a switch-over like the loads do. The bytes are stored in slices
of CHUNK bytes and streamed to a local work file, so a 200 MB envelope never sits in memory.

A claim raises the row's `lease_token` (the fencing token). Every later write names that
token: renewal (LeaseKeeper), the fence in the load's transaction (`fence`), the finish.
The fence locks the row and checks the lease is still this runner's and unexpired; a
runner that was paused past its lease finds the token moved on and commits nothing.
Lease times come from the database's clock on PostgreSQL, so hosts' clocks need not agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, delete, event, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from tgw_common.db import transaction, utcnow
from tgw_common.spool import Claimed, make_folders, publish

from .models import QueuedChunk, QueuedEnvelope

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
_STREAM_ABOVE = 8 * CHUNK
_Q = QueuedEnvelope.__table__
_C = QueuedChunk.__table__
READY, DONE = "ready", "done"


class LeaseLost(Exception):
    """The envelope's lease is no longer this runner's: another runner has it, or it expired."""


@dataclass(frozen=True)
class LeasedClaim(Claimed):
    """A claim from the shared queue: `path` is the local work file with the envelope's bytes."""

    queue_id: int = 0
    token: int = 0
    sha256: str = ""


def _now(engine: Engine, plus: timedelta | None = None):
    """Now (plus a lease), by the database's clock where leases are shared between hosts;
    SQLite has one host, and its clock is this process's."""
    if engine.dialect.name == "postgresql":
        return func.now() if plus is None else func.now() + plus
    return literal(utcnow() + (plus or timedelta()), _Q.c.enqueued_at.type)


def _limit_waits(engine: Engine, lease_seconds: int) -> None:
    """A runner stopped inside a transaction holds its row locks; without limits another
    runner's insert of the same keys would wait for as long as the stopped one sleeps."""
    if engine.dialect.name != "postgresql" or getattr(engine, "_tgw_waits_limited", False):
        return

    @event.listens_for(engine, "connect")
    def _set(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = '{int(lease_seconds)}s'")
            cur.execute(f"SET idle_in_transaction_session_timeout = '{int(lease_seconds) * 2}s'")
        dbapi_conn.commit()

    engine._tgw_waits_limited = True
    engine.dispose()  # connections made before the listener lack the settings


class SharedQueue:
    """The runner's queue interface (like spoolq.IntakeQueue) over the database's queue."""

    def __init__(self, engine: Engine, work_dir: Path, *, owner: str, host: str, lease_seconds: int,
                 max_tries: int) -> None:
        self.engine = engine
        self.work_dir = Path(work_dir)
        self.owner, self.host = owner, host
        self.lease = timedelta(seconds=lease_seconds)
        self.max_tries = max_tries
        self.keeper = LeaseKeeper(self)
        _limit_waits(engine, lease_seconds)
        make_folders(self.work_dir)

    # ------------------------------------------------------------------ handing in
    def enqueue_file(self, src: Path, name: str) -> bool:
        """Copy `src` into the queue under `name`. False when that name is waiting in the queue
        already with the same bytes (a second hand-in: the copy is not needed); ValueError
        when with other bytes. A name whose envelope was finished is queued again: an
        operator's retry from quarantine, or a late copy (which the runner finds loaded)."""
        digest, size = _digest(src)
        with transaction(self.engine) as s:
            conn = s.connection()
            known = conn.execute(select(_Q.c.id, _Q.c.sha256, _Q.c.state).where(_Q.c.name == name)).first()
            if known is None:
                try:
                    with s.begin_nested():
                        qid = conn.execute(insert(_Q).returning(_Q.c.id), {
                            "name": name, "sha256": digest, "size": size, "state": READY, "tries": 0,
                            "lease_token": 0, "enqueued_at": utcnow(), "enqueued_by": self.host}).scalar_one()
                except IntegrityError:
                    known = conn.execute(select(_Q.c.id, _Q.c.sha256, _Q.c.state).where(_Q.c.name == name)).first()
            if known is not None:
                if known.state == READY:
                    if known.sha256 != digest:
                        raise ValueError(f"{name} is queued already with other content (SHA-256 {known.sha256[:16]}…)")
                    return False
                qid = known.id
                conn.execute(update(_Q).where(_Q.c.id == qid, _Q.c.state == DONE).values(
                    sha256=digest, size=size, state=READY, tries=0, lease_owner=None, lease_host=None,
                    lease_expires_at=None, enqueued_at=utcnow(), enqueued_by=self.host, finished_at=None,
                    outcome=None))
                conn.execute(delete(_C).where(_C.c.queue_id == qid))
            with src.open("rb") as fh:
                for seq, block in enumerate(iter(lambda: fh.read(CHUNK), b"")):
                    conn.execute(insert(_C), {"queue_id": qid, "seq": seq, "data": block})
        return True

    # ------------------------------------------------------------------ claiming
    def ready(self) -> list[str]:
        """One slot per envelope claimable now; the name is only a label (claims take the oldest)."""
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(_Q).where(self._claimable())).scalar_one()
        return [f"#{i}" for i in range(min(n, 1000))]

    def _claimable(self):
        now = _now(self.engine)
        return and_(_Q.c.state == READY, or_(_Q.c.lease_expires_at.is_(None), _Q.c.lease_expires_at < now))

    def claim(self, _label: str = "") -> LeasedClaim | None:
        """Lease the oldest claimable envelope and fetch its bytes into a local work file, in one
        transaction: a fetch that fails leaves the envelope unclaimed."""
        pick = (select(_Q.c.id).where(self._claimable()).order_by(_Q.c.id).limit(1)
                .with_for_update(skip_locked=True).scalar_subquery())
        with self.engine.begin() as conn:
            row = conn.execute(update(_Q).where(_Q.c.id == pick).values(
                lease_token=_Q.c.lease_token + 1, lease_owner=self.owner, lease_host=self.host,
                lease_expires_at=_now(self.engine, self.lease), tries=_Q.c.tries + 1)
                .returning(_Q.c.id, _Q.c.name, _Q.c.sha256, _Q.c.size, _Q.c.tries, _Q.c.lease_token)).first()
            if row is None:
                return None
            claimed = LeasedClaim(self.work_dir / row.name, row.name, row.tries, queue_id=row.id,
                                  token=row.lease_token, sha256=row.sha256)
            try:
                self._fetch(conn, claimed, stream=row.size > _STREAM_ABOVE)
            except BaseException:
                claimed.path.unlink(missing_ok=True)
                raise
        self.keeper.hold(claimed)
        return claimed

    def _fetch(self, conn, claimed: LeasedClaim, *, stream: bool) -> None:
        digest = hashlib.sha256()
        tmp = claimed.path.with_name(f".{claimed.name}.part")
        query = select(_C.c.data).where(_C.c.queue_id == claimed.queue_id).order_by(_C.c.seq)
        with tmp.open("wb") as out:
            # A server-side cursor costs round trips; only a large envelope needs one, so that
            # its slices arrive a few at a time instead of all at once.
            rows = conn.execution_options(stream_results=True, max_row_buffer=4).execute(query) if stream \
                else conn.execute(query)
            for (block,) in rows:
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != claimed.sha256:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"{claimed.name}: the queued bytes do not match their SHA-256")
        publish(tmp, claimed.path, sync=False)  # a private work folder: a crash's copies are dropped

    # ------------------------------------------------------------------ the lease
    def _mine(self, claimed: LeasedClaim):
        return and_(_Q.c.id == claimed.queue_id, _Q.c.lease_token == claimed.token, _Q.c.lease_owner == self.owner)

    def fence(self, claimed: LeasedClaim, conn) -> None:
        """In the caller's transaction: lock the row and prove the lease is still ours, renewed;
        LeaseLost otherwise, so the transaction rolls back."""
        now = _now(self.engine)
        got = conn.execute(update(_Q).where(self._mine(claimed), _Q.c.state == READY, _Q.c.lease_expires_at > now)
                           .values(lease_expires_at=_now(self.engine, self.lease)).returning(_Q.c.id)).first()
        if got is None:
            raise LeaseLost(f"{claimed.name}: the lease (token {claimed.token}) is no longer this runner's")

    def renew(self, claimed: LeasedClaim) -> bool:
        now = _now(self.engine)
        with self.engine.begin() as conn:
            got = conn.execute(update(_Q).where(self._mine(claimed), _Q.c.state == READY,
                                                _Q.c.lease_expires_at > now)
                               .values(lease_expires_at=_now(self.engine, self.lease)).returning(_Q.c.id)).first()
        return got is not None

    # ------------------------------------------------------------------ after the work
    def forget(self, claimed: LeasedClaim, outcome: str = "done") -> None:
        """The envelope is filed (archived or quarantined): done for good, bytes dropped."""
        self.keeper.drop(claimed)
        claimed.path.unlink(missing_ok=True)
        with self.engine.begin() as conn:
            done = conn.execute(update(_Q).where(self._mine(claimed)).values(
                state=DONE, finished_at=utcnow(), outcome=outcome[:16], lease_owner=None, lease_expires_at=None)
                .returning(_Q.c.id)).first()
            if done is not None:
                conn.execute(delete(_C).where(_C.c.queue_id == claimed.queue_id))
        if done is None:
            # Another runner took it over meanwhile; its own finish closes the row.
            log.warning("finished an envelope whose lease had moved on", extra={"file": claimed.name})

    finish = forget

    def release(self, claimed: LeasedClaim, *, keep_try: bool = False) -> None:
        """Give the envelope back for any runner to claim now (keep_try: this try is not counted)."""
        self.keeper.drop(claimed)
        claimed.path.unlink(missing_ok=True)
        values = {"lease_owner": None, "lease_expires_at": None}
        if keep_try:
            values["tries"] = _Q.c.tries - 1
        with self.engine.begin() as conn:
            conn.execute(update(_Q).where(self._mine(claimed), _Q.c.state == READY).values(**values))

    def give_back(self, claimed: LeasedClaim) -> None:
        self.release(claimed, keep_try=True)

    def lost(self, claimed: LeasedClaim) -> None:
        """The lease went to another runner: drop the local copy and touch nothing else."""
        self.keeper.drop(claimed)
        claimed.path.unlink(missing_ok=True)

    def set_aside(self, claimed: LeasedClaim) -> Path:
        raise ValueError("a queued envelope is always a regular file; nothing to set aside")

    def recover(self) -> tuple[list[str], list[Claimed]]:
        """Work files a crash left behind are stale copies: their leases expire by themselves."""
        stale = [p.name for p in self.work_dir.iterdir()]
        for p in self.work_dir.iterdir():
            p.unlink(missing_ok=True)
        return stale, []

    def sync(self) -> None:
        """Nothing to sync: the database holds the queue's state."""

    # ------------------------------------------------------------------ what it holds
    def depth(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(_Q).where(_Q.c.state == READY)).scalar_one()

    def oldest_age(self, now: float) -> float | None:
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(_Q.c.enqueued_at)).where(_Q.c.state == READY)).scalar()
        return None if first is None else max(0.0, now - first.timestamp())

    @property
    def leases(self) -> int:
        return self.keeper.count


def _digest(src: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with src.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class LeaseKeeper:
    """A thread renewing the leases of the envelopes this runner is working on, every third of
    the lease time, so a long decryption never loses its envelope to another runner, while a
    stopped or dead process (whose thread stops with it) does."""

    def __init__(self, queue: SharedQueue) -> None:
        self.queue = queue
        self._held: dict[int, LeasedClaim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def count(self) -> int:
        return len(self._held)

    def hold(self, claimed: LeasedClaim) -> None:
        with self._lock:
            self._held[claimed.queue_id] = claimed
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
            self._thread.start()

    def drop(self, claimed: LeasedClaim) -> None:
        with self._lock:
            self._held.pop(claimed.queue_id, None)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        period = self.queue.lease.total_seconds() / 3
        while not self._stop.wait(period):
            with self._lock:
                held = list(self._held.values())
            for claimed in held:
                try:
                    if not self.queue.renew(claimed):
                        log.warning("lease lost", extra={"file": claimed.name, "token": claimed.token,
                                                         "pid": os.getpid()})
                except Exception as exc:  # the database's trouble: the fence decides at commit
                    log.error("lease renewal failed", extra={"file": claimed.name, "error": str(exc)})
