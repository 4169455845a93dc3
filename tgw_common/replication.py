"""PostgreSQL streaming replication as the gateway sees it: the primary's standbys, and the
promotion of a standby (docs/deployment.md, "Standby database and three sites").

Shared by `tgw inner db`, the runner's start-up check and the monitor's replication_lag
check, so all three read pg_stat_replication the same way.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .db import libpq_url

_STANDBYS = text("""
    SELECT application_name, client_addr::text AS client_addr, state, sync_state,
           EXTRACT(EPOCH FROM replay_lag)::float8 AS lag_seconds,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes
    FROM pg_stat_replication ORDER BY application_name
""")


@dataclass(frozen=True)
class StandbyState:
    name: str
    client_addr: str | None
    state: str  # streaming, catchup, startup, backup, stopping
    sync_state: str  # sync, potential, quorum, async
    # PostgreSQL clears replay_lag once an idle standby has caught up: that is 0, not unknown.
    lag_seconds: float
    lag_bytes: int | None


@dataclass
class ReplicationView:
    in_recovery: bool
    synchronous_standby_names: str
    synchronous_commit: str
    standbys: list[StandbyState] = field(default_factory=list)
    alert_seconds: float | None = None  # database.replication_lag_alert_seconds, for the monitor
    expected: bool = False  # the config names a standby (standby_url or require_synchronous_standby)

    @property
    def synchronous(self) -> list[StandbyState]:
        return [s for s in self.standbys if s.sync_state in ("sync", "quorum") and s.state == "streaming"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"synchronous_count": len(self.synchronous)}


def is_postgres(url: str) -> bool:
    return make_url(libpq_url(url)).get_backend_name() == "postgresql"


def one_shot_engine(url: str, connect_timeout: int = 5) -> Engine:
    """An engine without a pool, for a command's few statements against a named server."""
    return create_engine(libpq_url(url), poolclass=NullPool, connect_args={"connect_timeout": connect_timeout})


def replication_view(engine: Engine) -> ReplicationView:
    with engine.connect() as conn:
        in_recovery = bool(conn.execute(text("SELECT pg_is_in_recovery()")).scalar())
        view = ReplicationView(
            in_recovery=in_recovery,
            synchronous_standby_names=conn.execute(text("SHOW synchronous_standby_names")).scalar() or "",
            synchronous_commit=conn.execute(text("SHOW synchronous_commit")).scalar() or "",
        )
        if in_recovery:
            return view  # a standby has no standbys of its own to report here
        for row in conn.execute(_STANDBYS).mappings():
            lag_bytes = None if row["lag_bytes"] is None else int(row["lag_bytes"])
            view.standbys.append(StandbyState(
                name=row["application_name"], client_addr=row["client_addr"], state=row["state"],
                sync_state=row["sync_state"], lag_seconds=float(row["lag_seconds"] or 0.0), lag_bytes=lag_bytes,
            ))
    return view


def synchronous_problem(engine: Engine) -> str | None:
    """Why commits on this database are not safe on a second machine, or None when they are."""
    view = replication_view(engine)
    if view.in_recovery:
        return "the database is a standby (read-only): database.url must reach the primary"
    if not view.synchronous_standby_names.strip():
        return "the primary has no synchronous_standby_names: commits are not waited for by any standby"
    if view.synchronous_commit in ("off", "local", "remote_write"):
        # remote_write: in the standby's memory only, lost if both machines go down together.
        return (f"synchronous_commit is {view.synchronous_commit!r}: commits do not wait for the standby's "
                "disk (use on or remote_apply)")
    if not view.synchronous:
        names = ", ".join(f"{s.name} ({s.state}/{s.sync_state})" for s in view.standbys) or "none connected"
        return (f"no synchronous standby is streaming (synchronous_standby_names = "
                f"{view.synchronous_standby_names!r}; standbys: {names})")
    return None


class NotAStandby(Exception):
    pass


def promote(engine: Engine, timeout: float = 60.0) -> float:
    """Promote the standby behind `engine` and wait until it accepts writes; the seconds taken.

    Raises NotAStandby when the server is not in recovery (it is a primary already), and
    TimeoutError when it is still in recovery after `timeout`.
    """
    started = time.monotonic()
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
            raise NotAStandby("the server is not a standby (pg_is_in_recovery() is false): nothing to promote")
        conn.execute(text("SELECT pg_promote(wait => true, wait_seconds => :w)"), {"w": max(1, int(timeout))})
        conn.commit()
    while True:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the standby is still in recovery after {timeout:.0f} s")
        time.sleep(0.2)
