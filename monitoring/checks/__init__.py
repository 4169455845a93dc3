"""The checks: pure functions (snapshot, settings, now) -> alerts that hold now.

`run_checks` runs them all. A check that raises produces a `monitor_check_error` alert and
counts as not evaluated, so the notifier keeps its earlier alerts as they were instead of
mistaking a crash for a recovery. The same holds when an input it needs could not be
gathered this cycle (Snapshot.unavailable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..hops import MONITOR_HOP
from ..model import Alert
from ..snapshot import Snapshot
from . import daemons, flow, pki, replication, resources, runners, transfer
from .base import CheckEnv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckFn:
    name: str
    fn: Callable[[Snapshot, CheckEnv, datetime], list[Alert]]
    produces: tuple[str, ...]  # the `check` labels it may emit
    needs: tuple[str, ...] = ()  # inputs (Snapshot.unavailable keys) it cannot do without


CHECK_FUNCTIONS: tuple[CheckFn, ...] = (
    CheckFn("daemon_down", daemons.daemon_down, ("daemon_down",), ("daemons",)),
    CheckFn("restarts", daemons.restarts, ("restarts",), ("daemons",)),
    CheckFn("process_state", daemons.process_state, ("supervisor_state", "systemd_state"), ("process_states",)),
    CheckFn("backlog", flow.backlog, ("backlog_depth", "backlog_age"), ("daemons", "events")),
    CheckFn("stuck", flow.stuck, ("stuck",), ("events",)),
    CheckFn("idle", flow.idle, ("idle",), ("events",)),
    CheckFn("quarantine", flow.quarantine, ("quarantine",), ("daemons",)),
    CheckFn("internal_error", flow.internal_error, ("internal_error",), ("daemons",)),
    CheckFn("receipt_overdue", flow.receipt_overdue, ("receipt_overdue",), ("daemons",)),
    CheckFn("transfer_gap", transfer.transfer_gap, ("transfer_gap",), ("daemons", "events")),
    CheckFn("sender_health", transfer.sender_health, ("sender_health",), ("daemons",)),
    CheckFn("udp_drops", transfer.udp_drops, ("udp_drops",), ("daemons",)),
    CheckFn("disk", resources.disk, ("disk",), ("resources",)),
    CheckFn("memory", resources.memory, ("memory",), ("resources",)),
    CheckFn("cpu", resources.cpu, ("cpu",), ("resources",)),
    CheckFn("cert_expiry", pki.cert_expiry, ("cert_expiry",), ("pki",)),
    CheckFn("crl", pki.crl_freshness, ("crl_stale", "crl_missing"), ("pki",)),
    CheckFn("replication_lag", replication.replication_lag, ("replication_lag",), ("replication",)),
    CheckFn("runners_idle", runners.runners_idle, ("runners_idle",), ("runners",)),
    CheckFn("runner_down", runners.runner_down, ("runner_down",), ("runners",)),
)

ALL_CHECK_LABELS = tuple(sorted({c for f in CHECK_FUNCTIONS for c in f.produces} | {"monitor_check_error"}))


def run_checks(snap: Snapshot, env: CheckEnv, now: datetime) -> tuple[list[Alert], set[str]]:
    """All alerts that hold at `now`, and the set of check labels that were evaluated."""
    alerts: list[Alert] = []
    evaluated: set[str] = {"monitor_check_error"}
    disabled = set(env.monitor.disabled_checks)
    for check in CHECK_FUNCTIONS:
        if disabled.issuperset(check.produces):
            evaluated.update(check.produces)  # evaluated as "nothing to report": old alerts resolve
            continue
        missing = [n for n in check.needs if n in snap.unavailable]
        if missing:
            reason = "; ".join(f"{n}: {snap.unavailable[n]}" for n in missing)
            alerts.append(_check_error(env, check.name, f"input unavailable: {reason}"))
            continue
        try:
            alerts.extend(a for a in check.fn(snap, env, now) if a.check not in disabled)
        except Exception as exc:  # a bug or odd input in one check must not blind the others
            log.exception("check failed", extra={"check": check.name})
            alerts.append(_check_error(env, check.name, f"{type(exc).__name__}: {exc}"))
            continue
        evaluated.update(check.produces)
    return alerts, evaluated


def _check_error(env: CheckEnv, name: str, error: str) -> Alert:
    return Alert(zone=env.zone, hop=MONITOR_HOP, check="monitor_check_error", host=env.host, subject=name,
                 severity="warning", summary_zh=f"監控檢查 {name} 無法執行：{error}",
                 summary_en=f"monitor check {name} could not run: {error}", facts={"check": name, "error": error[:500]})
