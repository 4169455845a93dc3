"""`tgw transfer relay`: a lossy link in user space, for tests and demonstrations.

tc netem is not available on these machines, so loss is made here: datagrams arriving on
`listen` are forwarded to `to` after a seeded random fate (dropped, dropped in a burst,
held back and sent later, sent twice, bits flipped) and an optional rate cap. The same
seed and the same input give the same fates. Like the link it imitates, it only
forwards one way.
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass, field

from .common import parse_address
from .pacing import TokenBucket
from .wire import IP_UDP_OVERHEAD

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


@dataclass
class Fates:
    loss: float = 0.0  # chance that one datagram is dropped
    burst: int = 0  # length of a loss burst (0: no bursts)
    burst_prob: float = 0.0  # chance per datagram that a burst starts
    reorder: float = 0.0  # chance that a datagram is held back behind the next 1-8
    duplicate: float = 0.0  # chance that a datagram is sent twice
    corrupt: float = 0.0  # chance that 1-3 bits of a datagram are flipped
    rate_bps: int = 0  # rate cap in bits per second (0: none); excess waits, then the kernel drops
    seed: int = 0
    mtu: int = 0  # model IP fragmentation at this MTU: a datagram is lost if any fragment is (0: off)


@dataclass
class RelayCounters:
    received: int = 0
    bytes_received: int = 0
    forwarded: int = 0
    bytes_forwarded: int = 0
    dropped: int = 0
    burst_dropped: int = 0
    reordered: int = 0
    duplicated: int = 0
    corrupted: int = 0
    extra: dict = field(default_factory=dict)


class Relay:
    def __init__(self, listen: str, to: str, fates: Fates, *, source: str | None = None) -> None:
        family, addr = parse_address(listen)
        self.inp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.inp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
        except PermissionError:
            self.inp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024 * 1024)
        self.inp.bind(addr)
        self.inp.settimeout(0.05)
        out_family, self.to = parse_address(to)
        self.out = socket.socket(out_family, socket.SOCK_DGRAM)
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
        if source:
            # Some receivers (udpcast) accept data only from the port they expect the sender on.
            self.out.bind(parse_address(source)[1])
        self.fates = fates
        self.rng = random.Random(fates.seed)
        self.bucket = TokenBucket(fates.rate_bps) if fates.rate_bps else None
        self.counters = RelayCounters()
        self.stopping = threading.Event()
        self._held: list[list] = []
        self._burst_left = 0

    @property
    def address(self) -> tuple:
        return self.inp.getsockname()

    def _emit(self, dg: bytes) -> None:
        if self.bucket is not None:
            self.bucket.take(len(dg) + IP_UDP_OVERHEAD)
        try:
            self.out.sendto(dg, self.to)
            self.counters.forwarded += 1
            self.counters.bytes_forwarded += len(dg)
        except OSError:
            # Nobody listening (ECONNREFUSED from an earlier ICMP) or a full queue: the datagram is lost.
            self.counters.extra["send_errors"] = self.counters.extra.get("send_errors", 0) + 1

    def _release_held(self, *, all_of_them: bool = False) -> None:
        keep = []
        for item in self._held:
            item[1] -= 1
            if item[1] <= 0 or all_of_them:
                self._emit(item[0])
            else:
                keep.append(item)
        self._held = keep

    def fragments(self, size: int) -> int:
        """IP fragments a datagram of `size` bytes becomes at the modelled MTU (1 if it fits)."""
        mtu = self.fates.mtu
        if not mtu or size + IP_UDP_OVERHEAD <= mtu:
            return 1
        per_fragment = (mtu - 20) // 8 * 8  # fragment payloads are multiples of 8 bytes
        return -(-(size + 8) // per_fragment)

    def _lost(self, size: int) -> bool:
        """Draw the fate of every fragment: losing one loses the whole datagram."""
        f, rng, c = self.fates, self.rng, self.counters
        lost = False
        for _ in range(self.fragments(size)):
            if self._burst_left > 0:
                self._burst_left -= 1
                c.burst_dropped += 1
                lost = True
            elif f.burst and rng.random() < f.burst_prob:
                self._burst_left = f.burst - 1
                c.burst_dropped += 1
                lost = True
            elif rng.random() < f.loss:
                c.dropped += 1
                lost = True
        return lost

    def handle(self, dg: bytes) -> None:
        f, rng, c = self.fates, self.rng, self.counters
        c.received += 1
        c.bytes_received += len(dg)
        if self._held:
            self._release_held()
        if self._lost(len(dg)):
            c.extra["datagrams_lost"] = c.extra.get("datagrams_lost", 0) + 1
            return
        if f.corrupt and rng.random() < f.corrupt:
            buf = bytearray(dg)
            for _ in range(rng.randint(1, 3)):
                pos = rng.randrange(len(buf))
                buf[pos] ^= 1 << rng.randrange(8)
            dg = bytes(buf)
            c.corrupted += 1
        copies = 1
        if f.duplicate and rng.random() < f.duplicate:
            copies = 2
            c.duplicated += 1
        if f.reorder and rng.random() < f.reorder:
            c.reordered += 1
            self._held.extend([dg, rng.randint(1, 8)] for _ in range(copies))
            return
        for _ in range(copies):
            self._emit(dg)

    def run(self) -> None:
        recv = self.inp.recv
        while not self.stopping.is_set():
            try:
                dg = recv(65536)
            except TimeoutError:
                if self._held:
                    self._release_held(all_of_them=True)
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            self.handle(dg)
        self.inp.close()
        self.out.close()

    def stop(self) -> None:
        self.stopping.set()

    def stats(self) -> dict:
        c = self.counters
        return {"received": c.received, "bytes_received": c.bytes_received, "forwarded": c.forwarded,
                "bytes_forwarded": c.bytes_forwarded, "dropped": c.dropped,
                "burst_dropped": c.burst_dropped, "reordered": c.reordered, "duplicated": c.duplicated,
                "corrupted": c.corrupted, **c.extra}
