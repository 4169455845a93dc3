"""FEC geometry and the assembler: any k of m shares, lost datagrams, spilling to disk."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer import fec, wire
from transfer.assembly import Assembler
from transfer.sender import copy_datagrams
from transfer.sender_store import Job

SESSION = bytes.fromhex("a1a2a3a4a5a6a7a8")


@given(size=st.integers(1, 200_000), k=st.integers(1, 32), extra=st.integers(0, 8), p=st.integers(256, 1500))
@settings(max_examples=200, deadline=None)
def test_block_shapes_cover_the_file_exactly(size, k, extra, p):
    m = k + extra
    stride = k * p
    total = 0
    for b in range(fec.block_count(size, stride)):
        kb, mb, share_len, nbytes = fec.block_shape(size, b, k, m, p)
        assert 1 <= kb <= k and mb - kb == m - k
        assert share_len <= p and kb * share_len >= nbytes > (kb - 1) * share_len
        total += nbytes
    assert total == size


@given(data=st.binary(min_size=1, max_size=5000), seed=st.integers(0, 2**32), copies=st.integers(1, 30))
@settings(max_examples=100, deadline=None)
def test_any_k_shares_of_any_copies_rebuild_a_block(data, seed, copies):
    k, m, p = 6, 10, 1000
    kb, mb, share_len, nbytes = fec.block_shape(len(data), 0, k, m, p)
    shares = {}
    for c in range(1, copies + 1):
        numbers = fec.copy_shares(c, mb)
        shares.update(zip(numbers, fec.encode(data[:nbytes], kb, share_len, numbers), strict=True))
    chosen = random.Random(seed).sample(sorted(shares), kb)
    assert fec.decode({i: shares[i] for i in chosen}, kb, nbytes) == data[:nbytes]


def test_each_copy_sends_other_share_numbers_until_they_run_out():
    assert list(fec.copy_shares(1, 20)) == list(range(20))
    assert list(fec.copy_shares(2, 20)) == list(range(20, 40))
    seen = [set(fec.copy_shares(c, 20)) for c in range(1, 13)]
    assert len(set().union(*seen)) == 240 and max(max(x) for x in seen) < 256
    assert fec.copy_shares(13, 20) == fec.copy_shares(1, 20)  # 12 groups of 20 fit in 256


def _datagrams(tmp_path: Path, data: bytes, *, seq: int = 1, copy: int = 1, k=8, m=12, p=512, interleave=4):
    src = tmp_path / f"src-{seq}"
    src.write_bytes(data)
    job = Job(seq, f"F{seq}.p7m", len(data), hashlib.sha256(data).hexdigest(), str(src), copy, False)
    return list(copy_datagrams(job, SESSION, k=k, m=m, share_size=p, interleave=interleave))


def _feed(asm: Assembler, dgs):
    done = None
    for dg in dgs:
        msg = wire.parse(dg)
        is_data = isinstance(msg, wire.DataHeader)
        a = asm.data(msg, memoryview(dg)[wire.DATA_HEADER_SIZE:]) if is_data else asm.meta(msg)
        if a is not None:
            done = a
    return done


@pytest.mark.parametrize("memory", [64 * 1024 * 1024, 8 * 1024])
def test_two_lossy_copies_combine_and_memory_stays_bounded(tmp_path, memory):
    """30 % loss on each copy: neither copy alone is enough, together they are; a tiny
    memory limit forces shares to be spilled to disk and read back, with the same result."""
    rng = random.Random(3)
    data = rng.randbytes(300_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    asm = Assembler(staging, memory_bytes=memory, max_file_bytes=10**9)
    first = [d for d in _datagrams(tmp_path, data) if rng.random() > 0.3]
    assert _feed(asm, first) is None
    peak = asm.memory
    second = [d for d in _datagrams(tmp_path, data, copy=2) if rng.random() > 0.3]
    a = _feed(asm, second)
    assert a is not None and a.complete
    if memory < 64 * 1024:
        assert asm.counters["blocks_spilled"] > 0
        assert peak <= memory + 512
    part = a.finish()
    assert part.read_bytes() == data
    assert asm.counters["blocks_decoded"] > 0


def test_two_copies_rebuild_what_neither_could_even_at_60_percent_loss(tmp_path):
    """Identical copies would need every share number to survive in at least one copy; fresh
    parity in the second copy makes any 16 of the 40 distinct shares per block enough."""
    rng = random.Random(60)
    data = rng.randbytes(100_000)
    (tmp_path / "st").mkdir()
    asm = Assembler(tmp_path / "st", memory_bytes=10**7, max_file_bytes=10**9)
    metas = [d for d in _datagrams(tmp_path, data, k=16, m=20, p=1400) if isinstance(wire.parse(d), wire.Meta)]
    for copy in (1, 2):
        dgs = [d for d in _datagrams(tmp_path, data, copy=copy, k=16, m=20, p=1400)
               if isinstance(wire.parse(d), wire.DataHeader)]
        # exactly 12 of the 20 shares of every block get through: less than k = 16
        keep = []
        for b in range(fec.block_count(len(data), 16 * 1400)):
            of_block = [d for d in dgs if wire.parse(d).block == b]
            keep += rng.sample(of_block, min(12, len(of_block)))
        a = _feed(asm, metas + keep)
        if copy == 1:
            assert a is None
    assert a is not None and a.finish().read_bytes() == data


def test_small_and_empty_files(tmp_path):
    staging = tmp_path / "st"
    staging.mkdir()
    asm = Assembler(staging, memory_bytes=10**6, max_file_bytes=10**9)
    for seq, data in enumerate([b"", b"x", bytes(range(200)) * 3], 1):
        dgs = _datagrams(tmp_path, data, seq=seq)
        # a short last block keeps all m - k = 4 parity shares: every data share may be lost
        survivors = [d for d in dgs if wire.parse(d).__class__ is wire.Meta] + \
                    [d for d in dgs if wire.parse(d).__class__ is wire.DataHeader][-4:]
        a = _feed(asm, survivors)
        assert a is not None, seq
        assert a.finish().read_bytes() == data


def test_file_larger_than_the_limit_is_not_assembled(tmp_path):
    asm = Assembler(tmp_path, memory_bytes=10**6, max_file_bytes=1000)
    assert _feed(asm, _datagrams(tmp_path, bytes(5000))) is None
    assert asm.counters["files_too_large"] > 0
    assert not list(tmp_path.glob("*.part"))


def test_remove_frees_memory_and_files(tmp_path):
    staging = tmp_path / "st"
    staging.mkdir()
    asm = Assembler(staging, memory_bytes=4096, max_file_bytes=10**9)
    dgs = _datagrams(tmp_path, random.Random(1).randbytes(100_000))
    _feed(asm, dgs[: len(dgs) // 3])
    assert asm.memory > 0 and list(staging.iterdir())
    asm.remove_seq(1)
    assert asm.memory == 0 and not asm.lru and not list(staging.iterdir())
