"""Is every daemon alive (heartbeat, supervisor, systemd) and not restarting in a loop?"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..hops import hop_of_daemon
from ..model import Alert
from ..snapshot import ProcessState, Snapshot
from ..text import duration_en, duration_zh
from .base import CheckEnv


def expected_daemons(snap: Snapshot, env: CheckEnv) -> list[str]:
    """The configured daemons; with none configured, every daemon that has sent a heartbeat."""
    if env.monitor.daemons:
        return [d.name for d in env.monitor.daemons]
    return sorted(n for n in snap.daemons if not n.startswith("monitor"))


def daemon_down(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    for name in expected_daemons(snap, env):
        watch = env.watch(name)
        timeout = (watch.heartbeat_timeout_seconds if watch and watch.heartbeat_timeout_seconds
                   else env.monitor.heartbeat_timeout_seconds)
        seen = snap.daemons.get(name)
        # A daemon never heard of gets the same grace from the monitor's own start.
        last = seen.at if seen else None
        age = (now - (last or snap.monitor_started_at)).total_seconds()
        if age <= timeout:
            continue
        if seen:
            zh = f"{name} 已 {duration_zh(age)} 沒有心跳（上限 {timeout:g} 秒）"
            en = f"{name}: no heartbeat for {duration_en(age)} (limit {timeout:g} s)"
        else:
            zh = f"{name} 自監控啟動後從未送出心跳"
            en = f"{name}: no heartbeat since the monitor started"
        alerts.append(Alert(
            zone=env.zone, hop=hop_of_daemon(name), check="daemon_down", host=seen.host if seen else env.host,
            subject=name, severity="critical", summary_zh=zh, summary_en=en, since=last,
            facts={"daemon": name, "last_heartbeat": last.isoformat() if last else None,
                   "age_seconds": round(age, 1), "timeout_seconds": timeout,
                   "session": seen.session if seen else None},
        ))
    return alerts


def restarts(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    hour_ago = now - timedelta(hours=1)
    limit = env.monitor.max_restarts_per_hour
    for name in expected_daemons(snap, env):
        starts = sorted(t for t in snap.session_starts.get(name, []) if hour_ago < t <= now)
        if len(starts) <= limit:
            continue
        seen = snap.daemons.get(name)
        alerts.append(Alert(
            zone=env.zone, hop=hop_of_daemon(name), check="restarts", host=seen.host if seen else env.host,
            subject=name, severity="warning", since=starts[0],
            summary_zh=f"{name} 一小時內啟動 {len(starts)} 次（上限 {limit} 次）",
            summary_en=f"{name}: started {len(starts)} times in the last hour (limit {limit})",
            facts={"daemon": name, "starts_last_hour": len(starts), "limit": limit,
                   "starts": [t.isoformat() for t in starts]},
        ))
    return alerts


def process_state(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    for name, states in sorted(snap.process_states.items()):
        for ps in states:
            if ps.running:
                continue
            seen = snap.daemons.get(name)
            command = start_command(ps, env.monitor.supervisor_url)
            zh, en = f"{ps.source} 回報 {ps.name} 狀態為 {ps.state}", f"{ps.source} reports {ps.name} as {ps.state}"
            if command:
                zh += f"；已放棄重啟，請執行：{command}"
                en += f"; it gave up restarting it. Run: {command}"
            facts = {"daemon": name, ps.source: ps.name, "state": ps.state, "detail": ps.detail}
            if command:
                facts["run"] = command
            alerts.append(Alert(
                zone=env.zone, hop=hop_of_daemon(name), check=f"{ps.source}_state",
                host=seen.host if seen else env.host, subject=name, severity="critical",
                summary_zh=zh, summary_en=en, facts=facts,
            ))
    return alerts


def start_command(ps: ProcessState, supervisor_url: str | None) -> str | None:
    """What an operator runs to start a process its supervisor gave up on (None: it has not).

    supervisord's FATAL and systemd's failed both mean no more automatic restarts there (the
    appliance's event listener still tries, slower and slower); the command is exact, with
    the supervisord socket the monitor itself reads, so it can be pasted from the mail.
    """
    if ps.source == "supervisor" and ps.state == "FATAL":
        where = f" -s {supervisor_url}" if supervisor_url else ""
        return f"supervisorctl{where} start {ps.name}"
    if ps.source == "systemd" and ps.state == "failed":
        return f"systemctl reset-failed {ps.name} && systemctl start {ps.name}"
    return None
