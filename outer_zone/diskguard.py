"""The disk-space guard: refuse new uploads before the spool's disk runs full.

A refused upload costs the agency a retry; a full disk would cost the files already
accepted (a half-written spool, a database that cannot commit). So the guard refuses
while there is still room, and never deletes anything to make room.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tgw_common.config import OuterConfig
from tgw_common.reasons import Layer, Refusal


@dataclass(frozen=True)
class DiskState:
    free: int
    total: int

    @property
    def free_fraction(self) -> float:
        return self.free / self.total if self.total else 0.0


def disk_state(path: Path) -> DiskState:
    usage = shutil.disk_usage(path)
    return DiskState(free=usage.free, total=usage.total)


def check_room(cfg: OuterConfig, incoming_bytes: int = 0) -> DiskState:
    """Raise DISK_FULL unless the outbound spool's disk keeps its reserve after `incoming_bytes`."""
    state = disk_state(cfg.outbound)
    after = state.free - incoming_bytes
    if after < cfg.min_free_bytes or (state.total and after / state.total < cfg.min_free_fraction):
        raise Refusal("DISK_FULL", Layer.UPLOAD,
                      f"系統儲存空間不足，請稍後再試 / the gateway's disk is nearly full "
                      f"({state.free // (1024 * 1024)} MiB free); try again later")
    return state
