"""Helpers for the transfer tests: configs in tmp_path, real `tgw transfer` processes, files.

Everything runs over real UDP on 127.0.0.1 (or in network namespaces for the one-way
proof); the processes are the installed `tgw` command, so kill -9 is a real kill -9.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.kit import free_port, wait_until


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)

TGW = str(Path(sys.executable).with_name("tgw"))


class Proc:
    """One `tgw ...` process with its stderr in a log file."""

    def __init__(self, args: list[str], log: Path, *, prefix: list[str] | None = None) -> None:
        self.args = args
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - kept open while the process runs
        self.p = subprocess.Popen([*(prefix or []), TGW, "--log-level", "INFO", *args],
                                  stdout=subprocess.PIPE, stderr=self.fh)

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        out = self.p.stdout.read().decode() if self.p.stdout else ""
        self.fh.close()
        return out

    def alive(self) -> bool:
        return self.p.poll() is None


@dataclass
class Link:
    """A sender config, a receiver config and their folders under one tmp_path."""

    root: Path
    send_port: int  # where the sender sends (the relay, or the receiver directly)
    recv_port: int
    send_cfg: Path = field(init=False)
    recv_cfg: Path = field(init=False)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.send_cfg = self.root / "send.yaml"
        self.recv_cfg = self.root / "recv.yaml"

    @property
    def outbound(self) -> Path:
        return self.root / "outer" / "outbound"

    @property
    def inbound(self) -> Path:
        return self.root / "inner" / "inbound"

    @property
    def outer_db(self) -> Path:
        return self.root / "outer" / "outer.db"

    @property
    def inner_db(self) -> Path:
        return self.root / "inner" / "inner.db"

    def write_configs(self, send: dict | None = None, recv: dict | None = None) -> None:
        s = {"outbound": "outer/outbound", "sent_dir": "outer/sent", "state_dir": "outer/state",
             "target": f"127.0.0.1:{self.send_port}", "rate_bps": 300_000_000, "repeat": 2,
             "repeat_spacing_seconds": 1.0, "heartbeat_seconds": 1.0, "rescan_seconds": 5}
        r = {"listen": f"127.0.0.1:{self.recv_port}", "inbound": "inner/inbound", "staging_dir": "inner/staging",
             "state_dir": "inner/state", "heartbeat_seconds": 1.0, "gap_grace_seconds": 0.5,
             "socket_buffer_bytes": 64 * 1024 * 1024}
        s.update(send or {})
        r.update(recv or {})
        self.send_cfg.write_text(yaml.safe_dump({
            "node": {"zone": "outer", "host": "outer-test"},
            "database": {"url": "sqlite:///outer/outer.db"}, "transfer_send": s}))
        self.recv_cfg.write_text(yaml.safe_dump({
            "node": {"zone": "inner", "host": "inner-test"},
            "database": {"url": "sqlite:///inner/inner.db"}, "transfer_receive": r}))
        for d in ("outer/outbound", "inner"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    # --- processes
    def start(self, args: list[str], name: str, prefix: list[str] | None = None) -> Proc:
        p = Proc(args, self.root / f"{name}.log", prefix=prefix)
        self.procs.append(p)
        return p

    def _log_count(self, name: str, text: bytes) -> int:
        log = self.root / f"{name}.log"
        return log.read_bytes().count(text) if log.exists() else 0

    def receiver(self, prefix: list[str] | None = None) -> Proc:
        before = self._log_count("receiver", b"receiver ready")
        p = self.start(["transfer", "receive", "--config", str(self.recv_cfg)], "receiver", prefix)
        wait_until(lambda: self._log_count("receiver", b"receiver ready") > before or not p.alive(),
                   20, "receiver start")
        assert p.alive(), (self.root / "receiver.log").read_text()
        return p

    def sender(self, prefix: list[str] | None = None) -> Proc:
        return self.start(["transfer", "send", "--config", str(self.send_cfg)], "sender", prefix)

    def relay(self, *flags: str) -> Proc:
        before = self._log_count("relay", b"listening")
        p = self.start(["transfer", "relay", "--listen", f"127.0.0.1:{self.send_port}",
                        "--to", f"127.0.0.1:{self.recv_port}", *flags], "relay")
        wait_until(lambda: self._log_count("relay", b"listening") > before or not p.alive(), 20, "relay")
        return p

    def tgw(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([TGW, *args], capture_output=True, text=True, input=input, timeout=timeout)

    def stop_all(self) -> None:
        for p in self.procs:
            p.stop()

    # --- files and state
    def publish(self, name: str, data: bytes) -> None:
        """What the outer zone does: write aside, fsync, rename into the outbound spool."""
        tmp = self.outbound / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.outbound / name)

    def inner_rows(self, sql: str, *params) -> list[tuple]:
        return _query(self.inner_db, sql, params)

    def outer_rows(self, sql: str, *params) -> list[tuple]:
        return _query(self.outer_db, sql, params)

    def open_gaps(self) -> list[int]:
        if not self.inner_db.exists():
            return []
        return [r[0] for r in self.inner_rows("select seq from transfer_gaps where closed_at is null order by seq")]

    def receiver_state(self) -> dict:
        rows = self.inner_rows("select state from daemon_status where daemon = 'transfer-receive'")
        return json.loads(rows[0][0]) if rows else {}

    def all_sent_once(self, n: int, copies: int = 1) -> bool:
        if not self.outer_db.exists():
            return False
        try:
            rows = self.outer_rows("select count(*) from transfer_sent where copies_sent >= ?", copies)
        except sqlite3.OperationalError:
            return False
        return rows[0][0] >= n


def _query(db: Path, sql: str, params: tuple) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def make_files(rng: random.Random, sizes: list[int], prefix: str = "T") -> dict[str, bytes]:
    """Named like the outer zone names them: <tracking_id>.p7m."""
    return {f"{prefix}{i:05d}{rng.randrange(16**6):06X}.p7m": rng.randbytes(size) for i, size in enumerate(sizes)}


def check_inbound(link: Link, files: dict[str, bytes]) -> None:
    """Every file arrived once, byte for byte, and nothing else is in the inbound spool."""
    published = sorted(p.name for p in link.inbound.iterdir() if not p.name.startswith("."))
    assert published == sorted(files), (
        f"missing {sorted(set(files) - set(published))[:10]}, unexpected {sorted(set(published) - set(files))[:10]}")
    for name, data in files.items():
        got = (link.inbound / name).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), f"{name} differs"
    rows = link.inner_rows("select seq, count(*) from transfer_received where status = 'published' group by seq")
    assert len(rows) == len(files)
    assert all(c == 1 for _, c in rows), "a sequence number was published twice"
    arrived = link.inner_rows("select count(*), count(distinct sha256) from provenance_events where event='arrived'")
    assert arrived[0] == (len(files), len(files))


@pytest.fixture
def link(tmp_path: Path):
    lk = Link(tmp_path, free_udp_port(), free_udp_port())
    yield lk
    lk.stop_all()
