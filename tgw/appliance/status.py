"""`tgw status`: each hop's process (supervisor), queue and last heartbeat (zone databases)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, inspect, select

from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction, utcnow
from tgw_common.events import DaemonStatusRow, EventRow

from .control import process_info, supervisor_pid
from .layout import Layout, ports
from .programs import EVENT_LISTENER, zone_of

# program -> (heartbeat daemon, the heartbeat state key that counts its waiting files)
HEARTBEATS = {
    "outer-web": ("outer-web", "outbound_depth"),
    "transfer-send": ("transfer-send", "queue_depth"),
    "transfer-receive": ("transfer-receive", "files_in_progress"),
    "inner-runner": ("inner-runner", "queue_depth"),
    "inner-console": ("inner-console", None),
    "inner-receipts": ("inner-receipts", "unpublished"),
    "return-send": ("transfer-send", "queue_depth"),  # the return link's sender, in the inner zone
    "return-receive": ("transfer-receive", "files_in_progress"),  # ... and its receiver, in the outer zone
    "outer-receipts": ("outer-receipts", None),
    "monitor-outer": ("monitor", None),
    "monitor-inner": ("monitor", None),
    EVENT_LISTENER: ("supervisor", None),
}
# The order the table is printed in: the envelope's path, then the helpers.
ORDER = ["outer-web", "transfer-send", "transfer-relay", "transfer-receive", "inner-runner", "inner-receipts",
         "return-send", "return-relay", "return-receive", "outer-receipts", "inner-console",
         "monitor-outer", "monitor-inner", EVENT_LISTENER, "smtp-sink"]


def _zone_rows(config_path) -> tuple[dict[str, dict], dict[str, dict[str, int]]]:
    config = load_config(config_path)
    engine = make_engine(config.database.url)
    if not inspect(engine).has_table("daemon_status"):
        return {}, {}
    with transaction(engine) as s:
        beats = {r.daemon: r.as_dict() for r in s.scalars(select(DaemonStatusRow))}
        counts: dict[str, dict[str, int]] = {}
        for hop, event, n in s.execute(select(EventRow.hop, EventRow.event, func.count())
                                       .group_by(EventRow.hop, EventRow.event)):
            counts.setdefault(hop, {})[event] = n
    return beats, counts


def gather(layout: Layout) -> dict[str, Any]:
    settings = layout.read_settings()
    info = process_info(layout)
    now = utcnow()
    beats: dict[str, dict[str, dict]] = {}
    events: dict[str, dict[str, dict[str, int]]] = {}
    for zone, path in (("outer", layout.outer_config), ("inner", layout.inner_config)):
        if path.exists():
            beats[zone], events[zone] = _zone_rows(path)
    programs = []
    by_name = {p["name"]: p for p in info or []}
    for name in sorted(by_name, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        p = by_name[name]
        zone = zone_of(name)
        row: dict[str, Any] = {
            "program": name, "zone": zone, "state": p["statename"], "pid": p["pid"] or None,
            "uptime_seconds": (p["now"] - p["start"]) if p["statename"] == "RUNNING" else None,
            "description": p["description"],
        }
        daemon, depth_key = HEARTBEATS.get(name, (None, None))
        beat = beats.get("outer" if zone == "appliance" else zone, {}).get(daemon) if daemon else None
        if beat is not None:
            at = datetime.fromisoformat(beat["at"])
            row["heartbeat"] = {"daemon": daemon, "at": beat["at"], "age_seconds": max(0.0, round((now - at).total_seconds(), 1)),
                                "session": beat["session"]}
            if depth_key:
                row["queue_depth"] = beat["state"].get(depth_key)
        programs.append(row)
    base = settings.port_base if settings else None
    return {
        "dir": str(layout.root),
        "running": info is not None,
        "supervisord_pid": supervisor_pid(layout),
        "portal": f"http://127.0.0.1:{ports(base)['web']}" if base else None,
        "loss": settings.loss if settings else None,
        "all_running": bool(info) and all(p["statename"] == "RUNNING" for p in info),
        "programs": programs,
        "sender_seen_by_receiver": _brief(beats.get("inner", {}).get("outer.transfer-send"), now),
        "events": events,
        "mails": len(list(layout.mail_dir.glob("*.eml"))) if layout.mail_dir.is_dir() else 0,
        "mail_dir": str(layout.mail_dir),
    }


def _brief(beat: dict | None, now: datetime) -> dict | None:
    if beat is None:
        return None
    return {"at": beat["at"], "age_seconds": round((now - datetime.fromisoformat(beat["at"])).total_seconds(), 1),
            "queue_depth": beat["state"].get("queue_depth"),
            # The sender's highest number so far (renamed last_numbered in newer senders).
            "last_seq": beat["state"].get("last_numbered", beat["state"].get("last_seq"))}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render(status: dict[str, Any]) -> str:
    if not status["running"]:
        return (f"一機裝置未執行 / the appliance in {status['dir']} is not running "
                f"(start it with `tgw up --dir {status['dir']}`)")
    lines = [f"一機裝置 / appliance {status['dir']}: supervisord pid {status['supervisord_pid']}, "
             f"portal {status['portal']}" + (f", lossy relay {status['loss']:g}" if status["loss"] is not None else ""),
             f"{'program 程式':<20} {'zone':<9} {'state':<9} {'pid':>7} {'uptime':>8} {'queue':>6}  heartbeat 心跳"]
    for p in status["programs"]:
        hb = p.get("heartbeat")
        beat = f"{hb['daemon']} {hb['age_seconds']:.0f} s ago" if hb else "-"
        queue = p.get("queue_depth")
        lines.append(f"{p['program']:<20} {p['zone']:<9} {p['state']:<9} {p['pid'] or '-':>7} "
                     f"{_duration(p['uptime_seconds']):>8} {'-' if queue is None else queue:>6}  {beat}")
    seen = status["sender_seen_by_receiver"]
    if seen:
        lines.append(f"sender seen across the link 內網所見送出端: {seen['age_seconds']:.0f} s ago, "
                     f"last seq {seen['last_seq']}, queue {seen['queue_depth']}")
    ev = status["events"]
    outer, inner = ev.get("outer", {}), ev.get("inner", {})
    lines.append(
        "envelopes 信封: received 受理 {r}, refused at upload 上傳拒收 {ro}, sent 送出 {s}, arrived 抵達 {a}, "
        "loaded 入庫 {lo}, quarantined 隔離 {q}, duplicate copies dropped 重複份數 {d}".format(
            r=outer.get("outer-web", {}).get("received", 0), ro=outer.get("outer-web", {}).get("refused", 0),
            s=outer.get("transfer-send", {}).get("sent", 0), a=inner.get("transfer-receive", {}).get("arrived", 0),
            lo=inner.get("inner-runner", {}).get("loaded", 0), q=inner.get("inner-runner", {}).get("quarantined", 0),
            d=sum(h.get("duplicate", 0) for h in inner.values())))
    lines.append(f"alert mails 告警郵件: {status['mails']} in {status['mail_dir']}")
    return "\n".join(lines)


def wait_heartbeats(layout: Layout, *, timeout: float, poll: float = 0.5) -> list[str]:
    """Until every daemon has written a heartbeat since its program started; returns those that have not.

    supervisord calls a program RUNNING once it has lived `startsecs`; on a busy machine a
    daemon may still be importing then, and fail later (a port taken, a bad config). Its
    first heartbeat comes after its start-up, so this is the real "it works".
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        info = process_info(layout) or []
        beats: dict[str, dict] = {}
        for zone, path in (("outer", layout.outer_config), ("inner", layout.inner_config)):
            beats[zone] = _zone_rows(path)[0]
        missing = []
        for p in info:
            daemon = HEARTBEATS.get(p["name"], (None, None))[0]
            if daemon is None:
                continue
            zone = zone_of(p["name"])
            beat = beats["outer" if zone == "appliance" else zone].get(daemon)
            if p["statename"] != "RUNNING" or beat is None or datetime.fromisoformat(beat["at"]).timestamp() < p["start"]:
                missing.append(f"{p['name']} ({p['statename']})")
        gave_up = any(p["statename"] == "FATAL" for p in info)  # supervisord stopped retrying it
        if not missing or gave_up or time.monotonic() > deadline:
            return missing
        time.sleep(poll)
