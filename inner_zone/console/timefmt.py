"""Times as operators read them: Taipei time, and Taipei calendar days for reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TAIPEI = ZoneInfo("Asia/Taipei")


def local(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(TAIPEI).strftime(fmt)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where a Taipei calendar day starts and ends."""
    start = datetime.combine(day, time(0), tzinfo=TAIPEI).astimezone(UTC)
    return start, start + timedelta(days=1)


def taipei_day(value: datetime) -> date:
    return value.astimezone(TAIPEI).date()


def today() -> date:
    return datetime.now(TAIPEI).date()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
