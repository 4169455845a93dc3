"""What the dashboard shows: every hop's process state, queues, throughput, latency, alerts, gaps.

All of it is read from the inner zone's database and folders: the daemons' heartbeats
(`daemon_status`, including "outer.transfer-send", the sender's heartbeats recorded by the
receiver across the one-way link), the provenance events, the monitor's alert table and the
receiver's gap table when those parts run here, and the spool folders themselves.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from tgw_common.db import transaction, utcnow
from tgw_common.events import EventRow
from tgw_common.spool import HIDDEN

from .state import DAEMON as CONSOLE_DAEMON
from .state import Console
from .timefmt import TAIPEI

# The hops in envelope order, as the inner zone sees them (docs/monitoring.md, "Hops").
# Each with its title in the page's language (a lazy string).
HOPS = (
    ("outer.transfer-send", _l("outer sender (seen across the link)")),
    ("transfer-receive", _l("inner receiver")),
    ("inner-runner", _l("inner runner")),
    ("monitor", _l("zone monitor")),
    (CONSOLE_DAEMON, _l("operator console")),
)
# How often each daemon writes its heartbeat by default (when its state does not say).
DEFAULT_INTERVAL = {"outer.transfer-send": 2.0, "transfer-receive": 5.0, "inner-runner": 5.0, "monitor": 15.0,
                    CONSOLE_DAEMON: 10.0}


def _age(at: str, now: datetime) -> float:
    return max(0.0, (now - datetime.fromisoformat(at)).total_seconds())


def daemon_rows(console: Console, now: datetime) -> list[dict[str, Any]]:
    """Every daemon with a heartbeat, known hops first, with a judged state: up, late, down, stopped."""
    rows = {d["daemon"]: d for d in console.provenance.daemons()}
    intervals = dict(DEFAULT_INTERVAL)
    intervals["inner-runner"] = console.config.inner.heartbeat_seconds
    intervals[CONSOLE_DAEMON] = console.cfg.heartbeat_seconds
    out = []
    order = [h[0] for h in HOPS] + sorted(n for n in rows if n not in {h[0] for h in HOPS})
    titles = dict(HOPS)
    for name in order:
        d = rows.get(name)
        title = titles.get(name, name)
        if d is None:
            if name in titles and name != "monitor":
                out.append({"daemon": name, "title": title, "status": "missing", "state": {}, "age": None,
                            "depth": None, "oldest": None, "pid": None, "last_error": None})
            continue
        state = d["state"] or {}
        interval = float(state.get("interval") or intervals.get(name, 10.0))
        limit = max(3 * interval, 15.0)
        age = _age(d["at"], now)
        if state.get("stopping"):
            status = "stopped"
        elif age <= limit:
            status = "up"
        elif age <= 4 * limit:
            status = "late"
        else:
            status = "down"
        depth = state.get("queue_depth", state.get("files_in_progress"))
        out.append({**d, "title": title, "status": status, "age": round(age, 1), "state": state,
                    "zone_label": _l("outer") if name.startswith("outer.") else _l("inner"), "depth": depth,
                    "oldest": state.get("oldest_age_seconds"), "pid": state.get("pid"),
                    "last_error": state.get("last_error")})
    return out


def folder_state(path) -> dict[str, Any]:
    try:
        entries = [e for e in os.scandir(path) if e.is_file() and not e.name.startswith(HIDDEN)]
    except FileNotFoundError:
        return {"files": 0, "oldest_age_seconds": None}
    now = time.time()
    ages = []
    for e in entries:
        try:
            ages.append(now - e.stat().st_mtime)
        except FileNotFoundError:  # claimed by the runner while we looked
            continue
    return {"files": len(ages), "oldest_age_seconds": round(max(ages), 1) if ages else None}


def queues(console: Console, daemons: list[dict]) -> list[dict[str, Any]]:
    """Waiting work per hop: depth and age of the oldest item where it is known."""
    by = {d["daemon"]: d.get("state") or {} for d in daemons}
    sender, receiver = by.get("outer.transfer-send", {}), by.get("transfer-receive", {})
    inbound = folder_state(console.config.inner.inbound)
    claimed = folder_state(console.config.inner.inbound / ".claimed")
    counts = console.quarantine.counts()
    active = console.quarantine.list()
    oldest_q = None
    if active:
        first = min((e.get("quarantined_at") or "") for e in active)
        if first:
            oldest_q = round((utcnow() - datetime.fromisoformat(first)).total_seconds(), 1)
    return [
        {"hop": "outer.transfer-send", "title": _l("outer: waiting to be sent"),
         "depth": sender.get("queue_depth"), "oldest": None,
         "note": f"outbound {sender.get('outbound_depth', '-')}, last seq {sender.get('last_seq', '-')}"},
        {"hop": "transfer-receive", "title": _l("files being received"),
         "depth": receiver.get("files_in_progress"), "oldest": None,
         "note": f"keeper backlog {receiver.get('keeper_backlog', '-')}"},
        {"hop": "inner-runner", "title": _l("inbound, waiting for the runner"),
         "depth": inbound["files"], "oldest": inbound["oldest_age_seconds"],
         "note": f"being processed {claimed['files']}"},
        {"hop": "quarantine", "title": _l("quarantine, waiting for an operator"),
         "depth": counts["open"], "oldest": oldest_q, "note": f"held (CRL) {counts['held']}"},
    ]


def outer_health(daemons: list[dict]) -> dict[str, Any] | None:
    """The outer zone as the sender's heartbeats describe it, and whether they still come."""
    by = {d["daemon"]: d for d in daemons}
    sender, receiver = by.get("outer.transfer-send"), by.get("transfer-receive")
    if sender is None or sender.get("status") == "missing":
        return None
    st = sender["state"]
    return {"status": sender["status"], "age": sender["age"], "host": sender.get("host"),
            "session": sender.get("session"), "started_at": sender.get("started_at"),
            "disk_free": st.get("disk_free"), "queue_depth": st.get("queue_depth"),
            "outbound_depth": st.get("outbound_depth"), "last_seq": st.get("last_seq"),
            "files_numbered": st.get("files_numbered"), "copies_sent": st.get("copies_sent"),
            "rate_bps": st.get("rate_bps"), "last_error": st.get("last_error"),
            "sender_silent": ((receiver or {}).get("state") or {}).get("sender_silent")}


