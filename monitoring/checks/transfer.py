"""The one-way link: gaps the receiver found, the sender's own health, receiver UDP drops."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..model import Alert
from ..snapshot import Snapshot
from ..text import size
from .base import DISK_FREE_KEYS, GAP_KEYS, CheckEnv, drop_counter, state_number

RECEIVER = "transfer-receive"
SENDERS = ("transfer-send", "outer.transfer-send")


def transfer_gap(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    receiver = snap.daemons.get(RECEIVER)
    if receiver is None:
        return []
    open_gaps = state_number(receiver.state, *GAP_KEYS)
    recent = list(snap.tracker.recent_gaps)[-10:]
    if open_gaps is None:
        # The receiver does not report a count: fall back to gap events of the last hour.
        hour_ago = now - timedelta(hours=1)
        recent = [g for g in recent if datetime.fromisoformat(g["at"]) >= hour_ago]
        if not recent:
            return []
        return [Alert(
            zone=env.zone, hop=RECEIVER, check="transfer_gap", host=receiver.host, severity="warning",
            since=datetime.fromisoformat(recent[0]["at"]),
            summary_zh=f"過去一小時記錄了 {len(recent)} 筆傳輸缺漏事件",
            summary_en=f"{len(recent)} transfer gap events in the last hour",
            facts={"recent_gap_events": recent},
        )]
    if open_gaps <= 0:
        return []
    listed = receiver.state.get("gap_seqs") or receiver.state.get("missing") or []
    return [Alert(
        zone=env.zone, hop=RECEIVER, check="transfer_gap", host=receiver.host, severity="critical",
        since=datetime.fromisoformat(recent[0]["at"]) if recent else None,
        summary_zh=f"接收端有 {open_gaps:.0f} 個未補齊的傳輸缺漏", summary_en=f"{open_gaps:.0f} open transfer gaps",
        facts={"open_gaps": open_gaps, "missing": listed[:50] if isinstance(listed, list) else listed,
               "recent_gap_events": recent},
    )]


def sender_health(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    floor = env.monitor.sender_min_free_bytes
    for name in SENDERS:
        seen = snap.daemons.get(name)
        if seen is None:
            continue
        free = state_number(seen.state, *DISK_FREE_KEYS)
        if free is not None and free < floor:
            alerts.append(Alert(
                zone=env.zone, hop="transfer-send", check="sender_health", host=seen.host, subject=f"{name}/disk",
                severity="critical" if free < floor / 4 else "warning",
                summary_zh=f"傳送端 {name} 磁碟剩 {size(free)}（下限 {size(floor)}）",
                summary_en=f"sender {name}: {size(free)} disk free (floor {size(floor)})",
                facts={"disk_free_bytes": free, "sender_min_free_bytes": floor, "last_seq": seen.state.get("last_seq")},
            ))
        error = seen.state.get("last_error")
        if error:
            alerts.append(Alert(
                zone=env.zone, hop="transfer-send", check="sender_health", host=seen.host, subject=f"{name}/error",
                severity="warning", summary_zh=f"傳送端 {name} 回報錯誤：{error}",
                summary_en=f"sender {name} reports: {error}", facts={"last_error": str(error)[:500]},
            ))
    return alerts


def drop_increase(samples, now: datetime, window_seconds: float) -> tuple[int, datetime | None]:
    """How much a drop counter grew over the last window (a counter reset counts from zero)."""
    if not samples:
        return 0, None
    start = now - timedelta(seconds=window_seconds)
    before = [s for s in samples if s[0] <= start]
    inside = [s for s in samples if start < s[0] <= now]
    if not inside:
        return 0, None
    base = before[-1] if before else inside[0]
    growth, prev = 0, base[1]
    first_growth = None
    for at, value in inside:
        step = value - prev if value >= prev else value
        if step > 0 and first_growth is None:
            first_growth = at
        growth += step
        prev = value
    return growth, first_growth


def udp_drops(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    receiver = snap.daemons.get(RECEIVER)
    if receiver is None:
        return []
    window = env.monitor.udp_drop_window_seconds
    grown, first = drop_increase(snap.drop_samples.get(RECEIVER, ()), now, window)
    if grown < env.monitor.udp_drops_warn:
        return []
    total = drop_counter(receiver.state)
    return [Alert(
        zone=env.zone, hop=RECEIVER, check="udp_drops", host=receiver.host, severity="warning", since=first,
        summary_zh=f"接收端 {window:g} 秒內丟棄 {grown} 個 UDP 封包",
        summary_en=f"receiver dropped {grown} UDP datagrams in {window:g} s",
        facts={"dropped_in_window": grown, "window_seconds": window, "counter": total},
    )]
