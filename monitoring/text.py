"""Small formatting helpers shared by checks, mails and the status table."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def duration_en(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def duration_zh(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} 天 {hours} 小時"
    if hours:
        return f"{hours} 小時 {minutes} 分"
    if minutes:
        return f"{minutes} 分 {secs} 秒"
    return f"{secs} 秒"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def local_time(when: datetime | None, zone: str) -> str:
    """`2026-03-02 09:15:04 (Asia/Taipei) = 01:15:04Z`: local for people, UTC for logs."""
    if when is None:
        return "-"
    local = when.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} ({zone}) = {when.astimezone(ZoneInfo('UTC')):%H:%M:%S}Z"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"
