"""One monitoring cycle: collect -> checks -> notifier -> mail -> store -> status view.

The engine owns no loop and reads no clock: the daemon (daemon.py) calls `cycle(now)` on
its schedule and tests call it with whatever `now` they need, so a test of "stuck for an
hour" or "Saturday 03:00 in Taipei" needs no sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from tgw_common.config import Config
from tgw_common.db import make_engine

from . import mailer
from .checks import ALL_CHECK_LABELS, run_checks
from .checks.base import DEPTH_KEYS, DISK_FREE_KEYS, CheckEnv, state_number
from .checks.daemons import expected_daemons
from .checks.flow import hop_backlog
from .checks.transfer import RECEIVER, drop_increase
from .collect import Collector
from .hops import HOP_NAMES, HOPS, hop_of_daemon
from .model import Notice, Transition
from .notifier import Notifier, NotifierSettings
from .schedule import Window
from .store import MonitorStore

log = logging.getLogger(__name__)

# After a failed SMTP attempt the group waits this long before trying again.
RETRY_SECONDS = 60.0


def config_problems(config: Config) -> list[str]:
    """What in the monitor section names a hop or check this monitor does not know."""
    problems = []
    mon = config.monitor
    for hop in mon.hops:
        if hop not in HOP_NAMES:
            problems.append(f"monitor.hops.{hop}: unknown hop (one of {', '.join(HOP_NAMES)})")
    for check in mon.schedules:
        if check not in ALL_CHECK_LABELS:
            problems.append(f"monitor.schedules.{check}: unknown check (one of {', '.join(ALL_CHECK_LABELS)})")
    for check in mon.disabled_checks:
        if check not in ALL_CHECK_LABELS:
            problems.append(f"monitor.disabled_checks: unknown check {check!r} (one of {', '.join(ALL_CHECK_LABELS)})")
    if mon.daemons and any(d.supervisor_program for d in mon.daemons) and not mon.supervisor_url:
        problems.append("monitor.daemons: supervisor_program given but monitor.supervisor_url is not set")
    return problems


@dataclass
class CycleResult:
    at: datetime
    alerts: int
    transitions: list[Transition] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    delivered: list[tuple[Notice, str]] = field(default_factory=list)  # (notice, result)


class MonitorEngine:
    def __init__(self, config: Config, *, engine: Engine | None = None, started_at: datetime) -> None:
        config.need("monitor")
        self.config = config
        self.mon = config.monitor
        self.zone = config.node.zone
        self.host = config.node.host
        self.db = engine or make_engine(config.database.url, echo=config.database.echo)
        self.store = MonitorStore(self.db, self.zone)
        self.windows = {name: Window(s) for name, s in self.mon.schedules.items()}
        self.env = CheckEnv(self.mon, self.zone, self.host, self.windows)
        self.started_at = started_at
        self.collector = Collector(config, self.db, self.store, started_at=started_at)
        alerts, groups = self.store.load()
        self.notifier = Notifier(NotifierSettings.from_config(self.mon), windows=self.windows,
                                 alerts=alerts, groups=groups)
        self.notification_counts: Counter[tuple[str, str]] = Counter()  # (kind, result)
        self.cycles = 0
        self.cycle_errors = 0
        self.last_cycle_seconds = 0.0
        self.view: dict[str, Any] = {}
        self.lock = threading.Lock()  # the metrics thread reads what the loop writes
        self._retry_after: dict[str, datetime] = {}
        self._unsaved: list[Transition] = []

    def start(self, now: datetime) -> None:
        self.collector.startup(now)

    def take(self, topic: str, body: dict[str, Any], now: datetime) -> None:
        """One message from the live feed."""
        if topic == "heartbeat":
            self.collector.take_heartbeat(body, now)

    def cycle(self, now: datetime) -> CycleResult:
        snap = self.collector.collect(now)
        alerts, evaluated = run_checks(snap, self.env, now)
        transitions = self.notifier.update(now, alerts, evaluated)
        self.notifier.prune(now)
        # Transitions not yet in the history (an earlier save failed) go with this cycle's.
        self._unsaved += transitions
        self.store.save_cycle(list(self.notifier.alerts.values()), self._unsaved, set(self.notifier.forgotten))
        self._unsaved = []
        self.notifier.forgotten.clear()
        for t in transitions:
            log.info("alert %s", t.to_state, extra={"labels": t.alert.labels, "severity": t.alert.severity,
                                                     "summary": t.alert.summary_en})
        result = CycleResult(at=now, alerts=len(alerts), transitions=transitions)
        for notice in self.notifier.plan(now):
            result.notices.append(notice)
            outcome = self._deliver(notice, now)
            if outcome:
                result.delivered.append((notice, outcome))
        view = self._view(snap, now)
        with self.lock:
            self.view = view
            self.cycles += 1
        self.store.save_snapshot(now, view)
        return result

    def _deliver(self, notice: Notice, now: datetime) -> str | None:
        retry = self._retry_after.get(notice.group_key)
        if retry and now < retry:
            return None
        smtp = self.mon.smtp
        msg = mailer.compose(notice, smtp, zone=self.zone, display_tz=self.mon.display_timezone)
        subject = str(msg["Subject"])
        if not smtp.recipients:
            log.warning("no smtp.recipients: notice logged, not mailed", extra={"subject": subject})
            entry = self.notifier.sent(notice, now)
            self.store.record_notice(entry, notice, result="skipped", mail_subject=subject, recipients=[],
                                     error="smtp.recipients is empty")
            self.notification_counts[(notice.kind, "skipped")] += 1
            return "skipped"
        try:
            refused = mailer.send(msg, smtp)
        except mailer.MailError as exc:
            log.error("alert mail failed", extra={"error": str(exc), "group": notice.group_key})
            self._retry_after[notice.group_key] = now + timedelta(seconds=RETRY_SECONDS)
            self.store.record_notice(None, notice, result="failed", mail_subject=subject,
                                     recipients=list(smtp.recipients), error=str(exc))
            self.notification_counts[(notice.kind, "failed")] += 1
            return "failed"
        self._retry_after.pop(notice.group_key, None)
        entry = self.notifier.sent(notice, now)
        self.store.record_notice(entry, notice, result="sent", mail_subject=subject, recipients=list(smtp.recipients),
                                 error=f"refused: {refused}" if refused else None)
        self.notification_counts[(notice.kind, "sent")] += 1
        log.info("alert mail sent", extra={"subject": subject, "kind": notice.kind, "group": notice.group_key})
        return "sent"

    def housekeeping(self, now: datetime) -> None:
        self.collector.housekeeping(now)
        self.store.prune(now, keep_days=self.mon.history_keep_days)

    # --- the status view: what /metrics and `tgw monitor status` show
    def _view(self, snap, now: datetime) -> dict[str, Any]:
        tracker = snap.tracker
        day_ago = now - timedelta(days=1)
        hops = []
        for hop in HOPS:
            depth, age, source, _host = hop_backlog(snap, hop, now)
            events = {e: n for (h, e), n in tracker.event_counts.items() if h == hop.name}
            hops.append({"hop": hop.name, "title_zh": hop.title_zh, "depth": depth, "oldest_age_seconds": age,
                         "source": source, "open_envelopes": len(tracker.open_in(hop.name)),
                         "latency_24h": tracker.latency_quantiles(hop.name, day_ago), "events": events,
                         "latency_histogram": {"counts": list(tracker.latency[hop.name].counts),
                                               "sum": tracker.latency[hop.name].total,
                                               "count": tracker.latency[hop.name].n},
                         "last_activity": _iso(tracker.last_activity.get(hop.name))})
        names = sorted(set(expected_daemons(snap, self.env)) | set(snap.daemons))
        hour_ago = now - timedelta(hours=1)
        daemons = []
        for name in names:
            seen = snap.daemons.get(name)
            watch = self.env.watch(name)
            timeout = (watch.heartbeat_timeout_seconds if watch and watch.heartbeat_timeout_seconds
                       else self.mon.heartbeat_timeout_seconds)
            age = (now - seen.at).total_seconds() if seen else None
            daemons.append({
                "daemon": name, "hop": hop_of_daemon(name), "host": seen.host if seen else None,
                "up": age is not None and age <= timeout, "heartbeat_age_seconds": age,
                "session": seen.session if seen else None, "started_at": _iso(seen.started_at if seen else None),
                "starts_last_hour": len([t for t in snap.session_starts.get(name, []) if t > hour_ago]),
                "process": [{"source": p.source, "name": p.name, "state": p.state, "running": p.running}
                            for p in snap.process_states.get(name, [])],
                "state": seen.state if seen else {},
            })
        receiver = snap.daemons.get(RECEIVER)
        transfer = {}
        if receiver:
            from .checks.base import GAP_KEYS, drop_counter

            grown, _ = drop_increase(snap.drop_samples.get(RECEIVER, ()), now, self.mon.udp_drop_window_seconds)
            transfer = {"open_gaps": state_number(receiver.state, *GAP_KEYS),
                        "udp_drops": drop_counter(receiver.state), "udp_drops_in_window": grown}
        for name in ("transfer-send", "outer.transfer-send"):
            if name in snap.daemons:
                st = snap.daemons[name].state
                transfer[name] = {"queue_depth": state_number(st, *DEPTH_KEYS), "last_seq": st.get("last_seq"),
                                  "disk_free_bytes": state_number(st, *DISK_FREE_KEYS),
                                  "last_error": st.get("last_error")}
        pki = snap.pki
        return {
            "zone": self.zone, "host": self.host, "at": now.isoformat(), "monitor_started_at": self.started_at.isoformat(),
            "interval_seconds": self.mon.interval_seconds,
            "hops": hops, "daemons": daemons, "transfer": transfer,
            "other_events": sorted([h, e, n] for (h, e), n in tracker.event_counts.items() if h not in HOP_NAMES),
            "resources": {"disks": [d.__dict__ for d in snap.disks], "memory_fraction": snap.memory_fraction,
                          "cpu_fraction": snap.cpu_fraction},
            "certificates": [{"kind": c.kind, "subject": c.subject, "fingerprint": c.fingerprint,
                              "not_after": c.not_after.isoformat(),
                              "days_left": round((c.not_after - now).total_seconds() / 86400, 1)}
                             for c in (pki.certificates if pki else [])],
            "crls": [{"issuer": c.issuer, "this_update": c.this_update.isoformat(),
                      "next_update": _iso(c.next_update)} for c in (pki.crls if pki else [])],
            "alerts": [a.as_dict() for a in sorted(self.notifier.alerts.values(), key=lambda a: a.active_since)],
            "unavailable": dict(snap.unavailable),
            "notifications": {f"{k}/{r}": n for (k, r), n in self.notification_counts.items()},
            "events_read_cursor": self.collector.cursor,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
