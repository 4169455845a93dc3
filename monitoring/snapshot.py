"""Everything the checks look at, gathered once per cycle by the collectors (collect.py).

Checks are pure functions of a Snapshot and the config, so a test builds a Snapshot (or lets
the real collectors build one from a real database) and calls them with any `now` it likes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .tracker import EnvelopeTracker


@dataclass
class DaemonSeen:
    """The newest heartbeat of one daemon (from the database or the live feed)."""

    name: str
    zone: str
    host: str
    session: str
    started_at: datetime
    at: datetime
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessState:
    """What supervisor or systemd says about a daemon's process."""

    source: str  # supervisor | systemd
    name: str  # program or unit name
    state: str  # RUNNING / active, or what it is instead
    running: bool
    detail: str = ""


@dataclass(frozen=True)
class DiskUse:
    path: str
    used_fraction: float
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class CertInfo:
    kind: str  # treasury | tls | anchor | intermediate | signer
    subject: str
    fingerprint: str
    not_after: datetime
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class CrlInfo:
    issuer: str
    this_update: datetime
    next_update: datetime | None


@dataclass
class PkiView:
    certificates: list[CertInfo] = field(default_factory=list)
    crls: list[CrlInfo] = field(default_factory=list)
    cas_without_crl: list[str] = field(default_factory=list)
    trust_configured: bool = False
    loaded_at: datetime | None = None


@dataclass
class Snapshot:
    zone: str
    host: str  # the monitor's host
    monitor_started_at: datetime
    daemons: dict[str, DaemonSeen] = field(default_factory=dict)
    session_starts: dict[str, list[datetime]] = field(default_factory=dict)  # daemon -> start times known
    tracker: EnvelopeTracker = field(default_factory=EnvelopeTracker)
    process_states: dict[str, list[ProcessState]] = field(default_factory=dict)  # daemon -> states
    disks: list[DiskUse] = field(default_factory=list)
    memory_fraction: float | None = None
    cpu_fraction: float | None = None
    # Counter samples from heartbeats (udp drops): daemon -> (time, value) oldest first.
    drop_samples: dict[str, deque[tuple[datetime, int]]] = field(default_factory=dict)
    pki: PkiView | None = None
    replication: Any = None  # tgw_common.replication.ReplicationView on PostgreSQL (checks/replication.py)
    runners: Any = None  # checks.runners.RunnersView in the inner zone, once its runner tables exist
    # Inputs that could not be gathered this cycle: check name -> error text.
    unavailable: dict[str, str] = field(default_factory=dict)
