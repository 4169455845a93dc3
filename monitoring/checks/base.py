"""What every check shares: its settings, and reading numbers out of a heartbeat's free-form state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tgw_common.config import DaemonWatch, HopThresholds, MonitorConfig

from ..schedule import Window


@dataclass(frozen=True)
class CheckEnv:
    monitor: MonitorConfig
    zone: str
    host: str
    windows: dict[str, Window] = field(default_factory=dict)

    def thresholds(self, hop: str) -> HopThresholds:
        return self.monitor.hops.get(hop) or HopThresholds()

    def watch(self, daemon: str) -> DaemonWatch | None:
        return next((d for d in self.monitor.daemons if d.name == daemon), None)


def state_number(state: dict[str, Any], *keys: str) -> float | None:
    """The first of `keys` present in a heartbeat state, as a number (a list counts its items).

    Daemons are written by different hands; the monitor accepts the few spellings listed in
    docs/monitoring.md ("Heartbeat state the monitor reads") rather than failing on one.
    """
    for key in keys:
        if key not in state or state[key] is None:
            continue
        value = state[key]
        if isinstance(value, (list, tuple, dict)):
            return float(len(value))
        if isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


DEPTH_KEYS = ("queue_depth", "depth", "queued")
AGE_KEYS = ("oldest_age_seconds", "oldest_age")
GAP_KEYS = ("open_gaps", "gaps_open", "gaps", "gap_count")
DISK_FREE_KEYS = ("disk_free_bytes", "disk_free", "free_bytes")


def drop_counter(state: dict[str, Any]) -> float | None:
    """Datagrams the receiver lost: the kernel's drops for its socket (or, without them, the
    host's Udp RcvbufErrors) plus its own receive queue's overflows. None when not reported."""
    kernel = state.get("kernel") if isinstance(state.get("kernel"), dict) else {}
    parts = [state_number(kernel, "socket_drops", "udp_rcvbuf_errors"),
             state_number(state, "queue_drops"),
             state_number(state, "udp_drops", "drops")]
    found = [p for p in parts if p is not None]
    return sum(found) if found else None
