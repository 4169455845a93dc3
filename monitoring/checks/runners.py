"""The inner runners: one row each in intake_runners, and the shared queue they drain.

Every runner still writes the one "inner-runner" heartbeat, so daemon_down only says that
none of them is alive. These checks look at each runner's own row (host, pid, leases) and
at the queue itself: `runners_idle` when envelopes wait and nobody could take them,
`runner_down` for each runner that stopped writing its row without a clean stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Engine, Integer, String, column, func, inspect, select, table

from tgw_common.config import Config
from tgw_common.db import UTCDateTime, transaction

from ..model import Alert
from ..snapshot import Snapshot
from ..text import duration_en, duration_zh
from .base import CheckEnv

HOP = "inner-runner"
# A row not written for this long belongs to a runner retired long ago (a replaced host, a
# session from last week): it stays listed in the table but is not mailed about.
FORGET_AFTER = timedelta(days=1)
MAX_LISTED = 10


# The inner zone's tables as the monitor reads them: by name, since monitoring imports no
# zone (inner_zone/models.py owns them; their columns are documented in docs/deployment.md).
_QUEUE = table("intake_queue", column("state", String), column("enqueued_at", UTCDateTime()),
               column("lease_expires_at", UTCDateTime()))
_RUNNERS = table("intake_runners", column("session", String), column("host", String), column("pid", Integer),
                 column("queue", String), column("started_at", UTCDateTime()), column("seen_at", UTCDateTime()),
                 column("leases", Integer), column("stopped", Boolean), column("counts", JSON),
                 column("last_error", String))


def _list_runners(engine: Engine, since: datetime) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(_RUNNERS).where(_RUNNERS.c.seen_at >= since)
                            .order_by(_RUNNERS.c.seen_at.desc())).mappings().all()
    return [{**row, "counts": dict(row["counts"] or {})} for row in rows]


@dataclass
class RunnersView:
    """What the collector read this cycle; the checks judge it against their own `now`."""

    runners: list[dict[str, Any]] = field(default_factory=list)  # seen within FORGET_AFTER, newest first
    down_after_seconds: float = 15.0
    idle_after_seconds: float = 120.0
    ready: int = 0  # envelopes in state ready
    waiting: int = 0  # of those, enqueued longer than idle_after_seconds ago
    oldest_enqueued_at: datetime | None = None
    lease_expires_at: datetime | None = None  # the latest lease on a ready envelope


def gather(config: Config, engine: Engine, now: datetime) -> RunnersView | None:
    """None outside the inner zone or before the runner's tables exist."""
    if config.node.zone != "inner" or not inspect(engine).has_table("intake_runners"):
        return None
    Q = _QUEUE.c
    monitor = config.monitor
    beat = config.inner.heartbeat_seconds if config.inner is not None else 5
    view = RunnersView(runners=_list_runners(engine, now - FORGET_AFTER),
                       down_after_seconds=monitor.runner_down_after_seconds or 3.0 * beat,
                       idle_after_seconds=monitor.runners_idle_after_seconds)
    if inspect(engine).has_table("intake_queue"):
        bound = now - timedelta(seconds=view.idle_after_seconds)
        with transaction(engine) as s:
            ready, oldest, lease = s.execute(
                select(func.count(), func.min(Q.enqueued_at), func.max(Q.lease_expires_at))
                .select_from(_QUEUE).where(Q.state == "ready")).one()
            waiting = s.scalar(select(func.count()).select_from(_QUEUE)
                               .where(Q.state == "ready", Q.enqueued_at <= bound))
        view.ready, view.waiting = int(ready or 0), int(waiting or 0)
        view.oldest_enqueued_at, view.lease_expires_at = oldest, lease
    return view


def _fresh(row: dict[str, Any], view: RunnersView, now: datetime) -> bool:
    return not row["stopped"] and (now - row["seen_at"]).total_seconds() <= view.down_after_seconds


def _where(row: dict[str, Any]) -> str:
    return f"{row['host']} pid {row['pid']}"


def runners_idle(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    view: RunnersView | None = getattr(snap, "runners", None)
    if view is None or view.waiting == 0:
        return []
    if view.lease_expires_at is not None and view.lease_expires_at > now:
        return []  # someone holds a lease: it is working, slowly or not
    if any(_fresh(r, view, now) for r in view.runners):
        return []
    oldest = view.oldest_enqueued_at
    age = (now - oldest).total_seconds() if oldest else 0.0
    last = [{"host": r["host"], "pid": r["pid"], "session": r["session"], "seen_at": r["seen_at"].isoformat(),
             "stopped": r["stopped"]} for r in view.runners[:MAX_LISTED]]
    seen = "; ".join(f"{_where(r)} {duration_en((now - r['seen_at']).total_seconds())} ago"
                     + (" (stopped)" if r["stopped"] else "") for r in view.runners[:3])
    seen_zh = "；".join(f"{_where(r)} {duration_zh((now - r['seen_at']).total_seconds())}前"
                        + ("（已停止）" if r["stopped"] else "") for r in view.runners[:3])
    since = max([t for t in (oldest, *(r["seen_at"] for r in view.runners[:1])) if t is not None], default=None)
    return [Alert(
        zone=env.zone, hop=HOP, check="runners_idle", host=env.host, severity="critical", since=since,
        summary_zh=f"共用佇列有 {view.waiting} 個信封等待逾 {view.idle_after_seconds:.0f} 秒（最舊 "
                   f"{duration_zh(age)}），但沒有任何處理程序在執行；最後出現：{seen_zh or '從未'}",
        summary_en=f"{view.waiting} envelopes have waited over {view.idle_after_seconds:.0f} s in the shared queue "
                   f"(oldest {duration_en(age)}) and no runner is alive; last seen: {seen or 'never'}",
        facts={"waiting": view.waiting, "ready": view.ready, "oldest_age_seconds": round(age, 1),
               "idle_after_seconds": view.idle_after_seconds, "runners_last_seen": last},
    )]


def runner_down(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    view: RunnersView | None = getattr(snap, "runners", None)
    if view is None:
        return []
    alive = [r for r in view.runners if _fresh(r, view, now)]
    alerts = []
    for r in view.runners:
        quiet = (now - r["seen_at"]).total_seconds()
        if r["stopped"] or quiet <= view.down_after_seconds or now - r["seen_at"] > FORGET_AFTER:
            continue
        others = ", ".join(_where(a) for a in alive[:3])
        alerts.append(Alert(
            zone=env.zone, hop=HOP, check="runner_down", host=r["host"], subject=f"{r['pid']}/{r['session']}",
            severity="warning" if alive else "critical", since=r["seen_at"],
            summary_zh=f"處理程序 {_where(r)} 已 {duration_zh(quiet)} 沒有回報（未正常停止）"
                       + (f"；仍在執行：{others}" if alive else "；沒有其他處理程序在執行"),
            summary_en=f"runner {_where(r)} has not reported for {duration_en(quiet)} and was not stopped cleanly"
                       + (f"; still running: {others}" if alive else "; no other runner is alive"),
            facts={"host": r["host"], "pid": r["pid"], "session": r["session"], "queue": r["queue"],
                   "started_at": r["started_at"].isoformat(), "seen_at": r["seen_at"].isoformat(),
                   "leases": r["leases"], "down_after_seconds": view.down_after_seconds,
                   "last_error": r["last_error"], "alive": [_where(a) for a in alive[:MAX_LISTED]]},
        ))
    return alerts
