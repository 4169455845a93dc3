"""The datagram format: round trips, the CRC, shapes a sender never makes."""

from __future__ import annotations

import json
import random

import pytest

from transfer import wire

SESSION = bytes.fromhex("0011223344556677")


def test_data_round_trip_and_header_size():
    payload = bytes(range(256)) * 6
    dg = wire.pack_data(SESSION, 42, 10_000_000, 3, 16 * 1400, 1400, 7, 16, 20, payload[:1400])
    assert len(dg) == wire.DATA_HEADER_SIZE + 1400 == 1448
    h = wire.parse(dg)
    assert h == wire.DataHeader(SESSION, 42, 10_000_000, 3, 16 * 1400, 1400, 7, 16, 20)
    assert dg[wire.DATA_HEADER_SIZE:] == payload[:1400]


def test_meta_round_trip_with_unicode_name():
    meta = wire.Meta(SESSION, 9, 123, 16 * 1400, 1400, 16, 20, 2, wire.KIND_RESENT, bytes(range(32)), "ABC-公文.p7m")
    assert wire.parse(wire.pack_meta(meta)) == meta


def test_every_single_bit_flip_is_rejected():
    rng = random.Random(7)
    dg = wire.pack_data(SESSION, 1, 5000, 0, 16 * 300, 300, 0, 16, 20, rng.randbytes(300))
    for bit in range(len(dg) * 8):
        bad = bytearray(dg)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(wire.BadDatagram):
            wire.parse(bytes(bad))


def test_random_multi_bit_corruption_is_rejected():
    rng = random.Random(8)
    dg = wire.pack_data(SESSION, 1, 5000, 0, 16 * 1400, 1400, 0, 16, 20, rng.randbytes(1400))
    for _ in range(2000):
        bad = bytearray(dg)
        for _ in range(rng.randint(2, 3)):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        if bytes(bad) == dg:
            continue
        with pytest.raises(wire.BadDatagram):
            wire.parse(bytes(bad))


@pytest.mark.parametrize(("dg", "reason"), [
    (b"", "short"),
    (b"XX" + bytes(40), "magic"),
    (b"TG\x09" + bytes(40), "version"),
])
def test_foreign_datagrams(dg, reason):
    with pytest.raises(wire.BadDatagram, match=reason):
        wire.parse(dg)


def test_shapes_a_sender_never_makes_are_refused():
    # share number beyond m, a share longer than the nominal size, a block past the end of the file
    for args in [(0, 20, 16, 20, 100), (0, 0, 16, 20, 1401), (5, 0, 16, 20, 100)]:
        block, share, k, m, n = args
        dg = wire.pack_data(SESSION, 1, 4 * 16 * 1400, block, 16 * 1400, 1400, share, k, m, bytes(n))
        with pytest.raises(wire.BadDatagram, match="shape"):
            wire.parse(dg)


def test_heartbeat_is_split_into_parts_that_fit_and_keep_every_entry():
    ledger = [[seq, f"TRACK{seq:08d}.p7m", seq * 1000, f"{seq:064x}"] for seq in range(1, 257)]
    base = {"n": 5, "v": 1, "started": "2026-01-01T00:00:00+00:00", "health": {"queue_depth": 3}}
    parts = wire.heartbeat_parts(SESSION, 256, base, ledger, 1400 + wire.COMMON_SIZE)
    assert len(parts) > 1
    seen = []
    for i, dg in enumerate(parts):
        assert len(dg) <= 1400 + 2 * wire.COMMON_SIZE
        hb = wire.parse(dg)
        assert hb.seq == 256 and hb.session == SESSION
        assert hb.body["i"] == i and hb.body["of"] == len(parts) and hb.body["n"] == 5
        assert ("health" in hb.body) == (i == 0)
        seen.extend(hb.body["ledger"])
    assert seen == json.loads(json.dumps(ledger))
