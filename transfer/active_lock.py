"""Which receiver of a link is the active one: a lock that dies with its holder.

On PostgreSQL it is a session-level advisory lock taken on a connection of its own, kept
open while the receiver is active. The server drops the lock when that session ends (the
process or its host died, or the network cut it), so a standby can take it within a poll.
The key includes the schema, because the ledger it guards lives there (and tests run many
schemas in one database).

A receiver that lost its session may not know yet; so every publication intent takes a
short transaction-level lock and checks, in the same transaction, that its session still
holds the active lock in `pg_locks`. Two receivers thus never commit intents at the same
time, and one that lost the lock commits none (see `fence`).

On SQLite (one host) the flock of the shared state folder is the lock: the kernel drops
it with the process.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tgw_common.db import libpq_url
from tgw_common.instance_lock import AlreadyRunning, InstanceLock

log = logging.getLogger(__name__)

# Two-key advisory locks: (7467701, schema) "the active receiver of this schema's link";
# (7467702, schema) held for the length of one intent transaction.
TRY_ACTIVE = "SELECT pg_try_advisory_lock(7467701, hashtext(current_schema()))"
INTENT = "SELECT pg_advisory_xact_lock(7467702, hashtext(current_schema()))"
HOLDS_ACTIVE = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = :pid"
                " AND classid = 7467701::oid AND objid = hashtext(current_schema())::oid AND objsubid = 2")
# Keepalives so a host or network that vanishes is noticed in seconds, not hours.
PG_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1,
                   "keepalives_count": 3}


class Fenced(RuntimeError):
    """This receiver no longer holds the active lock: it must not publish."""


class ActiveLock:
    """try_acquire() until it returns True; then alive() on every poll, fence() in every intent."""

    def __init__(self, url: str, lock_file: Path, *, application_name: str) -> None:
        self.url = libpq_url(url)  # a multi-host URL (a standby database) in the form SQLAlchemy takes
        self.postgres = make_url(self.url).get_backend_name() == "postgresql"
        self.file_lock = InstanceLock(lock_file, holder="transfer receiver")
        self.application_name = application_name[:63]
        self._conn: Connection | None = None
        self._engine = None
        self.backend_pid: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if not self.postgres:
            try:
                self.file_lock.acquire()
            except AlreadyRunning:
                return False
            self.held = True
            return True
        return self._try_advisory()

    def _try_advisory(self) -> bool:
        try:
            if self._conn is None:
                if self._engine is None:
                    self._engine = create_engine(self.url, poolclass=NullPool, connect_args={
                        **PG_CONNECT_ARGS, "application_name": self.application_name})
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn.execute(text("SET statement_timeout = '5s'"))
            got = self._conn.execute(text(TRY_ACTIVE)).scalar()
            if got:
                self.backend_pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        except Exception as exc:  # database away: stay standby and try again at the next poll
            log.warning("cannot ask the database for the active lock", extra={"error": str(exc)})
            self._drop_connection()
            return False
        self.held = bool(got)
        return self.held

    def alive(self) -> bool:
        """Whether the lock is still ours; a dead session means it is not."""
        if not self.postgres or not self.held:
            return self.held
        try:
            self._conn.execute(text("SELECT 1")).scalar()
        except Exception as exc:
            log.error("the active lock's database session is gone", extra={"error": str(exc)})
            self.held = False
            self._drop_connection()
        return self.held

    def fence(self, session) -> None:
        """Inside an intent transaction: serialise intents of all receivers, and refuse unless
        our lock session still holds the active lock."""
        if not self.postgres:
            return
        if not self.held or self.backend_pid is None:
            raise Fenced("not the active receiver")
        session.execute(text(INTENT))
        holds = session.execute(text(HOLDS_ACTIVE), {"pid": self.backend_pid}).scalar()
        if not holds:
            raise Fenced("the active lock's session is gone: another receiver may be active")

    def open(self) -> None:
        """On PostgreSQL each receiver keeps its own state folder: two on one folder is refused."""
        if self.postgres:
            self.file_lock.acquire()

    def release(self) -> None:
        """Give up the active role (back to standby)."""
        self.held = False
        if self.postgres:
            self._drop_connection()
        else:
            self.file_lock.release()

    def close(self) -> None:
        self.release()
        if self.postgres:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self.file_lock.release()

    def _drop_connection(self) -> None:
        # Closing the session frees the lock on the server (if the server still has it).
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # the connection is already broken; nothing more to free
                log.debug("closing the lock connection failed", exc_info=True)
            self._conn = None
        self.backend_pid = None
