"""The hops of an envelope's journey, in order, and the one table that says when an envelope is "in" a hop.

Every check that reasons about hops (backlog, stuck, idle, inhibition) reads this table, and
docs/monitoring.md prints it; change both together.

An envelope enters a hop when an event named in `enters` is recorded (whatever hop recorded
it: "spooled" is written by the upload portal but puts the file in the sender's queue). It
leaves when an event named in `leaves` is recorded *by that hop* (or by a hop this table does
not know, to be lenient with names): a "duplicate" written by the receiver for a second copy
must not take the first copy out of the inner runner's queue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hop:
    name: str
    zone: str
    title_zh: str
    daemons: tuple[str, ...]  # heartbeat names that report this hop's queue (either zone's view)
    enters: tuple[str, ...]
    leaves: tuple[str, ...]
    # Heartbeat state keys that count the hop's waiting *files* (first one present wins).
    depth_keys: tuple[str, ...] = ("queue_depth", "depth", "queued")


HOPS: tuple[Hop, ...] = (
    Hop("outer-web", "outer", "外部上傳入口", ("outer-web",), enters=("received",), leaves=("spooled", "refused")),
    # Seen from the inner zone, the sender's heartbeats arrive across the link as "outer.transfer-send".
    Hop("transfer-send", "outer", "單向傳送端", ("transfer-send", "outer.transfer-send"),
        enters=("spooled",), leaves=("sent", "refused")),
    # Partial files live only in the receiver's memory and state; its queue comes from its heartbeat,
    # and a file that never completes becomes a "gap" (the transfer_gap check), not a stuck envelope.
    # Its queue_depth counts datagrams, not files: the files it is assembling are its backlog.
    Hop("transfer-receive", "inner", "單向接收端", ("transfer-receive",), enters=(), leaves=(),
        depth_keys=("files_in_progress",)),
    Hop("inner-runner", "inner", "內部處理程序", ("inner-runner",), enters=("arrived", "retried"),
        leaves=("loaded", "quarantined", "refused", "duplicate", "rejected")),
)
HOP_NAMES = tuple(h.name for h in HOPS)
HOP_ORDER = {h.name: i for i, h in enumerate(HOPS)}
BY_NAME = {h.name: h for h in HOPS}

# Daemons that are not an envelope hop still get a hop label (their own name).
_DAEMON_HOP = {d: h.name for h in HOPS for d in h.daemons}

# Labels of alerts that are about the machine or the PKI rather than one hop.
HOST_HOP = "host"
PKI_HOP = "pki"
MONITOR_HOP = "monitor"


def hop_of_daemon(daemon: str) -> str:
    return _DAEMON_HOP.get(daemon, daemon)


def entering(event: str) -> list[str]:
    """The hops an event puts an envelope into."""
    return [h.name for h in HOPS if event in h.enters]


def leaving(event: str, recorded_by: str) -> list[str]:
    """The hops an event takes an envelope out of, given the hop that recorded it."""
    if recorded_by in HOP_ORDER:
        hop = BY_NAME[recorded_by]
        return [hop.name] if event in hop.leaves else []
    return [h.name for h in HOPS if event in h.leaves]


def at_or_downstream(source_hop: str, target_hop: str) -> bool:
    """True when target_hop is source_hop itself or comes after it in envelope order."""
    if source_hop not in HOP_ORDER or target_hop not in HOP_ORDER:
        return False
    return HOP_ORDER[target_hop] >= HOP_ORDER[source_hop]
