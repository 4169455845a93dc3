"""`tgw monitor status` and `tgw monitor alerts`: the monitor's picture, read from the zone database.

Status shows the view the running monitor saved at the end of its last cycle (the same data
/metrics serves) plus the current alert states, so it answers "what does the monitor see",
and says so plainly when the monitor is not running and the picture is old.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from .model import AlertState
from .text import duration_en, local_time

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime, display_tz: str) -> datetime:
    """'90m', '2h', '7d', '1w', or an ISO date/time (local time in display_tz when it has no offset)."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: give e.g. 30m, 2h, 7d, 2026-03-01 or 2026-03-01T08:00+08:00") from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(display_tz))


def stale_after(interval_seconds: float) -> float:
    """A saved picture older than this means the monitor is not running (three missed cycles)."""
    return 3 * interval_seconds + 30


def status_data(saved: tuple[datetime, dict[str, Any]] | None, alerts: list[AlertState], now: datetime,
                interval_seconds: float) -> dict[str, Any]:
    at, view = saved if saved else (None, {})
    age = (now - at).total_seconds() if at else None
    running = age is not None and age <= stale_after(interval_seconds)
    current = [a.as_dict() for a in alerts if a.state in ("pending", "firing")]
    firing = [a for a in current if a["state"] == "firing"]
    return {"monitor": {"running": running, "snapshot_at": at.isoformat() if at else None, "snapshot_age_seconds": age},
            "firing": len(firing), "pending": len(current) - len(firing), "alerts": current,
            "hops": view.get("hops", []), "daemons": view.get("daemons", []), "transfer": view.get("transfer", {}),
            "resources": view.get("resources", {}), "certificates": view.get("certificates", []),
            "crls": view.get("crls", []), "unavailable": view.get("unavailable", {})}


def _num(v: Any, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _age(v: float | None) -> str:
    return "-" if v is None else duration_en(v)


def _console() -> Console:
    # Piped into a log or a mail the output has no terminal: 160 columns keep the tables readable.
    return Console(width=shutil.get_terminal_size((160, 40)).columns)


def print_status(data: dict[str, Any], *, zone: str, display_tz: str, console: Console | None = None) -> None:
    console = console or _console()
    mon = data["monitor"]
    if not mon["running"]:
        when = mon["snapshot_at"] or "never"
        console.print(f"[bold red]監控程式未執行或已停止 monitor not running[/] (last cycle: {when})")
    head = "[bold red]" if data["firing"] else "[bold green]"
    console.print(f"{head}區域 zone {zone}: 告警中 firing {data['firing']}, 等待中 pending {data['pending']}[/]")

    hops = Table(title="各站 Hops", title_justify="left")
    for col in ("站 hop", "佇列 depth", "最舊 oldest", "在站信封 open", "p50 (24h)", "p95 (24h)", "來源 source"):
        hops.add_column(col)
    for h in data["hops"]:
        lat = h.get("latency_24h") or {}
        hops.add_row(h["hop"], _num(h.get("depth")), _age(h.get("oldest_age_seconds")),
                     str(h.get("open_envelopes", 0)), _age(lat.get("p50")), _age(lat.get("p95")), h.get("source", ""))
    console.print(hops)

    daemons = Table(title="程式 Daemons", title_justify="left")
    for col in ("程式 daemon", "狀態 up", "心跳 heartbeat age", "主機 host", "一小時啟動 starts/h", "程序 process"):
        daemons.add_column(col)
    for d in data["daemons"]:
        proc = ", ".join(f"{p['source']}:{p['state']}" for p in d.get("process", [])) or "-"
        daemons.add_row(d["daemon"], "[green]up[/]" if d["up"] else "[red]DOWN[/]", _age(d.get("heartbeat_age_seconds")),
                        d.get("host") or "-", str(d.get("starts_last_hour", 0)), proc)
    console.print(daemons)

    # Alerts as lines, not a table: their text must survive an 80-column terminal whole.
    console.print("[bold]告警 Alerts[/]")
    for a in data["alerts"]:
        state = a["state"]
        if state == "firing" and a.get("inhibited_by"):
            state = "firing (inhibited)"
        elif state == "firing" and a.get("muted"):
            state = "firing (muted)"
        lab = a["labels"]
        colour = "red" if a["state"] == "firing" and a["severity"] == "critical" else "yellow"
        since = datetime.fromisoformat(a["since"] or a["active_since"])
        subject = f" [{lab['subject']}]" if lab.get("subject") else ""
        console.print(f"[{colour}]● {state} {a['severity']}[/] {lab['check']} @ {lab['hop']}{subject} "
                      f"host={lab['host']} since {local_time(since, display_tz)}", soft_wrap=True)
        console.print(f"    {a['summary_zh']}", soft_wrap=True)
        console.print(f"    {a['summary_en']}", soft_wrap=True)
    if not data["alerts"]:
        console.print("  沒有告警 no alerts")
    if data["unavailable"]:
        for name, err in data["unavailable"].items():
            console.print(f"[yellow]無法讀取 unavailable[/] {name}: {err}")


def print_history(rows: list[dict[str, Any]], *, display_tz: str, console: Console | None = None) -> None:
    console = console or _console()
    table = Table(title="告警歷史 Alert history (newest first)", title_justify="left")
    for col in ("時間 time", "狀態 state", "嚴重度 severity", "檢查 check", "站 hop", "對象 subject", "主機 host", "摘要 summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        lab = r["labels"]
        table.add_row(local_time(datetime.fromisoformat(r["at"]), display_tz), r["state"], r["severity"], lab["check"],
                      lab["hop"], lab["subject"], lab["host"], f"{r['summary_zh']}\n{r['summary_en']}")
    console.print(table)


def print_notifications(rows: list[dict[str, Any]], *, display_tz: str, console: Console | None = None) -> None:
    console = console or _console()
    table = Table(title="通知紀錄 Notifications (newest first)", title_justify="left")
    for col in ("時間 time", "種類 kind", "原因 reason", "結果 result", "主旨 subject", "錯誤 error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(local_time(datetime.fromisoformat(r["at"]), display_tz), r["kind"], r["reason"], r["result"],
                      r["subject"], r.get("error") or "")
    console.print(table)
