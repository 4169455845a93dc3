"""`tgw transfer receive`: the inner end of the one-way link.

Three threads, each with one job:
- the receiving thread only takes datagrams from the socket into a queue, so the
  kernel's buffer is emptied as fast as Python can (loss on a one-way link happens in
  the receiver's kernel queue);
- the runner's loop (this module) checks each datagram, feeds the assembler, tracks
  sequence numbers and the sender's ledger, and hands finished files on;
- the keeper (keeper.py) verifies, publishes and writes the database.
The socket is shut for writing: this process cannot send a packet.

Several receivers may serve one link (docs/transfer.md, "Standby receiver"): the one holding
the active lock (active_lock.py) binds the port and publishes; the others are standbys that
poll for the lock, and only once they hold it load the ledger and bind. A receiver whose lock
session is lost stops publishing, lets the port go and is a standby again.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from tgw_common.config import Config
from tgw_common.db import make_engine, utcnow
from tgw_common.events import Provenance
from tgw_common.runner import Runner

from . import wire
from .active_lock import ActiveLock
from .assembly import Assembler, Assembly
from .common import SAFE_NAME, disk_free, parse_address
from .gaps import GapTracker
from .keeper import HOP, Keeper, is_resolved_in_db, load_state
from .netstat import kernel_counters

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RECV_BYTES = 9216  # larger than any datagram we make (jumbo payload + header)
RESOLVED_WINDOW = 500_000  # resolved numbers kept in memory; older ones are asked of the database
# A standby beats under its own name, so the monitor's daemon-down check for the receiver
# follows the active one only; that name falling silent means no standby is waiting (it
# died, or took over and the failed receiver has not come back as a standby yet).
STANDBY_NAME = f"{HOP}-standby"
BIND_TRIES = 10


class ReceiveOnlySocket:
    """Bound, with a large receive buffer, and shut for writing (sendto fails with EPIPE)."""

    def __init__(self, listen: str, buffer_bytes: int) -> None:
        family, address = parse_address(listen)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.requested = buffer_bytes
        try:
            # As root the buffer may exceed net.core.rmem_max; otherwise the kernel caps it.
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            self.forced = True
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            self.forced = False
        self.sock.bind(address)
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        # Linux reports twice the size asked for (it counts its bookkeeping overhead).
        self.granted = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.inode = os.fstat(self.sock.fileno()).st_ino
        self.port = self.sock.getsockname()[1]


class ReceivingThread(threading.Thread):
    """Takes datagrams off the socket into a bounded queue; does nothing else."""

    def __init__(self, rsock: ReceiveOnlySocket, queue: deque, limit: int, wake: threading.Event) -> None:
        super().__init__(name="transfer-recv", daemon=True)
        self.rsock = rsock
        self.queue = queue
        self.limit = limit
        self.wake = wake
        self.idle = False  # set by the consumer while it waits, so the wake-up costs nothing otherwise
        self.stopping = False
        self.datagrams = 0
        self.bytes = 0
        self.drops = 0

    def run(self) -> None:
        recv = self.rsock.sock.recv
        queue, limit = self.queue, self.limit
        while True:
            try:
                dg = recv(RECV_BYTES)
            except OSError:
                if self.stopping:
                    return
                log.exception("receive failed")
                time.sleep(0.01)
                continue
            if not dg:
                if self.stopping:
                    return
                continue
            self.datagrams += 1
            self.bytes += len(dg)
            if len(queue) >= limit:
                self.drops += 1
                continue
            queue.append(dg)
            if self.idle:
                self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        # Wakes the blocked recv() (it returns b""); nothing is sent.
        with contextlib.suppress(OSError):
            self.rsock.sock.shutdown(socket.SHUT_RD)
        self.join(timeout=5)


class Receiver(Runner):
    name = HOP
    idle_sleep_seconds = 0.0  # the loop waits on the datagram queue (or the standby poll) itself
    slice_seconds = 0.05
    housekeeping_seconds = 0.25

    def __init__(self, config: Config) -> None:
        config.need("transfer_receive")
        self.config = config
        self.cfg = cfg = config.transfer_receive
        engine = make_engine(config.database.url, echo=config.database.echo)
        provenance = Provenance(engine, zone=config.node.zone, host=config.node.host, publish=config.events.publish)
        super().__init__(provenance)
        self.engine = engine
        self.heartbeat_seconds = cfg.heartbeat_seconds
        self.rescan_seconds = 5.0
        # Names this receiver's ledger rows: its staging folder is only reachable from here.
        self.owner = f"{config.node.host}:{cfg.state_dir.resolve()}"
        self.active_lock = ActiveLock(config.database.url, cfg.state_dir / "receive.lock",
                                      application_name=f"tgw transfer receive {config.node.host} {os.getpid()}")
        self.role = "standby"
        self.role_since = utcnow()
        self.takeovers = 0
        self._waited = False  # began as (or fell back to) a standby: becoming active is a takeover
        self._next_lock_check = 0.0
        self._next_poll = 0.0
        self._bind_waits = 0
        self.keeper: Keeper | None = None
        self.rsock: ReceiveOnlySocket | None = None
        self.rx: ReceivingThread | None = None
        self.recovery: dict[str, int] = {}
        self._fresh_state()

    def _fresh_state(self) -> None:
        """What one term as the active receiver keeps in memory; the ledger is in the database."""
        cfg = self.cfg
        self.asm = Assembler(cfg.staging_dir, memory_bytes=cfg.memory_bytes, max_file_bytes=cfg.max_file_bytes)
        self.queue: deque[bytes] = deque()
        self._wake_rx = threading.Event()
        self.tracker: GapTracker | None = None
        self.resolved: set[int] = set()
        self.low = 0
        self._old: dict[int, bool] = {}
        self.verifying: set[int] = set()
        self._reported: OrderedDict[tuple[bytes, int, int], None] = OrderedDict()
        self.bad: collections.Counter[str] = collections.Counter()
        self.counters = {"datagrams_for_done_files": 0, "bad_names": 0, "sender_sessions": 0,
                         "files_abandoned": 0}
        self.sender_session: str | None = None
        self.sender_last_seen: float | None = None
        self._sender_silent = False
        self._last_seq_seen = -1
        self._next_housekeeping = 0.0

    # --- runner hooks
    def startup(self) -> None:
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.active_lock.open()
        if not self.active_lock.try_acquire():
            self._waited = True
            log.info("receiver standby: another receiver is active; polling for the active lock",
                     extra={"listen": self.cfg.listen, "poll_seconds": self.cfg.standby_poll_seconds,
                            "lock": "postgresql" if self.active_lock.postgres else "flock"})
            return
        self._become_active()

    def _become_active(self) -> None:
        cfg = self.cfg
        if not self._bind():
            return
        for d in (cfg.inbound, cfg.staging_dir, cfg.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        # The keeper thread gets its own Provenance: a ZeroMQ socket must not be shared
        # between threads, and the runner's heartbeats go out from this thread.
        keeper_events = Provenance(self.engine, zone=self.config.node.zone, host=self.config.node.host,
                                   publish=self.config.events.publish)
        self.keeper = Keeper(self.engine, keeper_events, inbound=cfg.inbound, staging=cfg.staging_dir,
                             owner=self.owner, fence=self.active_lock.fence if self.active_lock.postgres else None)
        self.recovery = self.keeper.recover()
        # The ledger as the last active receiver left it, before anything is published.
        top, self.resolved, self.low, gaps = load_state(self.engine, RESOLVED_WINDOW)
        self.tracker = GapTracker(max_seen=top, open_gaps=gaps, grace=cfg.gap_grace_seconds,
                                  is_resolved=self._is_resolved)
        self.keeper.start()
        self.rx = ReceivingThread(self.rsock, self.queue, cfg.queue_datagrams, self._wake_rx)
        self.rx.start()
        took_over, self._waited = self._waited, False
        self.role, self.role_since = "active", utcnow()
        self.takeovers += took_over
        self._next_lock_check = time.monotonic() + cfg.standby_poll_seconds
        self._last_heartbeat = 0.0  # the monitor hears of the new active receiver at once
        log.info("receiver ready", extra={"listen": cfg.listen, "rcvbuf_granted": self.rsock.granted,
                                          "rcvbuf_requested": cfg.socket_buffer_bytes, "known_top_seq": top,
                                          "open_gaps": len(gaps), "took_over": took_over, **self.recovery})

    def _bind(self) -> bool:
        """Bind the link's port; datagrams wait in the kernel until the ledger is loaded.

        With the lock held, a busy port is a receiver that lost its lock and lets the port go
        within a poll (or, on two hosts, a floating address on its way): keep the lock and retry.
        Still busy after BIND_TRIES polls, it is some other program: exit, which frees the lock."""
        try:
            self.rsock = ReceiveOnlySocket(self.cfg.listen, self.cfg.socket_buffer_bytes)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) or self._bind_waits >= BIND_TRIES:
                raise
            self._bind_waits += 1
            if self._bind_waits == 1 or not self._bind_waits % 60:
                log.warning("holding the active lock, but the port is not free yet; retrying",
                            extra={"listen": self.cfg.listen, "error": exc.strerror, "tries": self._bind_waits})
            return False
        self._bind_waits = 0
        return True

    def _become_standby(self) -> None:
        """The active lock is lost: another receiver may be active now, so stop publishing."""
        self._stop_active()
        self.role, self.role_since, self._waited = "standby", utcnow(), True
        # Give a healthy standby the first chance at the lock: this receiver's database link
        # has just failed.
        self._next_poll = time.monotonic() + 3 * self.cfg.standby_poll_seconds
        self._fresh_state()
        log.error("receiver lost the active lock: stopped publishing, released the port, standby again",
                  extra={"listen": self.cfg.listen})

    def _stop_active(self) -> None:
        if self.rx is not None:
            self.rx.stop()
            self.rx = None
        if self.keeper is not None:
            if self.active_lock.held:
                self.keeper.stop()
            else:
                self.keeper.halt()
            self.keeper.provenance.close()
            self._drain_results()
            self.keeper = None
        for key in list(self.asm.assemblies):
            self.asm.remove(key)
        if self.rsock is not None:
            self.rsock.sock.close()
            self.rsock = None
        self.active_lock.release()

    def one_iteration(self) -> int:
        if self.role != "active":
            self._stop.wait(self.cfg.standby_poll_seconds)
            if self.stopping or time.monotonic() < self._next_poll:
                return 0
            lock = self.active_lock
            if lock.alive() if lock.held else lock.try_acquire():
                self._become_active()
            return 0
        n = self._receive_slice()
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self.housekeeping_seconds
            self._housekeeping(now)
        if now >= self._next_lock_check:
            self._next_lock_check = now + self.cfg.standby_poll_seconds
            if not self.active_lock.alive():
                self._become_standby()
        return n

    def _receive_slice(self) -> int:
        self._drain_results()
        queue = self.queue
        if not queue:
            self.rx.idle = True
            if not queue:
                self._wake_rx.wait(0.1)
            self._wake_rx.clear()
            self.rx.idle = False
            if 0 < len(queue) < 64:
                # Woken by the first datagram of a burst: let a few more queue up, so the
                # threads do not hand the GIL back and forth for every single datagram.
                time.sleep(0.0005)
        now = time.monotonic()
        self.asm.now = now
        deadline = now + self.slice_seconds
        handle = self._handle
        n = 0
        while queue:
            handle(queue.popleft())
            n += 1
            if not n & 255:
                now = time.monotonic()
                self.asm.now = now
                if now > deadline:
                    break
        return n

    def periodic(self) -> None:
        for a in self.asm.expire(self.cfg.incomplete_timeout_seconds):
            self.counters["files_abandoned"] += 1
            log.warning("incomplete file abandoned (no datagrams for a while)",
                        extra={"seq": a.seq, "blocks_done": a.ndone, "blocks": a.nblocks})
        self.asm.close_idle_files()
        if len(self.resolved) > RESOLVED_WINDOW * 1.2:
            self.low = max(self.resolved) - RESOLVED_WINDOW
            self.resolved = {s for s in self.resolved if s >= self.low}
        if len(self._old) > 100_000:
            self._old.clear()

    def role_state(self) -> dict[str, Any]:
        """Told by both roles, so the console and monitor can tell which host is active."""
        return {"role": self.role, "owner": self.owner, "role_since": self.role_since.isoformat(),
                "takeovers": self.takeovers, "listen": self.cfg.listen,
                "lock": "postgresql advisory lock" if self.active_lock.postgres else "flock"}

    def heartbeat(self) -> None:
        if self.provenance is None:
            return
        if self.role == "active":
            name, state = self.name, {**self.health(), **self.role_state()}
        else:
            name, state = STANDBY_NAME, self.role_state()
        self.provenance.heartbeat(name, session_id=self.session_id, started_at=self.started_at,
                                  pid=os.getpid(), **state)

    def health(self) -> dict[str, Any]:
        rx = self.rx
        state: dict[str, Any] = {
            "listen": self.cfg.listen,
            "rcvbuf_requested": self.cfg.socket_buffer_bytes,
            "rcvbuf_granted": self.rsock.granted if self.rsock else None,
            "rcvbuf_forced": self.rsock.forced if self.rsock else None,
            "datagrams": rx.datagrams if rx else 0,
            "bytes": rx.bytes if rx else 0,
            "queue_depth": len(self.queue),
            "queue_drops": rx.drops if rx else 0,
            "bad_datagrams": dict(self.bad),
            **self.counters,
            **self.asm.counters,
            **(self.keeper.counters if self.keeper else {}),
            "files_in_progress": len(self.asm.assemblies),
            "share_memory_bytes": self.asm.memory,
            "verifying": len(self.verifying),
            "keeper_backlog": self.keeper.backlog() if self.keeper else 0,
            "open_gaps": len(self.tracker.open) if self.tracker else None,
            # The numbers themselves, for the monitor's gap alert (at most 50: the rest are in the table).
            "gap_seqs": sorted(self.tracker.open)[:50] if self.tracker else None,
            "suspects": len(self.tracker.suspects) if self.tracker else None,
            "sender_session": self.sender_session,
            "sender_heartbeat_age": round(time.monotonic() - self.sender_last_seen, 1)
            if self.sender_last_seen else None,
            "sender_silent": self._sender_silent,
            "disk_free": disk_free(self.cfg.inbound),
            "kernel": kernel_counters(inode=self.rsock.inode if self.rsock else None),
        }
        return state

    def shutdown(self) -> None:
        if self.role == "active":
            self._stop_active()
        self.active_lock.close()
        if self.provenance is not None:
            self.provenance.close()

    # --- datagrams
    def _is_resolved(self, seq: int) -> bool:
        if seq >= self.low:
            return seq in self.resolved
        known = self._old.get(seq)
        if known is None:
            known = self._old[seq] = is_resolved_in_db(self.engine, seq)
        return known

    def _handle(self, dg: bytes) -> None:
        try:
            msg = wire.parse(dg)
        except wire.BadDatagram as exc:
            self.bad[str(exc)] += 1
            return
        kind = type(msg)
        if kind is wire.DataHeader:
            seq = msg.seq
            if seq in self.verifying or self._is_resolved(seq):
                self.counters["datagrams_for_done_files"] += 1
                return
            if seq != self._last_seq_seen:
                self._last_seq_seen = seq
                self.tracker.saw(seq, msg.session.hex(), self.asm.now)
            a = self.asm.data(msg, memoryview(dg)[wire.DATA_HEADER_SIZE:])
            if a is not None:
                self._hand_off(a)
        elif kind is wire.Meta:
            self._on_meta(msg)
        else:
            self._on_heartbeat(msg)

    def _on_meta(self, meta: wire.Meta) -> None:
        if not SAFE_NAME.match(meta.name):
            self.counters["bad_names"] += 1
            return
        seq = meta.seq
        if seq in self.verifying or self._is_resolved(seq):
            self.counters["datagrams_for_done_files"] += 1
            key = (meta.session, seq, meta.copy)
            if key not in self._reported and seq not in self.verifying:
                self._reported[key] = None
                if len(self._reported) > 10_000:
                    self._reported.popitem(last=False)
                self.keeper.submit(self.keeper.duplicate_copy, meta)
            return
        self.tracker.saw(seq, meta.session.hex(), self.asm.now)
        a = self.asm.meta(meta)
        if a is not None:
            self._hand_off(a)

    def _hand_off(self, a: Assembly) -> None:
        self.asm.remove(a.key, discard=False)
        part = a.finish()
        self.verifying.add(a.seq)
        # Copies already seen of this file count as reported duplicates, not new ones.
        self._reported[(a.session, a.seq, a.meta.copy)] = None
        self.keeper.submit(self.keeper.publish, a.key, a.meta, part)

    def _on_heartbeat(self, hb: wire.Heartbeat) -> None:
        session = hb.session.hex()
        body = hb.body
        now = time.monotonic()
        if session != self.sender_session:
            if self.sender_session is not None:
                log.warning("new sender session (the sender restarted)",
                            extra={"old": self.sender_session, "new": session})
            self.counters["sender_sessions"] += 1
            self.sender_session = session
        self.sender_last_seen = now
        if self._sender_silent:
            self._sender_silent = False
            log.warning("sender heartbeats are back", extra={"session": session})
        entries = body.get("ledger")
        for fill in self.tracker.ledger(hb.seq, entries if isinstance(entries, list) else [], session, now,
                                        self.verifying):
            self.keeper.submit(self.keeper.fill_gap, *fill)
        if body.get("i") == 0:
            health = body.get("health") if isinstance(body.get("health"), dict) else {}
            state = {**health, "last_seq": hb.seq, "heartbeat_no": body.get("n"),
                     "interval": body.get("interval"), "pid": body.get("pid"), "seen_by": HOP}
            host = body.get("host") if isinstance(body.get("host"), str) else None
            self.keeper.submit(self.keeper.sender_heartbeat, session, body.get("started"), state, host)

    # --- results and timers
    def _drain_results(self) -> None:
        results = self.keeper.results
        while results:
            r = results.popleft()
            self.verifying.discard(r.seq)
            if r.kind == "resolved":
                if r.seq >= self.low:
                    self.resolved.add(r.seq)
                else:
                    self._old[r.seq] = True
                self.tracker.resolved(r.seq)
                self.asm.remove_seq(r.seq)

    def _housekeeping(self, now: float) -> None:
        for sus in self.tracker.due(now, self.verifying):
            self.keeper.submit(self.keeper.open_gap, sus.seq, sus.source, sus.session, sus.name, sus.size,
                               sus.sha256)
        if (self.sender_last_seen is not None and not self._sender_silent
                and now - self.sender_last_seen > self.cfg.heartbeat_timeout_seconds):
            self._sender_silent = True
            log.warning("no sender heartbeat", extra={"seconds": self.cfg.heartbeat_timeout_seconds})