def _has(console: Console, table: str) -> bool:
    return inspect(console.engine).has_table(table)


def alerts(console: Console) -> list[dict[str, Any]] | None:
    """Firing and pending alerts from the zone monitor's table; None when no monitor writes here."""
    if not _has(console, "monitor_alerts"):
        return None
    from monitoring.store import AlertRow

    order = {"critical": 0, "warning": 1}
    with transaction(console.engine) as s:
        rows = s.scalars(select(AlertRow).where(AlertRow.state.in_(("firing", "pending")))).all()
        out = [{"state": r.state, "severity": r.severity, "hop": r.hop, "check": r.check, "subject": r.subject,
                "summary_zh": r.summary_zh, "summary_en": r.summary_en, "since": r.firing_since or r.active_since,
                "muted": r.muted, "inhibited": bool(r.inhibited_by)} for r in rows]
    out.sort(key=lambda a: (a["state"] != "firing", order.get(a["severity"], 2), a["hop"]))
    return out


# Runners not heard from for longer than this are history, not part of the page.
RUNNERS_SHOWN = timedelta(days=1)


def runners(console: Console, now: datetime) -> list[dict[str, Any]] | None:
    """Every inner runner seen in the last day (intake_runners), newest first, with a judged
    state: running, stopped (a clean stop), or silent (no row written for three heartbeats:
    dead, hung or cut off). None before the runner's tables exist."""
    if not _has(console, "intake_runners"):
        return None
    from inner_zone.runner_registry import list_runners

    limit = max(3.0 * console.config.inner.heartbeat_seconds, 15.0)
    out = []
    for r in list_runners(console.engine, since=now - RUNNERS_SHOWN):
        age = max(0.0, (now - r["seen_at"]).total_seconds())
        status = "stopped" if r["stopped"] else "running" if age <= limit else "silent"
        out.append({"session": r["session"], "host": r["host"], "pid": r["pid"], "queue": r["queue"],
                    "started_at": r["started_at"], "seen_at": r["seen_at"], "age": round(age, 1),
                    "leases": r["leases"], "loaded": int((r["counts"] or {}).get("loaded", 0)), "status": status,
                    "last_error": r["last_error"]})
    return out


def gaps(console: Console, *, open_only: bool = True, limit: int = 200) -> list[dict[str, Any]] | None:
    if not _has(console, "transfer_gaps"):
        return None
    from transfer.models import TransferGap

    with transaction(console.engine) as s:
        q = select(TransferGap).order_by(TransferGap.seq.desc()).limit(limit)
        if open_only:
            q = q.where(TransferGap.closed_at.is_(None))
        return [g.as_dict() for g in s.scalars(q)]


def hourly(console: Console, now: datetime, hours: int) -> dict[str, Any]:
    """Events per hour and latency per hour over the last `hours` (Taipei clock on the axis)."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    names = ("arrived", "loaded", "quarantined", "duplicate")
    with transaction(console.engine) as s:
        rows = s.execute(select(EventRow.event, EventRow.at, EventRow.sha256, EventRow.detail)
                         .where(EventRow.at >= start - timedelta(hours=hours), EventRow.event.in_(names))).all()
    counts = {n: [0] * hours for n in names}
    arrived_at: dict[str, datetime] = {}
    processing: dict[int, list[float]] = defaultdict(list)
    end_to_end: dict[int, list[float]] = defaultdict(list)
    for event, at, sha, detail in sorted(rows, key=lambda r: r[1]):
        if event == "arrived" and sha:
            arrived_at.setdefault(sha, at)
        if at < start:
            continue
        slot = int((at - start).total_seconds() // 3600)
        if not 0 <= slot < hours:
            continue
        counts[event][slot] += 1
        if event == "loaded":
            seconds = (detail or {}).get("seconds")
            if isinstance(seconds, int | float):
                processing[slot].append(float(seconds))
            if sha in arrived_at:
                end_to_end[slot].append((at - arrived_at[sha]).total_seconds())
    labels = [(start + timedelta(hours=i)).astimezone(TAIPEI).strftime("%H:00") for i in range(hours)]

    def per_slot(data: dict[int, list[float]], fn) -> list[float | None]:
        return [round(fn(data[i]), 3) if data.get(i) else None for i in range(hours)]

    def p95(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    return {"labels": labels, "counts": counts, "start": start,
            "processing_p50": per_slot(processing, statistics.median),
            "arrival_to_load_p50": per_slot(end_to_end, statistics.median),
            "arrival_to_load_p95": per_slot(end_to_end, p95),
            "totals": {n: sum(v) for n, v in counts.items()}}


def gather(console: Console) -> dict[str, Any]:
    now = utcnow()
    daemons = daemon_rows(console, now)
    return {"now": now, "daemons": daemons, "queues": queues(console, daemons), "outer": outer_health(daemons),
            "runners": runners(console, now), "queue_mode": console.config.inner.queue,
            "alerts": alerts(console), "gaps": gaps(console), "hourly": hourly(console, now, console.cfg.chart_hours)}
