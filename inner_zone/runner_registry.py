"""Which inner runners there are: one row each in intake_runners, and who may run at all.

Every runner writes its row with each heartbeat (host, pid, leases held, counts), so the
console and the monitor can list them and tell a dead one (its row stops changing) from a
stopped one. `one_runner_lock` is where the one-runner rule of the spool and of SQLite
lives, with the message that says how to run several.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from tgw_common.config import Config
from tgw_common.db import transaction, utcnow
from tgw_common.instance_lock import AlreadyRunning, InstanceLock

from .models import RunnerRow


def one_runner_lock(config: Config, engine: Engine, session: str) -> InstanceLock:
    """The lock this runner holds while it runs.

    The spool queue and SQLite allow one runner (per spool, per database file): a second one
    is refused with what to do instead. With the shared queue on PostgreSQL any number may
    run; each locks only its own work folder, so a later runner on the same host can tell
    the work folders of dead runners (unlocked) from live ones and remove them.
    """
    inner = config.inner
    if inner.queue == "spool" or engine.dialect.name == "sqlite":
        lock = InstanceLock(inner.spool_dir / "runner.lock", holder="inner runner")
        try:
            lock.acquire()
        except AlreadyRunning:
            why = ("SQLite allows one inner runner" if engine.dialect.name == "sqlite"
                   else "inner.queue: spool allows one inner runner per spool")
            raise AlreadyRunning(
                f"{why}, and another one holds {lock.path}. To run several runners, on one host or many, use "
                "PostgreSQL (database.url) with inner.queue: database (docs/deployment.md, \"Many runners\")."
            ) from None
        # The only runner: any work folder left is a dead runner's.
        _remove_work_folders(inner.spool_dir / "work", keep=session)
        return lock
    work_root = inner.spool_dir / "work"
    _remove_dead_work_folders(work_root, keep=session)
    return InstanceLock(work_root / f"{session}.lock", holder="inner runner").acquire()


def _remove_work_folders(root: Path, *, keep: str) -> None:
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.is_dir() and folder.name != keep:
            for leftover in folder.iterdir():
                leftover.unlink(missing_ok=True)
            folder.rmdir()


def _remove_dead_work_folders(root: Path, *, keep: str) -> None:
    if not root.is_dir():
        return
    for lock_file in root.glob("*.lock"):
        other = lock_file.stem
        if other == keep:
            continue
        try:
            probe = InstanceLock(lock_file).acquire()
        except AlreadyRunning:
            continue  # a live runner's
        for leftover in (root / other).glob("*") if (root / other).is_dir() else ():
            leftover.unlink(missing_ok=True)
        if (root / other).is_dir():
            (root / other).rmdir()
        lock_file.unlink(missing_ok=True)
        probe.release()


def record_runner(engine: Engine, *, session: str, host: str, queue: str, started_at: datetime, leases: int,
                  stopped: bool, counts: dict[str, int], last_error: str | None) -> None:
    with transaction(engine) as s:
        row = s.get(RunnerRow, session)
        if row is None:
            row = RunnerRow(session=session, host=host[:128], pid=os.getpid(), queue=queue, started_at=started_at)
            s.add(row)
        row.seen_at, row.leases, row.stopped = utcnow(), leases, stopped
        row.counts, row.last_error = dict(counts), (last_error or None) and last_error[:500]


def list_runners(engine: Engine, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Runners seen since `since` (all when None), the most recently seen first."""
    query = select(RunnerRow).order_by(RunnerRow.seen_at.desc())
    if since is not None:
        query = query.where(RunnerRow.seen_at >= since)
    with transaction(engine) as s:
        return [{"session": r.session, "host": r.host, "pid": r.pid, "queue": r.queue, "started_at": r.started_at,
                 "seen_at": r.seen_at, "leases": r.leases, "stopped": r.stopped, "counts": dict(r.counts or {}),
                 "last_error": r.last_error} for r in s.scalars(query)]
