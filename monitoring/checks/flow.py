"""Envelope flow per hop: backlog (depth and age), stuck envelopes, and quiet hops."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..hops import HOPS, Hop
from ..model import Alert
from ..snapshot import DaemonSeen, Snapshot
from ..text import duration_en, duration_zh
from .base import AGE_KEYS, CheckEnv, state_number

# One mail listing hundreds of envelopes helps nobody: beyond this many, one summary alert.
MAX_STUCK_ALERTS_PER_HOP = 25


def _reporter(snap: Snapshot, hop: Hop) -> DaemonSeen | None:
    """The daemon whose heartbeat reports the hop's queue, if any."""
    for name in hop.daemons:
        seen = snap.daemons.get(name)
        if seen and state_number(seen.state, *hop.depth_keys, *AGE_KEYS) is not None:
            return seen
    return None


def hop_backlog(snap: Snapshot, hop: Hop, now: datetime) -> tuple[float | None, float | None, str, str | None]:
    """(depth, oldest age in seconds, source, reporting host) of one hop.

    The daemon's own figures are preferred (it sees its spool); what it does not report is
    taken from the envelopes the provenance events place in the hop (the upload portal has no
    queue of its own, the sender reports no age).
    """
    seen = _reporter(snap, hop)
    depth = state_number(seen.state, *hop.depth_keys) if seen else None
    age = state_number(seen.state, *AGE_KEYS) if seen else None
    sources = [f"heartbeat:{seen.name}"] if seen else []
    if hop.enters and (depth is None or age is None):
        present = snap.tracker.open_in(hop.name)
        if depth is None:
            depth = float(len(present))
        if age is None:
            age = (now - present[0][1].entered_at).total_seconds() if present else 0.0
        sources.append("events")
    return depth, age, "+".join(sources) or "none", seen.host if seen else None


def _level(value: float, warn: float, critical: float) -> str | None:
    if value >= critical:
        return "critical"
    if value >= warn:
        return "warning"
    return None


