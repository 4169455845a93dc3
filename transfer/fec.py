"""How a file is cut into blocks and each block into Reed-Solomon shares (zfec).

A file is a run of blocks of `stride = k * share_size` bytes; block b starts at byte
b * stride. Each block is split into k primary shares; any k distinct shares of the
block rebuild it. The last block is usually short: it gets k' = ceil(rest / share_size)
primaries of ceil(rest / k') bytes (so a 1 KB file is not padded to a 22 KB block) and
keeps all m - k parity shares, so small files are as well protected as big ones.

Every copy of a file sends m shares per block, but not the same ones: zfec's share i
does not depend on the total number of shares, so copy c sends share numbers
(c-1)·m … c·m-1 (wrapping within the 256 a block can have). The first copy sends the k
primaries and m - k parity shares; later copies send fresh parity. Two copies then give
2m distinct shares of which any k will do, instead of the same m twice: a burst that hit
both copies is survived as long as k shares got through in all.
"""

from __future__ import annotations

from functools import lru_cache

import zfec

MAX_SHARES = 256  # zfec's limit on share numbers per block


def block_count(file_size: int, stride: int) -> int:
    return -(-file_size // stride)


def block_shape(file_size: int, block: int, k: int, m: int, share_size: int) -> tuple[int, int, int, int]:
    """(k, m, share_len, data_bytes) of one block of a file; m shares go out per copy."""
    stride = k * share_size
    rest = min(stride, file_size - block * stride)
    if rest == stride:
        return k, m, share_size, rest
    kb = -(-rest // share_size)
    share_len = -(-rest // kb)
    return kb, kb + (m - k), share_len, rest


def copy_shares(copy: int, m: int) -> range:
    """The share numbers copy `copy` (1 for the first) sends of a block with m per copy."""
    groups = MAX_SHARES // m
    first = ((copy - 1) % groups) * m
    return range(first, first + m)


@lru_cache(maxsize=512)
def _encoder(k: int) -> zfec.Encoder:
    return zfec.Encoder(k, MAX_SHARES)


@lru_cache(maxsize=512)
def _decoder(k: int) -> zfec.Decoder:
    return zfec.Decoder(k, MAX_SHARES)


def encode(data: bytes | memoryview, k: int, share_len: int, numbers: range) -> list[bytes]:
    """Shares `numbers` of one block; `data` is the block's file bytes (padded here with zeros)."""
    padded = bytes(data) + bytes(k * share_len - len(data))
    primaries = tuple(padded[i * share_len:(i + 1) * share_len] for i in range(k))
    if numbers.stop <= k:
        return [primaries[i] for i in numbers]
    return _encoder(k).encode(primaries, tuple(numbers))


def decode(shares: dict[int, bytes], k: int, data_bytes: int) -> bytes:
    """The block's file bytes from any k of its shares."""
    if all(i in shares for i in range(k)):
        return b"".join(shares[i] for i in range(k))[:data_bytes]
    nums = sorted(shares)[:k]
    primaries = _decoder(k).decode([shares[i] for i in nums], nums)
    return b"".join(primaries)[:data_bytes]
