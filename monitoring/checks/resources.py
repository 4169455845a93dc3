"""The machine: disk, memory and CPU (psutil, gathered by the collector)."""

from __future__ import annotations

from datetime import datetime

from ..hops import HOST_HOP
from ..model import Alert
from ..snapshot import Snapshot
from ..text import percent, size
from .base import CheckEnv


def disk(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    m = env.monitor
    alerts = []
    for d in snap.disks:
        if d.used_fraction >= m.disk_critical_fraction:
            sev = "critical"
        elif d.used_fraction >= m.disk_warn_fraction:
            sev = "warning"
        else:
            continue
        alerts.append(Alert(
            zone=env.zone, hop=HOST_HOP, check="disk", host=env.host, subject=d.path, severity=sev,
            summary_zh=f"{d.path} 已使用 {percent(d.used_fraction)}，剩 {size(d.free_bytes)}",
            summary_en=f"{d.path}: {percent(d.used_fraction)} used, {size(d.free_bytes)} free",
            facts={"used_fraction": round(d.used_fraction, 4), "free_bytes": d.free_bytes,
                   "warn": m.disk_warn_fraction, "critical": m.disk_critical_fraction},
        ))
    return alerts


def memory(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    m, used = env.monitor, snap.memory_fraction
    if used is None or used < m.memory_warn_fraction:
        return []
    return [Alert(
        zone=env.zone, hop=HOST_HOP, check="memory", host=env.host,
        severity="critical" if used >= m.memory_critical_fraction else "warning",
        summary_zh=f"記憶體已使用 {percent(used)}", summary_en=f"memory {percent(used)} used",
        facts={"used_fraction": round(used, 4), "warn": m.memory_warn_fraction, "critical": m.memory_critical_fraction},
    )]


def cpu(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    m, used = env.monitor, snap.cpu_fraction
    if used is None or used < m.cpu_warn_fraction:
        return []
    return [Alert(
        zone=env.zone, hop=HOST_HOP, check="cpu", host=env.host, severity="warning",
        summary_zh=f"CPU 使用率 {percent(used)}", summary_en=f"CPU {percent(used)} busy",
        facts={"used_fraction": round(used, 4), "warn": m.cpu_warn_fraction},
    )]
