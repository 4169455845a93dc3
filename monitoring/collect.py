"""Gathering what the checks look at: the zone database, the live feed, psutil, supervisor,
systemd and the PKI files. Everything impure lives here, so the checks stay pure.

The database is the record: heartbeats (daemon_status) and provenance events are read from it
every cycle, so a monitor that was down misses nothing. The feed only adds what the database
has not got yet; a heartbeat is kept if it is newer than what the database says, which makes
taking the same heartbeat twice harmless. Events are counted from the database only (read in
id order), never from the feed, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import subprocess
import time
import xmlrpc.client  # nosec B411
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, func, inspect, select

from tgw_common.config import Config
from tgw_common.db import transaction
from tgw_common.events import DaemonStatusRow, EventRow

from .checks.base import drop_counter
from .snapshot import CertInfo, CrlInfo, DaemonSeen, DiskUse, PkiView, ProcessState, Snapshot
from .store import MonitorStore
from .tracker import EnvelopeTracker

log = logging.getLogger(__name__)

BATCH = 5000
# An id skipped in a read may belong to a transaction still committing (PostgreSQL hands out
# ids before commit); it is looked for again for this long, then taken as rolled back.
HOLE_SECONDS = 60.0
# A feed heartbeat dated this far ahead of the monitor's clock is ignored: it would hide a
# dead daemon for as long as it claims.
FUTURE_SLACK = timedelta(seconds=60)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        when = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else None


def heartbeat_from_body(body: dict[str, Any]) -> DaemonSeen | None:
    """A DaemonSeen from a feed message (the same dict DaemonStatusRow.as_dict() gives), or None."""
    at, started = _parse_time(body.get("at")), _parse_time(body.get("started_at"))
    name = body.get("daemon")
    if not isinstance(name, str) or not name or at is None or started is None:
        return None
    state = body.get("state")
    return DaemonSeen(name=name[:64], zone=str(body.get("zone", "")), host=str(body.get("host", "")),
                      session=str(body.get("session", ""))[:64], started_at=started, at=at,
                      state=state if isinstance(state, dict) else {})


class Collector:
    def __init__(self, config: Config, engine: Engine, store: MonitorStore, *, started_at: datetime) -> None:
        self.config = config
        self.monitor = config.monitor
        self.engine = engine
        self.store = store
        self.started_at = started_at
        self.tracker = EnvelopeTracker()
        self.live: dict[str, DaemonSeen] = {}
        self.cursor = 0
        self.holes: dict[int, datetime] = {}
        self.sessions: dict[str, dict[str, datetime]] = {}
        self.drop_samples: dict[str, deque[tuple[datetime, int]]] = {}
        self._pki: PkiView | None = None
        self._pki_error: str | None = None
        self._supervisor: xmlrpc.client.ServerProxy | None = None
        # CPU busy time samples (monotonic seconds, busy, total): an average over
        # monitor.cpu_window_seconds, because one instant says little about a busy machine.
        self._cpu: deque[tuple[float, float, float]] = deque(maxlen=10_000)

    # --- start-up: rebuild what memory held before the restart
    def startup(self, now: datetime) -> None:
        lookback = now - timedelta(hours=self.monitor.stuck_lookback_hours)
        with transaction(self.engine) as s:
            top = s.scalar(select(func.max(EventRow.id))) or 0
            for hop, event, n in s.execute(select(EventRow.hop, EventRow.event, func.count())
                                           .where(EventRow.id <= top).group_by(EventRow.hop, EventRow.event)):
                self.tracker.event_counts[(hop, event)] = n
        last = 0
        while True:
            with transaction(self.engine) as s:
                batch = [r._asdict() for r in s.execute(
                    _EVENT_COLUMNS.where(EventRow.id > last, EventRow.id <= top, EventRow.at >= lookback)
                    .order_by(EventRow.id).limit(BATCH))]
            for ev in batch:
                self.tracker.apply(ev, live=False)
            if len(batch) < BATCH:
                break
            last = batch[-1]["id"]
        self.cursor = top
        for daemon, session, started_at in self.store.sessions_since(now - timedelta(hours=2)):
            self.sessions.setdefault(daemon, {})[session] = started_at

    # --- the live feed
    def take_heartbeat(self, body: dict[str, Any], now: datetime) -> bool:
        seen = heartbeat_from_body(body)
        if seen is None or seen.at > now + FUTURE_SLACK:
            return False
        held = self.live.get(seen.name)
        if held is None or seen.at > held.at:
            self.live[seen.name] = seen
        return True

    # --- events, incrementally
    def read_events(self, now: datetime) -> int:
        taken = 0
        with transaction(self.engine) as s:
            if self.holes:
                for r in s.execute(_EVENT_COLUMNS.where(EventRow.id.in_(list(self.holes)))):
                    self.holes.pop(r.id, None)
                    self.tracker.apply(r._asdict())
                    taken += 1
            for _ in range(20):  # bounded per cycle; the rest next time
                rows = s.execute(_EVENT_COLUMNS.where(EventRow.id > self.cursor).order_by(EventRow.id).limit(BATCH)).all()
                for r in rows:
                    for missing in range(self.cursor + 1, r.id):
                        self.holes.setdefault(missing, now)
                    self.cursor = max(self.cursor, r.id)
                    self.tracker.apply(r._asdict())
                    taken += 1
                if len(rows) < BATCH:
                    break
        expired = [i for i, t in self.holes.items() if (now - t).total_seconds() > HOLE_SECONDS]
        for i in expired:
            del self.holes[i]
        return taken

    # --- heartbeats, merged
    def daemons(self, now: datetime) -> dict[str, DaemonSeen]:
        with transaction(self.engine) as s:
            rows = {r.daemon: DaemonSeen(name=r.daemon, zone=r.zone, host=r.host, session=r.session,
                                         started_at=r.started_at, at=r.at, state=dict(r.state or {}))
                    for r in s.scalars(select(DaemonStatusRow))}
        for name, seen in self.live.items():
            if name not in rows or seen.at > rows[name].at:
                rows[name] = seen
        self._note_sessions(rows, now)
        self._note_drops(rows, now)
        return rows

    def _note_sessions(self, daemons: dict[str, DaemonSeen], now: datetime) -> None:
        new = {}
        for name, seen in daemons.items():
            known = self.sessions.setdefault(name, {})
            if seen.session and seen.session not in known:
                known[seen.session] = seen.started_at
                new[name] = (seen.session, seen.started_at)
        self.store.note_sessions(new, now)
        cut = now - timedelta(hours=2)
        for name in self.sessions:
            self.sessions[name] = {k: t for k, t in self.sessions[name].items() if t >= cut}

    def _note_drops(self, daemons: dict[str, DaemonSeen], now: datetime) -> None:
        keep = timedelta(seconds=2 * self.monitor.udp_drop_window_seconds)
        for name, seen in daemons.items():
            value = drop_counter(seen.state)
            if value is None:
                continue
            samples = self.drop_samples.setdefault(name, deque(maxlen=10_000))
            if not samples or seen.at > samples[-1][0]:
                samples.append((seen.at, int(value)))
            while samples and samples[0][0] < now - keep:
                samples.popleft()

    # --- supervisor and systemd
    def process_states(self) -> dict[str, list[ProcessState]]:
        out: dict[str, list[ProcessState]] = {}
        for watch in self.monitor.daemons:
            if watch.supervisor_program and self.monitor.supervisor_url:
                out.setdefault(watch.name, []).append(self._supervisor_state(watch.supervisor_program))
            if watch.systemd_unit:
                out.setdefault(watch.name, []).append(self._systemd_state(watch.systemd_unit))
        return out

    # XML-RPC goes only to the local supervisord (its unix socket or loopback), never to an
    # untrusted server, which is what bandit's B411 warns about.
    def _supervisor_proxy(self) -> xmlrpc.client.ServerProxy:
        if self._supervisor is None:
            url = self.monitor.supervisor_url
            if url.startswith("unix://"):
                # supervisor's own transport speaks XML-RPC over its UNIX socket.
                from supervisor.xmlrpc import SupervisorTransport

                self._supervisor = xmlrpc.client.ServerProxy(
                    "http://127.0.0.1", transport=SupervisorTransport(None, None, url))
            else:
                self._supervisor = xmlrpc.client.ServerProxy(url)
        return self._supervisor

    def _supervisor_state(self, program: str) -> ProcessState:
        try:
            info = self._supervisor_proxy().supervisor.getProcessInfo(program)
        except xmlrpc.client.Fault as exc:
            return ProcessState("supervisor", program, "UNKNOWN", False, f"supervisor: {exc.faultString}")
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            self._supervisor = None
            return ProcessState("supervisor", program, "UNREACHABLE", False, f"{self.monitor.supervisor_url}: {exc}")
        state = str(info.get("statename", "UNKNOWN"))
        return ProcessState("supervisor", program, state, state == "RUNNING", str(info.get("description", "")))

    def _systemd_state(self, unit: str) -> ProcessState:
        try:
            done = subprocess.run([*self.monitor.systemctl, "is-active", unit], capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ProcessState("systemd", unit, "unknown", False, str(exc))
        state = done.stdout.strip() or "unknown"
        # "active" and "reloading" mean the service is up; anything else is down or starting over.
        return ProcessState("systemd", unit, state, state in ("active", "reloading"), done.stderr.strip()[:300])

    # --- the machine
    def resources(self) -> tuple[list[DiskUse], float, float | None]:
        paths = self.monitor.disk_paths or [self.config.node.data_dir]
        disks = []
        for p in paths:
            where = Path(p)
            while not where.exists() and where != where.parent:
                where = where.parent
            u = psutil.disk_usage(str(where))
            disks.append(DiskUse(str(p), u.percent / 100.0, u.free, u.total))
        return disks, psutil.virtual_memory().percent / 100.0, self._cpu_fraction()

    def _cpu_fraction(self) -> float | None:
        t = psutil.cpu_times()
        total = sum(t)
        busy = total - t.idle - getattr(t, "iowait", 0.0)
        mono = time.monotonic()
        self._cpu.append((mono, busy, total))
        window = self.monitor.cpu_window_seconds
        while len(self._cpu) > 2 and self._cpu[1][0] <= mono - window:
            self._cpu.popleft()
        first = self._cpu[0]
        # Less than a tenth of the window observed: too short to judge (just started).
        if mono - first[0] < window / 10 or total <= first[2]:
            return None
        return max(0.0, min(1.0, (busy - first[1]) / (total - first[2])))

    # --- certificates and CRLs, re-read every cert_check_seconds
    def pki(self, now: datetime) -> PkiView:
        fresh = self._pki and self._pki.loaded_at and (now - self._pki.loaded_at).total_seconds() < self.monitor.cert_check_seconds
        if fresh and self._pki_error is None:
            return self._pki
        try:
            self._pki, self._pki_error = self._load_pki(now), None
        except Exception as exc:  # a missing or broken file is reported as a check error, not a crash
            self._pki_error = f"{type(exc).__name__}: {exc}"
            raise
        return self._pki

    def _load_pki(self, now: datetime) -> PkiView:
        from tgw_common.pki.certs import common_name, fingerprint, load_certificates_file

        view = PkiView(loaded_at=now)
        cfg = self.config

        def add(kind: str, cert, **detail) -> None:
            view.certificates.append(CertInfo(kind, common_name(cert.subject), fingerprint(cert),
                                              cert.not_valid_after_utc, detail))

        if cfg.treasury is not None:
            add("treasury", load_certificates_file(cfg.treasury.certificate)[0], file=str(cfg.treasury.certificate))
        if cfg.outer is not None and cfg.outer.tls_certificate is not None:
            add("tls", load_certificates_file(cfg.outer.tls_certificate)[0], file=str(cfg.outer.tls_certificate))
        if cfg.trust is not None:
            from tgw_common.pki.trust import TrustStore

            store = TrustStore.from_config(cfg.trust)
            view.trust_configured = True
            for c in store.anchors:
                add("anchor", c)
            for c in store.intermediates:
                add("intermediate", c)
            for crl in store.crls:
                view.crls.append(CrlInfo(common_name(crl.issuer), crl.last_update_utc, crl.next_update_utc))
            have = {crl.issuer.public_bytes() for crl in store.crls}
            view.cas_without_crl = [common_name(c.subject) for c in [*store.anchors, *store.intermediates]
                                    if c.subject.public_bytes() not in have]
        if inspect(self.engine).has_table("signers"):
            from tgw_common.registry import SignerRegistry

            for signer in SignerRegistry(self.engine).list(include_revoked=False):
                add("signer", signer.certificate, agency=signer.agency, role=signer.role,
                    delegate=signer.delegate, registered_subject=signer.subject)
        return view

    # --- one snapshot
    def collect(self, now: datetime) -> Snapshot:
        snap = Snapshot(zone=self.config.node.zone, host=self.config.node.host, monitor_started_at=self.started_at,
                        tracker=self.tracker, drop_samples=self.drop_samples)
        try:
            snap.daemons = self.daemons(now)
        except Exception as exc:
            log.exception("cannot read daemon_status")
            snap.unavailable["daemons"] = f"{type(exc).__name__}: {exc}"
            snap.daemons = dict(self.live)
        try:
            self.read_events(now)
        except Exception as exc:
            log.exception("cannot read provenance_events")
            snap.unavailable["events"] = f"{type(exc).__name__}: {exc}"
        snap.session_starts = {d: sorted(v.values()) for d, v in self.sessions.items()}
        try:
            snap.process_states = self.process_states()
        except Exception as exc:
            snap.unavailable["process_states"] = f"{type(exc).__name__}: {exc}"
        try:
            snap.disks, snap.memory_fraction, snap.cpu_fraction = self.resources()
        except Exception as exc:
            snap.unavailable["resources"] = f"{type(exc).__name__}: {exc}"
        try:
            snap.pki = self.pki(now)
        except Exception as exc:
            snap.unavailable["pki"] = f"{type(exc).__name__}: {exc}"
        try:
            from .checks.replication import gather

            snap.replication = gather(self.config, self.engine)
        except Exception as exc:
            snap.unavailable["replication"] = f"{type(exc).__name__}: {exc}"
        try:
            from .checks.runners import gather as runners

            snap.runners = runners(self.config, self.engine, now)
        except Exception as exc:
            snap.unavailable["runners"] = f"{type(exc).__name__}: {exc}"
        return snap

    def housekeeping(self, now: datetime) -> None:
        self.tracker.prune(now - timedelta(hours=self.monitor.stuck_lookback_hours))


# Plain rows rather than ORM objects: replaying a week of events is several times faster.
_EVENT_COLUMNS = select(EventRow.id, EventRow.at, EventRow.hop, EventRow.event, EventRow.sha256,
                        EventRow.tracking_id, EventRow.envelope_id, EventRow.detail)
