"""The standby database: the primary's pg_stat_replication, read by the collector each cycle.

A synchronous standby that disconnects is critical, not a warning: the primary then holds
every commit until it is back, so the runner stalls (docs/deployment.md, "Standby database
and three sites").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from tgw_common.config import Config
from tgw_common.replication import ReplicationView, is_postgres, replication_view

from ..hops import HOST_HOP
from ..model import Alert
from ..snapshot import Snapshot
from .base import CheckEnv

CHECK = "replication_lag"


def gather(config: Config, engine: Engine) -> ReplicationView | None:
    """What the check needs; None on SQLite, where there is nothing to replicate."""
    database = config.database
    if not is_postgres(database.url):
        return None
    view = replication_view(engine)
    view.alert_seconds = database.replication_lag_alert_seconds
    view.expected = bool(database.standby_url or database.require_synchronous_standby)
    return view


def _alert(env: CheckEnv, subject: str, severity: str, zh: str, en: str, **facts) -> Alert:
    return Alert(zone=env.zone, hop=HOST_HOP, check=CHECK, host=env.host, subject=subject, severity=severity,
                 summary_zh=zh, summary_en=en, facts=facts)


def replication_lag(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    view: ReplicationView | None = getattr(snap, "replication", None)
    if view is None or view.in_recovery:
        return []
    alerts = []
    wanted = view.synchronous_standby_names.strip()
    streaming = [s for s in view.standbys if s.state == "streaming"]
    if (wanted or view.expected) and not streaming:
        alerts.append(_alert(
            env, "standby", "critical" if wanted else "warning",
            f"備援資料庫未連線（synchronous_standby_names = {wanted or '無'}）"
            + ("：主資料庫的每筆交易都在等待它" if wanted else ""),
            f"no standby is streaming (synchronous_standby_names = {wanted or 'none'})"
            + (": the primary holds every commit until one is back" if wanted else ""),
            synchronous_standby_names=wanted,
            standbys=[f"{s.name}:{s.state}/{s.sync_state}" for s in view.standbys]))
    bound = view.alert_seconds
    for s in view.standbys:
        if s.state != "streaming":
            alerts.append(_alert(env, s.name, "warning", f"備援資料庫 {s.name} 狀態 {s.state}（非 streaming）",
                                 f"standby {s.name} is {s.state}, not streaming", state=s.state,
                                 sync_state=s.sync_state))
        elif bound is not None and s.lag_seconds > bound:
            alerts.append(_alert(env, s.name, "warning",
                                 f"備援資料庫 {s.name} 重播延遲 {s.lag_seconds:.0f} 秒（上限 {bound:.0f}）",
                                 f"standby {s.name} replays {s.lag_seconds:.0f} s behind (bound {bound:.0f} s)",
                                 lag_seconds=round(s.lag_seconds, 3), lag_bytes=s.lag_bytes, bound_seconds=bound,
                                 sync_state=s.sync_state))
    return alerts
