"""`tgw inner status`: what an operator checks first, from the folders and the database."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import func, select

from tgw_common.config import Config
from tgw_common.db import transaction, utcnow
from tgw_common.spool import HIDDEN

from .context import open_inner
from .intake import HOP
from .models import Envelope, QueuedEnvelope
from .runner_registry import list_runners


def _folder(path, *, hidden: bool = False) -> dict[str, Any]:
    try:
        entries = [e for e in os.scandir(path) if e.is_file() and (hidden or not e.name.startswith(HIDDEN))]
    except FileNotFoundError:
        return {"files": 0, "oldest_age_seconds": None}
    now = time.time()
    ages = [now - e.stat().st_mtime for e in entries]
    return {"files": len(entries), "oldest_age_seconds": round(max(ages), 1) if ages else None}


def gather(config: Config, *, n_events: int = 10) -> dict[str, Any]:
    inner_ctx = open_inner(config, publish=False)
    inbound = config.inner.inbound
    counts = inner_ctx.quarantine.counts()
    runner = next((d for d in inner_ctx.provenance.daemons() if d["daemon"] == HOP), None)
    if runner is not None:
        from datetime import datetime

        runner["seconds_since_heartbeat"] = round((utcnow() - datetime.fromisoformat(runner["at"])).total_seconds(), 1)
    with transaction(inner_ctx.engine) as s:
        loaded = s.execute(select(Envelope.released_for_payment, func.count(), func.coalesce(func.sum(
            Envelope.total_amount), 0)).group_by(Envelope.released_for_payment)).all()
    totals = {("live" if released else "parallel_test"): {"envelopes": n, "total_amount": int(amount)}
              for released, n, amount in loaded}
    info = {
        "inbound": {**_folder(inbound), "claimed": _folder(inbound / ".claimed")["files"],
                    "path": str(inbound)},
        "quarantine": counts["open"],
        "held": counts["held"],
        "loaded": {"live": totals.get("live", {"envelopes": 0, "total_amount": 0}),
                   "parallel_test": totals.get("parallel_test", {"envelopes": 0, "total_amount": 0})},
        "runner": runner,
        "shared_queue": _shared_queue(inner_ctx.engine),
        "runners": _runners(inner_ctx.engine),
        "events": inner_ctx.provenance.recent(n_events) if n_events else [],
    }
    inner_ctx.provenance.close()
    return info


def _shared_queue(engine) -> dict[str, Any]:
    q = QueuedEnvelope
    now = utcnow()
    with transaction(engine) as s:
        ready, oldest = s.execute(select(func.count(), func.min(q.enqueued_at)).where(q.state == "ready")).one()
        leased = s.scalar(select(func.count()).where(q.state == "ready", q.lease_expires_at > now))
    return {"ready": ready, "leased": leased,
            "oldest_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else None}


def _runners(engine) -> list[dict[str, Any]]:
    """Runners heard from in the last day, with how long ago."""
    from datetime import timedelta

    now = utcnow()
    out = []
    for r in list_runners(engine, since=now - timedelta(days=1)):
        out.append({**r, "started_at": r["started_at"].isoformat(), "seen_at": r["seen_at"].isoformat(),
                    "seconds_since_seen": round((now - r["seen_at"]).total_seconds(), 1)})
    return out


def render(info: dict[str, Any]) -> str:
    ib = info["inbound"]
    age = f", oldest {ib['oldest_age_seconds']:.0f} s" if ib["oldest_age_seconds"] is not None else ""
    lines = [
        f"inbound 待處理  {ib['files']} files{age}, {ib['claimed']} being processed ({ib['path']})",
        f"quarantine 隔離 {info['quarantine']} open, held 暫停 {info['held']}",
        f"loaded 已入庫   live {info['loaded']['live']['envelopes']} envelopes "
        f"(NT$ {info['loaded']['live']['total_amount']:,}), parallel-test "
        f"{info['loaded']['parallel_test']['envelopes']}",
    ]
    r = info["runner"]
    if r is None:
        lines.append("runner 處理程序 no heartbeat recorded yet")
    else:
        st = r["state"]
        lines.append(f"runner 處理程序 pid {st.get('pid')} on {r['host']}, last heartbeat "
                     f"{r['seconds_since_heartbeat']:.0f} s ago{' (stopped)' if st.get('stopping') else ''}, "
                     f"queue {st.get('queue_depth')}, processed {st.get('processed')}")
        if st.get("last_error"):
            lines.append(f"  last error: {st['last_error']}")
    sq = info["shared_queue"]
    if sq["ready"] or any(r["queue"] == "database" for r in info["runners"]):
        age = f", oldest {sq['oldest_age_seconds']:.0f} s" if sq["oldest_age_seconds"] is not None else ""
        lines.append(f"shared queue 共用佇列 {sq['ready']} waiting, {sq['leased']} under lease{age}")
    for r in info["runners"]:
        state = "stopped" if r["stopped"] else f"seen {r['seconds_since_seen']:.0f} s ago"
        lines.append(f"  runner {r['host']} pid {r['pid']} ({r['queue']}): {state}, {r['leases']} leases, "
                     f"loaded {r['counts'].get('loaded', 0)}")
    if info["events"]:
        lines.append("last events 最近事件:")
        for ev in info["events"]:
            ids = ev.get("envelope_id") or ev.get("tracking_id") or (ev.get("sha256") or "")[:16]
            lines.append(f"  {ev['at'][:19]}  {ev['hop']:<16} {ev['event']:<12} {ev.get('reason') or '':<18} {ids}")
    return "\n".join(lines)