def backlog(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    for hop in HOPS:
        t = env.thresholds(hop.name)
        depth, age, source, host = hop_backlog(snap, hop, now)
        host = host or env.host
        if depth is not None and (sev := _level(depth, t.warn_depth, t.critical_depth)):
            alerts.append(Alert(
                zone=env.zone, hop=hop.name, check="backlog_depth", host=host, severity=sev,
                summary_zh=f"{hop.title_zh}（{hop.name}）佇列有 {depth:.0f} 個檔案（警告 {t.warn_depth}／嚴重 {t.critical_depth}）",
                summary_en=f"{hop.name}: {depth:.0f} files queued (warning {t.warn_depth}, critical {t.critical_depth})",
                facts={"depth": depth, "warn_depth": t.warn_depth, "critical_depth": t.critical_depth, "source": source},
            ))
        if age is not None and (sev := _level(age, t.warn_age_seconds, t.critical_age_seconds)):
            alerts.append(Alert(
                zone=env.zone, hop=hop.name, check="backlog_age", host=host, severity=sev,
                since=now - timedelta(seconds=age),
                summary_zh=f"{hop.title_zh}（{hop.name}）最舊的檔案已等待 {duration_zh(age)}",
                summary_en=f"{hop.name}: oldest file has waited {duration_en(age)}",
                facts={"oldest_age_seconds": round(age, 1), "warn_age_seconds": t.warn_age_seconds,
                       "critical_age_seconds": t.critical_age_seconds, "source": source},
            ))
    return alerts


def stuck(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    for hop in HOPS:
        limit = env.thresholds(hop.name).stuck_seconds
        late = [(e, p) for e, p in snap.tracker.open_in(hop.name)
                if (now - p.entered_at).total_seconds() > limit]
        for env_, p in late[:MAX_STUCK_ALERTS_PER_HOP]:
            age = (now - p.entered_at).total_seconds()
            names = env_.names()
            who = env_.tracking_id or env_.envelope_id or (env_.sha256 or "")[:16]
            alerts.append(Alert(
                zone=env.zone, hop=hop.name, check="stuck", host=env.host, subject=env_.label(),
                severity="critical", since=p.entered_at,
                summary_zh=f"信封 {who} 於 {hop.title_zh}（{hop.name}）停滯 {duration_zh(age)}（上限 {limit} 秒）",
                summary_en=f"envelope {who} stuck in {hop.name} for {duration_en(age)} (limit {limit} s)",
                facts={**names, "hop": hop.name, "entered_with": p.enter_event,
                       "entered_at": p.entered_at.isoformat(), "age_seconds": round(age, 1), "limit_seconds": limit},
            ))
        if len(late) > MAX_STUCK_ALERTS_PER_HOP:
            more = len(late) - MAX_STUCK_ALERTS_PER_HOP
            alerts.append(Alert(
                zone=env.zone, hop=hop.name, check="stuck", host=env.host, subject="(more)", severity="critical",
                since=late[MAX_STUCK_ALERTS_PER_HOP][1].entered_at,
                summary_zh=f"{hop.name} 另有 {more} 個信封停滯", summary_en=f"{hop.name}: {more} more envelopes stuck",
                facts={"more": more, "tracking_ids": [e.tracking_id for e, _ in late[MAX_STUCK_ALERTS_PER_HOP:][:200]]},
            ))
    return alerts


def idle(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    alerts = []
    window = env.windows.get("idle")
    opened = window.opened_at(now) if window else None
    if window and opened is None:
        return []  # outside operating hours a quiet hop is expected
    for hop in HOPS:
        limit = env.thresholds(hop.name).idle_seconds
        if not limit:
            continue
        last = snap.tracker.last_activity.get(hop.name)
        # Quiet time counts only from when someone could have sent something: the window's
        # opening, and the monitor's own start (it cannot vouch for before).
        ref = max(t for t in (last, opened, snap.monitor_started_at) if t is not None)
        quiet = (now - ref).total_seconds()
        if quiet <= limit:
            continue
        alerts.append(Alert(
            zone=env.zone, hop=hop.name, check="idle", host=env.host, severity="warning", since=ref,
            summary_zh=f"{hop.title_zh}（{hop.name}）已 {duration_zh(quiet)} 沒有任何信封經過",
            summary_en=f"{hop.name}: no envelope for {duration_en(quiet)} during operating hours",
            facts={"last_activity": last.isoformat() if last else None, "quiet_seconds": round(quiet, 1),
                   "idle_seconds": limit, "schedule": window.describe() if window else "always"},
        ))
    return alerts


def quarantine(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    """Envelopes the inner runner set aside: in quarantine (an operator must decide) or held
    (waiting for a fresh CRL). Either needs a person, so each is a warning of its own."""
    seen = snap.daemons.get("inner-runner")
    if seen is None:
        return []
    alerts = []
    for key, zh, en in (("quarantine", "隔離區有 {n:.0f} 個信封待處理", "{n:.0f} envelopes in quarantine await a decision"),
                        ("held", "{n:.0f} 個信封暫停處理（等待新的 CRL）", "{n:.0f} envelopes held (waiting for a fresh CRL)")):
        n = state_number(seen.state, key)
        if n and n > 0:
            alerts.append(Alert(
                zone=env.zone, hop="inner-runner", check="quarantine", host=seen.host, subject=key, severity="warning",
                summary_zh=zh.format(n=n), summary_en=en.format(n=n), facts={key: n},
            ))
    return alerts


def internal_error(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    """Envelopes quarantined as INTERNAL_ERROR: judging them raised an exception no rule
    expected, a defect of the gateway. One critical alert per envelope, naming its tracking
    id, for as long as its quarantine entry is open."""
    seen = snap.daemons.get("inner-runner")
    if seen is None:
        return []
    ids = seen.state.get("internal_errors")
    if not isinstance(ids, list):
        return []
    return [Alert(
        zone=env.zone, hop="inner-runner", check="internal_error", host=seen.host, subject=str(tid),
        severity="critical",
        summary_zh=f"信封 {tid} 處理時發生未預期的程式錯誤（INTERNAL_ERROR），已隔離；請查看執行記錄並回報",
        summary_en=f"envelope {tid} raised an unexpected exception (INTERNAL_ERROR) and was quarantined: "
                   "a defect, see the runner's log",
        facts={"tracking_id": str(tid), "reason": "INTERNAL_ERROR"},
    ) for tid in ids[:MAX_STUCK_ALERTS_PER_HOP]]


def receipt_overdue(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    """Envelopes sent across but never answered by a receipt (loaded, refused or held) within
    outer.receipt_overdue_minutes: lost on the way, or stuck inside. One warning per
    envelope the receipt intake's heartbeat names (the oldest 20), with the total in its facts."""
    seen = snap.daemons.get("outer-receipts")
    if seen is None:
        return []
    ids = seen.state.get("overdue_ids")
    if not isinstance(ids, list):
        return []
    total = state_number(seen.state, "overdue") or len(ids)
    minutes = state_number(seen.state, "overdue_minutes") or 0
    return [Alert(
        zone=env.zone, hop="outer-receipts", check="receipt_overdue", host=seen.host, subject=str(tid),
        severity="warning",
        summary_zh=f"信封 {tid} 已傳送逾 {minutes:.0f} 分鐘仍無收據（共 {total:.0f} 件）",
        summary_en=f"envelope {tid} sent over {minutes:.0f} minutes ago has no receipt ({total:.0f} in all)",
        facts={"tracking_id": str(tid), "overdue": total},
    ) for tid in ids]
