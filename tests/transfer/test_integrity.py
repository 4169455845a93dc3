"""Corrupt datagrams never make a corrupt file; a file is never published twice."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from pathlib import Path

from transfer import wire
from transfer.sender import copy_datagrams
from transfer.sender_store import Job

from .conftest import Link, check_inbound, free_udp_port, make_files, wait_until


def test_corrupting_relay_never_produces_a_corrupt_file(link):
    rng = random.Random(77)
    files = make_files(rng, [rng.randrange(500, 300_000) for _ in range(40)] + [3 << 20])
    link.write_configs()
    link.receiver()
    relay = link.relay("--corrupt", "0.05", "--loss", "0.02", "--seed", "21")
    link.sender()
    for name, data in files.items():
        link.publish(name, data)
    wait_until(lambda: link.all_sent_once(len(files), 2) and not link.open_gaps()
               and len(list(link.inbound.iterdir())) >= len(files), 90, "all files")
    assert json.loads(relay.stop())["corrupted"] > 100
    check_inbound(link, files)
    wait_until(lambda: link.receiver_state().get("bad_datagrams", {}).get("crc", 0) > 100, 10,
               "the receiver to count the corrupt datagrams it dropped")
    assert link.receiver_state()["files_corrupt"] == 0


class Injector:
    """Plays the sender by hand: crafted datagrams straight to the receiver."""

    def __init__(self, port: int, tmp: Path) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = ("127.0.0.1", port)
        self.tmp = tmp

    def copy(self, session: bytes, seq: int, name: str, data: bytes, *, copy: int = 1, tamper: bool = False) -> None:
        src = self.tmp / f"inject-{seq}-{copy}"
        src.write_bytes(data)
        job = Job(seq, name, len(data), hashlib.sha256(data).hexdigest(), str(src), copy, False)
        for i, dg in enumerate(copy_datagrams(job, session, k=16, m=20, share_size=1400, interleave=8)):
            msg = wire.parse(dg)
            if tamper and isinstance(msg, wire.DataHeader) and msg.block == 0 and msg.share == 0:
                # A wrong share with a CORRECT CRC: only the whole-file SHA-256 can catch it.
                bad = bytearray(dg[wire.DATA_HEADER_SIZE:])
                bad[100] ^= 0xFF
                dg = wire.pack_data(session, seq, msg.file_size, 0, msg.stride, msg.share_size, 0, msg.k, msg.m,
                                    bytes(bad))
                assert isinstance(wire.parse(dg), wire.DataHeader)
            self.sock.sendto(dg, self.addr)
            if i % 200 == 199:
                time.sleep(0.002)


def test_wrong_share_with_valid_crc_is_caught_by_sha256_then_a_good_copy_wins(tmp_path):
    port = free_udp_port()
    link = Link(tmp_path, port, port)
    link.write_configs()
    try:
        link.receiver()
        inj = Injector(port, tmp_path)
        data = random.Random(5).randbytes(200_000)
        session = bytes(8)
        inj.copy(session, 1, "TAMPERED.p7m", data, tamper=True)
        wait_until(lambda: link.receiver_state().get("files_corrupt") == 1, 15, "the SHA-256 check to fail")
        assert not list(link.inbound.iterdir())
        assert not link.inner_rows("select * from transfer_received")
        inj.copy(session, 1, "TAMPERED.p7m", data, copy=2)
        wait_until(lambda: (link.inbound / "TAMPERED.p7m").exists(), 15, "the good copy")
        assert (link.inbound / "TAMPERED.p7m").read_bytes() == data
    finally:
        link.stop_all()


def test_duplicates_dropped_by_number_and_by_sha256_even_after_a_restart(tmp_path):
    port = free_udp_port()
    link = Link(tmp_path, port, port)
    link.write_configs()
    try:
        receiver = link.receiver()
        inj = Injector(port, tmp_path)
        data = random.Random(6).randbytes(50_000)
        inj.copy(b"A" * 8, 1, "FIRST.p7m", data)
        wait_until(lambda: (link.inbound / "FIRST.p7m").exists(), 15, "first file")
        # The inner zone consumes the file, so a second publication would be visible.
        (link.inbound / "FIRST.p7m").unlink()
        receiver.kill9()
        link.receiver()
        # The same number from a new sender session (a resend after a sender restart) ...
        inj.copy(b"B" * 8, 1, "FIRST.p7m", data, copy=3)
        # ... and the same bytes under another number and name (an identical upload).
        inj.copy(b"B" * 8, 2, "SECOND.p7m", data)
        other = random.Random(7).randbytes(10_000)
        inj.copy(b"B" * 8, 3, "THIRD.p7m", other)
        wait_until(lambda: (link.inbound / "THIRD.p7m").exists(), 15, "third file")
        wait_until(lambda: link.inner_rows("select count(*) from provenance_events where event='duplicate'")[0][0]
                   >= 2, 15, "duplicate events")
        assert sorted(p.name for p in link.inbound.iterdir()) == ["THIRD.p7m"]
        # The rename into the inbound spool comes before the commit that marks the row
        # published, so the file can be seen a moment before its row says so.
        expected = [(1, "published"), (2, "duplicate"), (3, "published")]
        wait_until(lambda: link.inner_rows("select seq, status from transfer_received order by seq, id") == expected,
                   15, "the rows to be committed")
        assert link.inner_rows("select seq, status from transfer_received order by seq, id") == expected
    finally:
        link.stop_all()


def test_files_of_the_outer_zone_survive_unusual_names_and_sizes(link):
    """Empty files, one byte, exactly one block, one byte more, and a name with dots."""
    link.write_configs(send={"payload_size": 512, "fec_k": 4, "fec_m": 6})
    sizes = {"EMPTY.p7m": 0, "ONE.p7m": 1, "BLOCK.p7m": 2048, "BLOCKPLUS.p7m": 2049, "A.B.C.p7m": 70_001}
    rng = random.Random(1)
    files = {name: rng.randbytes(n) for name, n in sizes.items()}
    link.receiver()
    link.relay("--loss", "0.05", "--seed", "2")
    link.sender()
    for name, data in files.items():
        link.publish(name, data)
    wait_until(lambda: link.all_sent_once(len(files), 2) and len(list(link.inbound.iterdir())) == len(files)
               and not link.open_gaps(), 60, "all files")
    check_inbound(link, files)
