"""How a file is cut into blocks and each block into Reed-Solomon shares (zfec).

A file is a run of blocks of `stride = k * share_size` bytes; block b starts at byte
b * stride. Each block is split into k primary shares and coded into m shares, any k of
which rebuild it. The last block is usually short: it gets k' = ceil(rest / share_size)
primaries of ceil(rest / k') bytes (so a 1 KB file is not padded to a 22 KB block) and
keeps all m - k parity shares, so small files are as well protected as big ones.
"""

from __future__ import annotations

from functools import lru_cache

import zfec


def block_count(file_size: int, stride: int) -> int:
    return -(-file_size // stride)


def block_shape(file_size: int, block: int, k: int, m: int, share_size: int) -> tuple[int, int, int, int]:
    """(k, m, share_len, data_bytes) of one block of a file."""
    stride = k * share_size
    rest = min(stride, file_size - block * stride)
    if rest == stride:
        return k, m, share_size, rest
    kb = -(-rest // share_size)
    share_len = -(-rest // kb)
    return kb, kb + (m - k), share_len, rest


@lru_cache(maxsize=512)
def _encoder(k: int, m: int) -> zfec.Encoder:
    return zfec.Encoder(k, m)


@lru_cache(maxsize=512)
def _decoder(k: int, m: int) -> zfec.Decoder:
    return zfec.Decoder(k, m)


def encode(data: bytes | memoryview, k: int, m: int, share_len: int) -> list[bytes]:
    """All m shares of one block; `data` is the block's file bytes (padded here with zeros)."""
    padded = bytes(data) + bytes(k * share_len - len(data))
    primaries = tuple(padded[i * share_len:(i + 1) * share_len] for i in range(k))
    if m == k:
        return list(primaries)
    return _encoder(k, m).encode(primaries)


def decode(shares: dict[int, bytes], k: int, m: int, data_bytes: int) -> bytes:
    """The block's file bytes from any k of its shares."""
    if all(i in shares for i in range(k)):
        return b"".join(shares[i] for i in range(k))[:data_bytes]
    nums = sorted(shares)[:k]
    primaries = _decoder(k, m).decode([shares[i] for i in nums], nums)
    return b"".join(primaries)[:data_bytes]
