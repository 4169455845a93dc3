"""The datagram format of the one-way link (docs/transfer.md, "Datagram format").

Every datagram describes itself completely: a receiver that starts in the middle of a
transfer, or sees datagrams reordered, duplicated or from a new sender session, needs no
other state to place one. All integers are big-endian. A CRC-32 over the whole datagram
(with the CRC field zeroed) rejects corrupt datagrams; the whole-file SHA-256 in the META
datagram is the final check before a file is published.

    common header (24 bytes)
      magic "TG" | version u8 | type u8 | session 8 bytes | seq u64 | crc32 u32
    DATA body header (24 bytes), then one FEC share
      file_size u64 | block u32 | stride u32 | share_size u16 | share u16 | k u16 | m u16
    META body
      file_size u64 | stride u32 | share_size u16 | k u16 | m u16 | copy u16 | kind u8 |
      sha256 32 bytes | name_len u16 | name (UTF-8)
    HEARTBEAT body
      compact JSON (see heartbeat_parts)
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

MAGIC = b"TG"
VERSION = 1

DATA = 1
META = 2
HEARTBEAT = 3

KIND_SENT = 0
KIND_RESENT = 1

_COMMON = struct.Struct(">2sBB8sQI")
_DATA = struct.Struct(">QIIHHHH")
_META = struct.Struct(">QIHHHHB32sH")
COMMON_SIZE = _COMMON.size  # 24
DATA_HEADER_SIZE = COMMON_SIZE + _DATA.size  # 48
# IPv4 (20) + UDP (8): what a datagram costs on the wire beyond its own bytes.
IP_UDP_OVERHEAD = 28
_CRC_AT = COMMON_SIZE - 4
MAX_NAME_BYTES = 255


class BadDatagram(ValueError):
    """A datagram that is not ours, not this version, truncated or corrupt."""


class DataHeader(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is built per datagram and this is 3x cheaper.
    session: bytes
    seq: int
    file_size: int
    block: int
    stride: int  # file bytes per full block (k * share_size): block b starts at b * stride
    share_size: int  # nominal share size; the last block's shares may be shorter
    share: int
    k: int
    m: int


@dataclass(frozen=True, slots=True)
class Meta:
    session: bytes
    seq: int
    file_size: int
    stride: int
    share_size: int
    k: int
    m: int
    copy: int
    kind: int
    sha256: bytes
    name: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    session: bytes
    seq: int  # the last sequence number whose first copy was sent completely
    body: dict[str, Any]


def _seal(common: bytes, *body: bytes | memoryview) -> bytes:
    """Fill in the CRC-32 over the whole datagram with its CRC field zeroed."""
    crc = zlib.crc32(common[:_CRC_AT])
    for part in body:
        crc = zlib.crc32(part, crc)
    return b"".join((common[:_CRC_AT], crc.to_bytes(4, "big"), *body))


def _common(kind: int, session: bytes, seq: int) -> bytes:
    return _COMMON.pack(MAGIC, VERSION, kind, session, seq, 0)


def pack_data(session: bytes, seq: int, file_size: int, block: int, stride: int, share_size: int,
              share: int, k: int, m: int, payload: bytes | memoryview) -> bytes:
    body = _DATA.pack(file_size, block, stride, share_size, share, k, m)
    return _seal(_common(DATA, session, seq), body, payload)


def pack_meta(meta: Meta) -> bytes:
    name = meta.name.encode("utf-8")
    if len(name) > MAX_NAME_BYTES:
        raise ValueError(f"file name longer than {MAX_NAME_BYTES} bytes: {meta.name!r}")
    body = _META.pack(meta.file_size, meta.stride, meta.share_size, meta.k, meta.m, meta.copy, meta.kind,
                      meta.sha256, len(name)) + name
    return _seal(_common(META, meta.session, meta.seq), body)


def pack_heartbeat(session: bytes, last_seq: int, body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _seal(_common(HEARTBEAT, session, last_seq), text)


def parse(dg: bytes | memoryview) -> DataHeader | Meta | Heartbeat:
    """Check and decode one datagram; raise BadDatagram for anything that is not a valid one.

    A DATA datagram is returned as its header only; its share is `dg[DATA_HEADER_SIZE:]`.
    """
    if len(dg) < COMMON_SIZE:
        raise BadDatagram("short")
    magic, version, kind, session, seq, crc = _COMMON.unpack_from(dg)
    if magic != MAGIC:
        raise BadDatagram("magic")
    if version != VERSION:
        raise BadDatagram("version")
    mv = memoryview(dg)
    if zlib.crc32(mv[COMMON_SIZE:], zlib.crc32(mv[:_CRC_AT])) != crc:
        raise BadDatagram("crc")
    if kind == DATA:
        if len(dg) <= DATA_HEADER_SIZE:
            raise BadDatagram("short")
        file_size, block, stride, share_size, share, k, m = _DATA.unpack_from(dg, COMMON_SIZE)
        share_len = len(dg) - DATA_HEADER_SIZE
        # Shapes a sender never makes are refused here, so the assembler can trust them.
        if not (0 < k <= m <= 256 and share < m and 0 < share_len <= share_size and stride % share_size == 0
                and block * stride < file_size and k * share_len >= min(stride, file_size - block * stride)
                and k * share_len <= stride):
            raise BadDatagram("shape")
        return DataHeader(session, seq, file_size, block, stride, share_size, share, k, m)
    if kind == META:
        if len(dg) < COMMON_SIZE + _META.size:
            raise BadDatagram("short")
        file_size, stride, share_size, k, m, copy, mkind, sha, name_len = _META.unpack_from(dg, COMMON_SIZE)
        start = COMMON_SIZE + _META.size
        if len(dg) != start + name_len:
            raise BadDatagram("name length")
        try:
            name = bytes(mv[start:]).decode("utf-8")
        except UnicodeDecodeError:
            raise BadDatagram("name encoding") from None
        if not (0 < k <= m <= 256 and share_size > 0 and stride == k * share_size):
            raise BadDatagram("shape")
        return Meta(session, seq, file_size, stride, share_size, k, m, copy, mkind, sha, name)
    if kind == HEARTBEAT:
        try:
            body = json.loads(bytes(mv[COMMON_SIZE:]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadDatagram("heartbeat body") from None
        if not isinstance(body, dict):
            raise BadDatagram("heartbeat body")
        return Heartbeat(session, seq, body)
    raise BadDatagram("type")


def heartbeat_parts(session: bytes, last_seq: int, base: dict[str, Any], ledger: list[list[Any]],
                    max_bytes: int) -> list[bytes]:
    """Split one heartbeat into datagrams of at most `max_bytes` body bytes each.

    Every part stands alone (heartbeat number, part i of n, last_seq and a slice of the
    ledger), so losing one part loses only its ledger entries for this round; the next
    heartbeat repeats them. Part 0 also carries the sender's health and start time.
    """
    parts: list[list[list[Any]]] = [[]]
    bodies: list[dict[str, Any]] = []

    def size_of(i: int, entries: list[list[Any]]) -> int:
        body = {**(base if i == 0 else {"n": base["n"]}), "i": i, "of": 999, "ledger": entries}
        return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    for entry in ledger:
        trial = [*parts[-1], entry]
        if size_of(len(parts) - 1, trial) > max_bytes and parts[-1]:
            parts.append([entry])
        else:
            parts[-1] = trial
    for i, entries in enumerate(parts):
        head = base if i == 0 else {"n": base["n"]}
        bodies.append({**head, "i": i, "of": len(parts), "ledger": entries})
    return [pack_heartbeat(session, last_seq, b) for b in bodies]
