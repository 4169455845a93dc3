"""Putting files back together from shares, on disk, in bounded memory.

Each file being received (one per sender session and sequence number) has a sparse
`.part` file in the staging folder, as large as the file. A block's shares wait in memory
until k of them are there; then the block is decoded and written at its place in one
write. Blocks still short of shares are kept in an LRU; when the shares in memory pass
`memory_bytes`, the oldest blocks are spilled to disk: primary shares straight to their
place in the `.part` file, parity shares to a sparse `.fec` side file, one slot per share number. So a
4 GB file at 30 % loss needs a few MB of memory, not 3 GB, and the shares of a block
from every copy (each copy brings other share numbers, see fec.py) are combined even if
the block had to wait.

Only the whole-file SHA-256 (checked by the publisher, not here) decides whether a
file is good; this module only trusts datagrams that passed their CRC.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from . import fec
from .wire import DataHeader, Meta

Key = tuple[bytes, int]  # (sender session, seq)


@dataclass(slots=True)
class Pending:
    """Shares of one block held in memory."""

    k: int
    share_len: int
    shares: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Spilled:
    """Shares of one block written to disk, as a bit mask of share numbers."""

    k: int
    share_len: int
    mask: int  # bit i: share i is on disk (share numbers go up to 255)


class Assembly:
    """One file of one sender session being put back together."""

    def __init__(self, staging: Path, session: bytes, seq: int, file_size: int, stride: int,
                 share_size: int) -> None:
        self.session = session
        self.seq = seq
        self.file_size = file_size
        self.stride = stride
        self.share_size = share_size
        self.k_nominal = stride // share_size
        self.nblocks = fec.block_count(file_size, stride)
        self.done = bytearray(self.nblocks)
        self.ndone = 0
        self.spilled: dict[int, Spilled] = {}
        self.pending_blocks: set[int] = set()
        self.meta: Meta | None = None
        # A fresh name per attempt: a failed publication's file may still be waiting for
        # recover(), and a later copy of the same file must not write over it.
        stem = f"{session.hex()}-{seq}-{os.urandom(4).hex()}"
        self.part = staging / f"{stem}.part"
        self.fec_path = staging / f"{stem}.fec"
        self._fd: int | None = None
        self._fec_fd: int | None = None
        self.touched = time.monotonic()
        self.started = self.touched

    @property
    def key(self) -> Key:
        return (self.session, self.seq)

    @property
    def complete(self) -> bool:
        return self.meta is not None and self.ndone == self.nblocks

    def fd(self) -> int:
        if self._fd is None:
            # 0o666 and let the process umask decide: the published file must be readable by the
            # inner runner, which runs as another user in the receiver's group (UMask=0027).
            self._fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o666)
            os.ftruncate(self._fd, self.file_size)
        return self._fd

    def fec_fd(self) -> int:
        if self._fec_fd is None:
            self._fec_fd = os.open(self.fec_path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fec_fd

    def close(self) -> None:
        for fd in (self._fd, self._fec_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._fec_fd = None

    def finish(self) -> Path:
        """All blocks written: make sure the file exists with its size, and hand over its path.

        Making it durable is left to the publisher thread: on a big file it takes seconds.
        """
        self.fd()
        self.close()
        self.fec_path.unlink(missing_ok=True)
        return self.part

    def discard(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)
        self.fec_path.unlink(missing_ok=True)


class Assembler:
    def __init__(self, staging: Path, *, memory_bytes: int, max_file_bytes: int) -> None:
        self.staging = staging
        self.memory_bytes = memory_bytes
        self.max_file_bytes = max_file_bytes
        self.assemblies: dict[Key, Assembly] = {}
        self.lru: OrderedDict[tuple[Key, int], Pending] = OrderedDict()
        self.memory = 0
        self.now = time.monotonic()
        self.counters = {"shares": 0, "shares_duplicate": 0, "blocks_decoded": 0, "blocks_spilled": 0,
                         "datagrams_inconsistent": 0, "files_too_large": 0}

    def _get(self, session: bytes, seq: int, file_size: int, stride: int, share_size: int) -> Assembly | None:
        key = (session, seq)
        a = self.assemblies.get(key)
        if a is None:
            if file_size > self.max_file_bytes:
                self.counters["files_too_large"] += 1
                return None
            a = self.assemblies[key] = Assembly(self.staging, session, seq, file_size, stride, share_size)
        elif (a.file_size, a.stride, a.share_size) != (file_size, stride, share_size):
            self.counters["datagrams_inconsistent"] += 1
            return None
        a.touched = self.now
        return a

    def meta(self, meta: Meta) -> Assembly | None:
        """Note a META datagram; return the assembly if that made it complete."""
        a = self._get(meta.session, meta.seq, meta.file_size, meta.stride, meta.share_size)
        if a is None:
            return None
        if a.meta is None:
            a.meta = meta
        elif (a.meta.sha256, a.meta.name) != (meta.sha256, meta.name):
            self.counters["datagrams_inconsistent"] += 1
        return a if a.complete else None

    def data(self, h: DataHeader, share: memoryview) -> Assembly | None:
        """Take one share; return the assembly if it became complete."""
        a = self._get(h.session, h.seq, h.file_size, h.stride, h.share_size)
        if a is None:
            return None
        b = h.block
        if a.done[b]:
            self.counters["shares_duplicate"] += 1
            return None
        share_len = len(share)
        lk = (a.key, b)
        pend = self.lru.get(lk)
        spilled = a.spilled.get(b)
        if pend is None:
            kb, _, expect_len, _ = fec.block_shape(a.file_size, b, a.k_nominal, h.m, a.share_size)
            if (kb, expect_len) != (h.k, share_len) or (
                    spilled is not None and (spilled.k, spilled.share_len) != (h.k, share_len)):
                self.counters["datagrams_inconsistent"] += 1
                return None
            pend = self.lru[lk] = Pending(h.k, share_len)
            a.pending_blocks.add(b)
        else:
            if (pend.k, pend.share_len) != (h.k, share_len):
                self.counters["datagrams_inconsistent"] += 1
                return None
            self.lru.move_to_end(lk)
        if h.share in pend.shares or (spilled is not None and spilled.mask >> h.share & 1):
            self.counters["shares_duplicate"] += 1
            return None
        pend.shares[h.share] = bytes(share)
        self.counters["shares"] += 1
        self.memory += share_len
        have = len(pend.shares) + (spilled.mask.bit_count() if spilled is not None else 0)
        if have >= pend.k:
            self._write_block(a, b, pend, spilled)
            return a if a.complete else None
        if self.memory > self.memory_bytes:
            self._spill()
        return None

    def _write_block(self, a: Assembly, b: int, pend: Pending, spilled: Spilled | None) -> None:
        shares = dict(pend.shares)
        if spilled is not None:
            for i in range(fec.MAX_SHARES):
                if len(shares) >= pend.k:
                    break
                if spilled.mask >> i & 1 and i not in shares:
                    shares[i] = self._read_spilled(a, b, i, pend)
        nbytes = min(a.stride, a.file_size - b * a.stride)
        data = fec.decode(shares, pend.k, nbytes)
        if any(i >= pend.k for i in shares):
            self.counters["blocks_decoded"] += 1
        os.pwrite(a.fd(), data, b * a.stride)
        a.done[b] = 1
        a.ndone += 1
        self.memory -= pend.share_len * len(pend.shares)
        del self.lru[(a.key, b)]
        a.pending_blocks.discard(b)
        a.spilled.pop(b, None)

    def _read_spilled(self, a: Assembly, b: int, i: int, pend: Pending) -> bytes:
        if i < pend.k:
            data = os.pread(a.fd(), pend.share_len, b * a.stride + i * pend.share_len)
            # The part of the last share beyond the end of the file is padding: zeros.
            return data + bytes(pend.share_len - len(data))
        return os.pread(a.fec_fd(), pend.share_len, _parity_slot(a, b, i))

    def _spill(self) -> None:
        """Write the oldest waiting blocks' shares to disk until memory is at 3/4 of the limit."""
        while self.lru and self.memory > self.memory_bytes * 3 // 4:
            (key, b), pend = self.lru.popitem(last=False)
            a = self.assemblies[key]
            spilled = a.spilled.get(b)
            mask = spilled.mask if spilled is not None else 0
            for i, data in pend.shares.items():
                if i < pend.k:
                    offset = b * a.stride + i * pend.share_len
                    n = min(len(data), a.file_size - offset)
                    if n > 0:
                        os.pwrite(a.fd(), data[:n], offset)
                else:
                    os.pwrite(a.fec_fd(), data, _parity_slot(a, b, i))
                mask |= 1 << i
            a.spilled[b] = Spilled(pend.k, pend.share_len, mask)
            a.pending_blocks.discard(b)
            self.memory -= pend.share_len * len(pend.shares)
            self.counters["blocks_spilled"] += 1

    def remove(self, key: Key, *, discard: bool = True) -> Assembly | None:
        """Forget an assembly (finished, abandoned or superseded); delete its files if discard."""
        a = self.assemblies.pop(key, None)
        if a is None:
            return None
        for b in a.pending_blocks:
            pend = self.lru.pop((key, b), None)
            if pend is not None:
                self.memory -= pend.share_len * len(pend.shares)
        a.pending_blocks.clear()
        if discard:
            a.discard()
        return a

    def remove_seq(self, seq: int) -> int:
        """Drop every assembly of one sequence number (it has been published or dropped)."""
        keys = [k for k in self.assemblies if k[1] == seq]
        for key in keys:
            self.remove(key)
        return len(keys)

    def expire(self, idle_seconds: float) -> list[Assembly]:
        cutoff = time.monotonic() - idle_seconds
        old = [a for a in self.assemblies.values() if a.touched < cutoff]
        for a in old:
            self.remove(a.key)
        return old

    def close_idle_files(self, idle_seconds: float = 5.0) -> None:
        """Close descriptors of files nobody wrote to lately, so thousands of them stay cheap."""
        cutoff = time.monotonic() - idle_seconds
        for a in self.assemblies.values():
            if a.touched < cutoff:
                a.close()

    def in_progress(self) -> set[int]:
        return {k[1] for k in self.assemblies}


def _parity_slot(a: Assembly, b: int, i: int) -> int:
    """Where parity share i of block b lives in the sparse `.fec` file: one slot per number."""
    return (b * fec.MAX_SHARES + i) * a.share_size
