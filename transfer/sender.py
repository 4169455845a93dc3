"""`tgw transfer send`: the outer end of the one-way link.

Each loop of the runner: take finished files from the outbound spool and number them,
send a heartbeat if one is due, and put the next slice (about 0.1 s) of the current copy on
the link. Working in slices keeps heartbeats and the watchdog going while a 1 GB file is on
its way; a copy is read one window of blocks at a time, so memory does not grow with the
file. A copy counts as sent (event "sent" or "resent") only once its last datagram is out;
after a kill -9 the interrupted copy simply goes again, under the new session id.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from tgw_common.config import Config
from tgw_common.db import make_engine, transaction, utcnow
from tgw_common.events import Provenance
from tgw_common.instance_lock import InstanceLock
from tgw_common.runner import Runner
from tgw_common.spool import SpoolQueue, publish

from . import wire
from .common import SAFE_NAME, disk_free
from .fec import block_count, block_shape, copy_shares, encode
from .models import SentFile, tracking_id
from .pacing import TokenBucket
from .sender_store import Job, SenderStore, next_due
from .sendsock import SendOnlySocket

log = logging.getLogger(__name__)

HOP = "transfer-send"
META_REPEAT = 3  # META datagrams at the start and at the end of each copy
META_EVERY_WINDOWS = 16  # and one more every so many windows in between
ERROR_BYTES = 300  # of the last error in a heartbeat


def copy_datagrams(job: Job, session: bytes, *, k: int, m: int, share_size: int,
                   interleave: int) -> Iterator[bytes]:
    """Every datagram of one copy of one file, produced a window of blocks at a time.

    The shares of `interleave` blocks are sent share by share (the first share of each
    block, then the second, ...), so a burst of lost datagrams takes at most about
    burst/interleave shares from any one block, which the block's m - k parity shares can
    replace. Each copy sends other share numbers than the copies before it (fec.copy_shares).
    """
    stride = k * share_size
    meta = wire.pack_meta(wire.Meta(session, job.seq, job.size, stride, share_size, k, m, job.copy,
                                    wire.KIND_RESENT if job.resend else wire.KIND_SENT,
                                    bytes.fromhex(job.sha256), job.name))
    for _ in range(META_REPEAT):
        yield meta
    nblocks = block_count(job.size, stride)
    with open(job.path, "rb") as fh:
        first = 0
        windows = 0
        while first < nblocks:
            count = min(interleave, nblocks - first)
            data = fh.read(count * stride)
            coded = []
            for i in range(count):
                b = first + i
                kb, mb, share_len, nbytes = block_shape(job.size, b, k, m, share_size)
                chunk = memoryview(data)[i * stride:i * stride + nbytes]
                if len(chunk) != nbytes:
                    raise OSError(f"{job.path}: file shorter than when it was numbered")
                numbers = copy_shares(job.copy, mb)
                coded.append((b, kb, numbers, encode(chunk, kb, share_len, numbers)))
            for j in range(max(len(c[2]) for c in coded)):
                for b, kb, numbers, shares in coded:
                    if j < len(numbers):
                        # The m field carries the end of this copy's range of share numbers.
                        yield wire.pack_data(session, job.seq, job.size, b, stride, share_size, numbers[j], kb,
                                             numbers.stop, shares[j])
            first += count
            windows += 1
            if windows % META_EVERY_WINDOWS == 0:
                yield meta
    for _ in range(META_REPEAT):
        yield meta


class Sender(Runner):
    name = HOP
    idle_sleep_seconds = 0.2
    slice_seconds = 0.1

    def __init__(self, config: Config) -> None:
        config.need("transfer_send")
        self.config = config
        self.cfg = cfg = config.transfer_send
        engine = make_engine(config.database.url, echo=config.database.echo)
        provenance = Provenance(engine, zone=config.node.zone, host=config.node.host, publish=config.events.publish)
        super().__init__(provenance, watch=[cfg.outbound])
        # The session id on the wire (8 bytes) is also the runner's session in the database.
        self.session = secrets.token_bytes(8)
        self.session_id = self.session.hex()
        self.heartbeat_seconds = cfg.heartbeat_seconds
        self.rescan_seconds = cfg.rescan_seconds
        self.engine = engine
        self.store = SenderStore(engine, cfg.sent_dir)
        self.bucket = TokenBucket(cfg.rate_bps)
        self.lock = InstanceLock(cfg.state_dir / "send.lock", holder="transfer sender")
        self.sock: SendOnlySocket | None = None
        self.outbound: SpoolQueue | None = None
        self.next_seq = 1
        self.job: Job | None = None
        self._datagrams: Iterator[bytes] | None = None
        self._job_sent = 0
        self._hb_no = 0
        self._next_udp_heartbeat = 0.0
        self._ledger: list[list] | None = None
        self.files_numbered = 0
        self.copies_sent = 0
        # The newest trouble, carried in every heartbeat so the inner zone sees it across the link.
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self._error_clears_on_send = False

    # --- runner hooks
    def startup(self) -> None:
        cfg = self.cfg
        self.lock.acquire()
        for d in (cfg.outbound, cfg.sent_dir, cfg.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.outbound = SpoolQueue(cfg.outbound)
        self.next_seq, adopted, removed = self.store.recover()
        # The schedule may have changed since the last run: copies still due follow the new one.
        self.store.reschedule(cfg.repeat_schedule_seconds)
        if adopted:
            log.warning("adopted numbered files without a row (crash during pick-up)", extra={"seqs": adopted})
        if removed:
            log.warning("numbered files missing from sent_dir", extra={"seqs": removed})
        self.sock = SendOnlySocket(cfg.target, send_buffer=cfg.socket_buffer_bytes)
        log.info("sender ready", extra={"session": self.session_id, "next_seq": self.next_seq,
                                        "target": cfg.target})

    def one_iteration(self) -> int:
        self._maybe_udp_heartbeat()
        work = self._pickup()
        if self.job is None:
            self._start_next_job()
        if self.job is not None:
            work += self._send_slice()
        return work

    def periodic(self) -> None:
        for row in self.store.expire(timedelta(days=self.cfg.retention_days)):
            log.info("retention: sent file removed", extra={"seq": row.seq, "file": row.name})

    def health(self) -> dict[str, Any]:
        outbound_depth = self.outbound.depth() if self.outbound else None
        return {
            "queue_depth": (outbound_depth or 0) + self.store.pending(),
            "outbound_depth": outbound_depth,
            "disk_free": disk_free(self.cfg.sent_dir),
            "last_numbered": self.next_seq - 1,
            "sending_seq": self.job.seq if self.job else None,
            "oldest_age_seconds": self.store.oldest_waiting(utcnow()),
            "files_numbered": self.files_numbered,
            "copies_sent": self.copies_sent,
            "datagrams_sent": self.sock.datagrams if self.sock else 0,
            "bytes_sent": self.sock.bytes if self.sock else 0,
            "rate_bps": self.cfg.rate_bps,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def _note_error(self, text: str, *, link: bool = False) -> None:
        """Keep the newest error for the heartbeats. A link error (`link`) is cleared by the next
        copy that goes out whole; a lost or refused file stays until the sender restarts, since
        only an operator can put it right."""
        # Bounded in bytes: the heartbeat's first part must still fit one datagram under the MTU.
        self.last_error = text.encode("utf-8")[:ERROR_BYTES].decode("utf-8", "ignore")
        self.last_error_at = utcnow().isoformat()
        self._error_clears_on_send = link

    def shutdown(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.provenance is not None:
            self.provenance.close()
        self.lock.release()

    # --- pick-up: number finished files
    def _pickup(self, budget: float = 0.2) -> int:
        """Number the files the outer zone has published (only finished names are listed)."""
        deadline = time.monotonic() + budget
        done = 0
        for name in self.outbound.ready():
            if not SAFE_NAME.match(name):
                self._set_aside(name)
                continue
            seq = self.next_seq
            dest = self.cfg.sent_dir / f"{seq:012d}-{name}"
            try:
                publish(self.cfg.outbound / name, dest)
            except FileNotFoundError:
                continue
            # From here the number is taken (recover() finds it in the file name).
            self.next_seq = seq + 1
            self.store.add(seq, name, dest)
            self.files_numbered += 1
            done += 1
            if time.monotonic() > deadline:
                break
        return done

    def _set_aside(self, name: str) -> None:
        dest = self.cfg.state_dir / "rejected" / name
        try:
            publish(self.cfg.outbound / name, dest)
        except FileNotFoundError:
            return
        log.error("file name not allowed on the link; set aside", extra={"file": name, "moved_to": str(dest)})
        self._note_error(f"file name not allowed on the link, set aside: {name}")

    # --- sending
    def _start_next_job(self) -> None:
        job = self.store.next_job(utcnow())
        if job is None:
            return
        if not Path(job.path).is_file():
            log.error("numbered file vanished from sent_dir", extra={"seq": job.seq, "path": job.path})
            self.store.mark_missing(job.seq)
            self._note_error(f"numbered file vanished from sent_dir: seq {job.seq} {job.name}")
            return
        self.job = job
        self._job_sent = 0
        self._datagrams = copy_datagrams(job, self.session, k=self.cfg.fec_k, m=self.cfg.fec_m,
                                         share_size=self.cfg.payload_size, interleave=self.cfg.interleave_blocks)

    def _send_slice(self) -> int:
        deadline = time.monotonic() + self.slice_seconds
        sent = 0
        datagrams = self._datagrams
        while True:
            try:
                datagram = next(datagrams)
            except StopIteration:
                break
            except OSError as exc:
                # The numbered file cannot be read (deleted, truncated, disk error).
                log.error("cannot read numbered file; copy abandoned", extra={"seq": self.job.seq, "error": str(exc)})
                self._note_error(f"cannot read numbered file seq {self.job.seq} {self.job.name}: {exc}")
                self.store.mark_missing(self.job.seq)
                self.job = self._datagrams = None
                return sent
            self.bucket.take(len(datagram) + wire.IP_UDP_OVERHEAD)
            try:
                self.sock.send(datagram)
            except OSError as exc:
                # The link is down (ENETUNREACH, EMSGSIZE after an MTU change, ...): the copy
                # is still due and starts again from its beginning after a pause.
                log.error("send failed; the copy will start again", extra={"seq": self.job.seq, "error": str(exc)})
                self._note_error(f"send failed (seq {self.job.seq}): {exc}", link=True)
                self.job = self._datagrams = None
                time.sleep(1.0)
                return sent
            sent += 1
            if sent % 64 == 0 and time.monotonic() > deadline:
                self._job_sent += sent
                return sent
        self._job_sent += sent
        self._finish_job(self.job)
        self.job = self._datagrams = None
        return sent + 1

    def _finish_job(self, job: Job) -> None:
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(SentFile, job.seq)
            if job.resend:
                row.resend_pending = max(0, row.resend_pending - 1)
                row.resends_done += 1
                event = "resent"
            else:
                row.copies_sent += 1
                row.first_sent_at = row.first_sent_at or now
                row.next_due_at = next_due(row.first_sent_at, row.copies_sent, self.cfg.repeat_schedule_seconds)
                event = "sent"
            row.last_sent_at = now
            self.provenance.record(event, HOP, sha256=row.sha256, tracking_id=tracking_id(row.name), session=s,
                                   copy=job.copy, seq=job.seq, sender_session=self.session_id, file=row.name,
                                   size=row.size, datagrams=self._job_sent)
        self.copies_sent += 1
        self._ledger = None
        if self._error_clears_on_send:
            self.last_error = self.last_error_at = None
            self._error_clears_on_send = False
        # A heartbeat right after a first copy lets the receiver reconcile promptly.
        if not job.resend and job.copy == 1:
            self._next_udp_heartbeat = min(self._next_udp_heartbeat, time.monotonic() + 0.5)

    # --- heartbeats on the link
    def _maybe_udp_heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._next_udp_heartbeat:
            return
        self._next_udp_heartbeat = now + self.cfg.heartbeat_seconds
        if self._ledger is None:
            self._ledger = self.store.ledger(self.cfg.ledger_size)
        last_seq = self._ledger[-1][0] if self._ledger else 0
        self._hb_no += 1
        base = {"n": self._hb_no, "v": wire.VERSION, "started": self.started_at.isoformat(),
                "interval": self.cfg.heartbeat_seconds, "host": self.config.node.host, "pid": os.getpid(),
                "health": self.health()}
        try:
            for datagram in wire.heartbeat_parts(self.session, last_seq, base, self._ledger,
                                                 self.cfg.payload_size + wire.COMMON_SIZE):
                self.bucket.take(len(datagram) + wire.IP_UDP_OVERHEAD)
                self.sock.send(datagram)
        except OSError as exc:
            log.warning("heartbeat not sent", extra={"error": str(exc)})
            self._note_error(f"heartbeat not sent: {exc}", link=True)
