"""The lossy relay: seeded, and losing what a real link would lose."""

from __future__ import annotations

import random
import socket

from transfer.relay import Fates, Relay


def _relay(**fates) -> tuple[Relay, socket.socket]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    r = Relay("127.0.0.1:0", f"127.0.0.1:{sink.getsockname()[1]}", Fates(**fates))
    return r, sink


def _drain(sink: socket.socket) -> list[bytes]:
    sink.settimeout(0.2)
    out = []
    try:
        while True:
            out.append(sink.recv(70000))
    except TimeoutError:
        return out


def _run(fates: dict, datagrams: list[bytes]) -> tuple[dict, list[bytes]]:
    r, sink = _relay(**fates)
    for dg in datagrams:
        r.handle(dg)
    r._release_held(all_of_them=True)
    got = _drain(sink)
    stats = r.stats()
    r.inp.close()
    r.out.close()
    sink.close()
    return stats, got


def test_same_seed_same_fates_and_every_fate_happens():
    data = [i.to_bytes(4, "big") * 100 for i in range(2000)]
    fates = {"loss": 0.05, "burst": 10, "burst_prob": 0.002, "reorder": 0.05, "duplicate": 0.05, "corrupt": 0.05,
             "seed": 9}
    a_stats, a = _run(fates, data)
    b_stats, b = _run(fates, data)
    assert a == b and a_stats == b_stats
    assert all(a_stats[k] > 0 for k in ("dropped", "burst_dropped", "reordered", "duplicated", "corrupted"))
    assert a != sorted(a, key=lambda d: data.index(d) if d in data else 0)  # order changed
    c_stats, _ = _run({**fates, "seed": 10}, data)
    assert c_stats != a_stats


def test_fragmentation_model_loses_big_datagrams_far_more_often():
    r, sink = _relay(mtu=1500)
    assert r.fragments(1448) == 1
    assert r.fragments(1473) == 2
    assert r.fragments(65000) == 44
    sink.close()
    big = [random.Random(1).randbytes(60000)] * 400
    small = [b"x" * 1400] * 400
    _, big_out = _run({"loss": 0.01, "mtu": 1500, "seed": 3}, big)
    _, small_out = _run({"loss": 0.01, "mtu": 1500, "seed": 3}, small)
    # 1 % per fragment: about 1 in 3 of the 41-fragment datagrams is lost, ~1 % of the small ones.
    assert len(big_out) < 330 and len(small_out) > 380
