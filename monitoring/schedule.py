"""Operating windows (e.g. weekdays 08:00-18:00 Asia/Taipei): when a check's alerts may be mailed.

A window whose end is not after its start runs over midnight (22:00-06:00); its `days` name
the day it starts on. Holidays close the window for the whole day it starts on.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tgw_common.config import ScheduleConfig

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(text: str) -> timedelta:
    hh, mm = text.split(":")
    return timedelta(hours=int(hh), minutes=int(mm))


class Window:
    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self.days = {_DAYS.index(d) for d in config.days}
        self.holidays = {date.fromisoformat(h) for h in config.holidays}
        self.start = _clock(config.start)
        self.end = _clock(config.end)
        if self.end <= self.start:
            self.end += timedelta(days=1)

    def _opening(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.days or day in self.holidays:
            return None
        midnight = datetime.combine(day, time(0), tzinfo=self.zone)
        # Adding a timedelta to an aware datetime is wall-clock arithmetic: right for Taipei (no DST).
        return midnight + self.start, midnight + self.end

    def opened_at(self, now: datetime) -> datetime | None:
        """When the window that contains `now` opened, or None if `now` is outside every window."""
        local = now.astimezone(self.zone)
        for back in (0, 1):  # an overnight window may have opened yesterday
            span = self._opening(local.date() - timedelta(days=back))
            if span and span[0] <= local < span[1]:
                return span[0]
        return None

    def is_open(self, now: datetime) -> bool:
        return self.opened_at(now) is not None

    def describe(self) -> str:
        c = self.config
        return f"{','.join(c.days)} {c.start}-{c.end} {c.timezone}"
