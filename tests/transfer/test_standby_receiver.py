"""Two receivers behind one link, one PostgreSQL database: one active, one standby.

Real `tgw transfer send` and two real `tgw transfer receive` processes on the same UDP port,
each with its own state, staging and inbound folders (as on two hosts). The active one is
killed with SIGKILL, or loses its lock session; the standby takes the port, loads the ledger
and goes on, and every file is published once across both inbound folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
from pathlib import Path

import pytest
import sqlalchemy
import yaml

from .conftest import Link, Proc, free_udp_port, make_files, wait_until

pytestmark = pytest.mark.timeout(300)


class Pair:
    """Receivers A and B of one link, sharing the PostgreSQL ledger."""

    def __init__(self, link: Link, pg_url: str) -> None:
        self.link = link
        self.pg_url = pg_url
        self.engine = sqlalchemy.create_engine(pg_url)
        self.port = link.recv_port
        link.write_configs(send={"repeat": 1})
        for name in ("a", "b"):
            (link.root / name).mkdir(exist_ok=True)
            r = {"listen": f"127.0.0.1:{self.port}", "inbound": "inbound", "staging_dir": "staging",
                 "state_dir": "state", "heartbeat_seconds": 0.5, "gap_grace_seconds": 0.5,
                 "socket_buffer_bytes": 16 * 1024 * 1024, "standby_poll_seconds": 0.5}
            self.cfg(name).write_text(yaml.safe_dump({
                "node": {"zone": "inner", "host": f"inner-{name}"}, "database": {"url": pg_url},
                "transfer_receive": r}))

    def cfg(self, name: str) -> Path:
        return self.link.root / name / "recv.yaml"

    def inbound(self, name: str) -> Path:
        return self.link.root / name / "inbound"

    def log(self, name: str) -> bytes:
        path = self.link.root / f"recv-{name}.log"
        return path.read_bytes() if path.exists() else b""

    def start(self, name: str, expect: bytes) -> Proc:
        p = self.link.start(["transfer", "receive", "--config", str(self.cfg(name))], f"recv-{name}")
        wait_until(lambda: expect in self.log(name) or not p.alive(), 30, f"receiver {name}: {expect!r}")
        assert p.alive(), self.log(name).decode()
        return p

    def rows(self, sql: str, **params) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sqlalchemy.text(sql), params)]

    def state(self, daemon: str) -> dict:
        rows = self.rows("select host, state from daemon_status where daemon = :d", d=daemon)
        if not rows:
            return {}
        state = rows[0][1] if isinstance(rows[0][1], dict) else json.loads(rows[0][1])
        return {**state, "row_host": rows[0][0]}

    def published(self) -> dict[str, list[str]]:
        """File name -> the receivers whose inbound folder holds it."""
        out: dict[str, list[str]] = {}
        for name in ("a", "b"):
            folder = self.inbound(name)
            for p in folder.iterdir() if folder.exists() else ():
                if not p.name.startswith("."):
                    out.setdefault(p.name, []).append(name)
        return out

    def holds_port(self, pid: int) -> bool:
        """Whether process `pid` has a socket bound to the link's UDP port (from /proc)."""
        inodes = set()
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                        inodes.add(fields[9])
        fds = Path(f"/proc/{pid}/fd")
        links = set()
        for fd in fds.iterdir():
            try:
                links.add(os.readlink(fd))
            except OSError:
                continue
        return any(f"socket:[{i}]" in links for i in inodes)


def _daemon_down(pair: Pair, timeout: float) -> list[str]:
    """The monitor's daemon-down check over the heartbeat rows in the database, as it runs."""
    from monitoring.checks.base import CheckEnv
    from monitoring.checks.daemons import daemon_down
    from monitoring.snapshot import DaemonSeen, Snapshot
    from tgw_common.config import MonitorConfig
    from tgw_common.db import utcnow

    rows = pair.rows("select daemon, zone, host, session, started_at, at, state from daemon_status")
    seen = {r[0]: DaemonSeen(name=r[0], zone=r[1], host=r[2], session=r[3], started_at=r[4], at=r[5],
                             state=r[6] if isinstance(r[6], dict) else json.loads(r[6])) for r in rows}
    now = utcnow()
    snap = Snapshot(zone="inner", host="mon", monitor_started_at=now, daemons=seen)
    env = CheckEnv(MonitorConfig(heartbeat_timeout_seconds=timeout), "inner", "mon")
    return sorted(a.subject for a in daemon_down(snap, env, now))


@pytest.fixture
def pair(tmp_path, pg_url):
    port = free_udp_port()
    link = Link(tmp_path, port, port)
    pr = Pair(link, pg_url)
    yield pr
    link.stop_all()
    pr.engine.dispose()


def _send(pair: Pair, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        pair.link.publish(name, data)


def _check_once(pair: Pair, files: dict[str, bytes]) -> dict[str, list[str]]:
    # The row becomes "published" just after the rename: wait for the last commit.
    wait_until(lambda: not pair.rows("select seq from transfer_received where status = 'publishing'"), 20,
               "the last publications to be committed")
    where = pair.published()
    assert sorted(where) == sorted(files), f"missing {sorted(set(files) - set(where))[:5]}"
    assert all(len(v) == 1 for v in where.values()), {k: v for k, v in where.items() if len(v) > 1}
    for name, data in files.items():
        got = (pair.inbound(where[name][0]) / name).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
    seqs = pair.rows("select seq, count(*) from transfer_received where status = 'published' group by seq")
    assert len(seqs) == len(files) and all(c == 1 for _, c in seqs), pair.rows(
        "select seq, status, owner, name from transfer_received order by id")
    numbers = sorted(s for s, _ in seqs)
    assert numbers == list(range(numbers[0], numbers[0] + len(files))), "the ledger skips a number"
    assert pair.rows("select seq, source, closed_by from transfer_gaps") == [], "a gap was recorded"
    arrived = pair.rows("select count(*), count(distinct sha256) from provenance_events where event = 'arrived'")
    assert arrived[0] == (len(files), len(files))
    return where


def test_standby_takes_over_after_kill9_and_each_file_is_published_once(pair):
    rng = random.Random(17)
    a = pair.start("a", b"receiver ready")
    b = pair.start("b", b"receiver standby")
    wait_until(lambda: pair.state("transfer-receive-standby").get("role") == "standby", 20, "standby heartbeat")
    assert pair.state("transfer-receive-standby")["row_host"] == "inner-b"
    sender = pair.link.sender()
    first = make_files(rng, [rng.randrange(1, 300_000) for _ in range(20)], prefix="A")
    _send(pair, first)
    wait_until(lambda: len(pair.published()) == len(first), 60, "first batch through the active receiver")
    assert set(pair.published()) == set(first) and not any(pair.inbound("b").glob("*.p7m"))
    active = pair.state("transfer-receive")
    assert (active["role"], active["row_host"]) == ("active", "inner-a")
    # The standby never binds while the active one lives.
    assert pair.holds_port(a.p.pid) and not pair.holds_port(b.p.pid)
    assert b"receiver ready" not in pair.log("b")
    assert _daemon_down(pair, 5) == []  # both beat: no alert, the standby's none for the receiver

    a.kill9()
    wait_until(lambda: b"receiver ready" in pair.log("b"), 30, "the standby to take over")
    assert pair.holds_port(b.p.pid)
    wait_until(lambda: pair.state("transfer-receive").get("row_host") == "inner-b", 20, "active heartbeat from b")
    assert pair.state("transfer-receive")["takeovers"] == 1
    # The standby role stays empty (its row ages) until a failed receiver comes back as a standby.
    assert pair.state("transfer-receive-standby")["row_host"] == "inner-b"
    wait_until(lambda: _daemon_down(pair, 2) == ["transfer-receive-standby"], 20,
               "the empty standby role, and only it, to be reported")

    second = make_files(rng, [rng.randrange(1, 300_000) for _ in range(20)], prefix="B")
    _send(pair, second)
    ids = [x for name in first for x in ("--id", name.rsplit(".", 1)[0])]
    r = pair.link.tgw("transfer", "resend", "--config", str(pair.link.send_cfg), *ids, "--timeout", "120")
    assert r.returncode == 0, r.stderr
    everything = {**first, **second}
    wait_until(lambda: len(pair.published()) == len(everything), 60, "second batch through the standby")
    wait_until(lambda: pair.state("transfer-receive").get("files_duplicate", 0)
               + pair.state("transfer-receive").get("datagrams_for_done_files", 0) > 0, 30, "the repeated copies")
    wait_until(lambda: pair.state("transfer-receive").get("files_duplicate", 0) >= len(first), 30,
               "every repeated copy dropped as a duplicate")
    where = _check_once(pair, everything)
    assert {where[n][0] for n in first} == {"a"} and {where[n][0] for n in second} == {"b"}
    assert sender.alive() and b.alive()


def test_a_receiver_that_loses_its_lock_session_stops_and_the_standby_takes_over(pair):
    rng = random.Random(18)
    a = pair.start("a", b"receiver ready")
    b = pair.start("b", b"receiver standby")
    pair.link.sender()
    first = make_files(rng, [rng.randrange(1, 100_000) for _ in range(5)], prefix="C")
    _send(pair, first)
    wait_until(lambda: len(pair.published()) == len(first), 60, "first files")
    # Cut A's lock session as a network failure or a database restart would.
    cut = pair.rows("select pg_terminate_backend(pid) from pg_stat_activity"
                    " where application_name = :n", n=f"tgw transfer receive inner-a {a.p.pid}")
    assert cut == [(True,)]
    wait_until(lambda: b"lost the active lock" in pair.log("a"), 30, "a to notice")
    wait_until(lambda: b"receiver ready" in pair.log("b"), 30, "b to take over")
    assert not pair.holds_port(a.p.pid) and pair.holds_port(b.p.pid)
    # A is a standby now: alive, polling, and not bound while B lives.
    wait_until(lambda: pair.state("transfer-receive-standby").get("owner", "").startswith("inner-a:"), 20,
               "a's standby heartbeat")
    second = make_files(rng, [rng.randrange(1, 100_000) for _ in range(5)], prefix="D")
    _send(pair, second)
    wait_until(lambda: len(pair.published()) == 10, 60, "files through b")
    assert a.alive() and not pair.holds_port(a.p.pid)
    where = _check_once(pair, {**first, **second})
    assert {where[n][0] for n in second} == {"b"}
    b.p.send_signal(signal.SIGKILL)
    b.p.wait(10)
    wait_until(lambda: b"receiver ready" in pair.log("a"), 30, "a to take over again")


def test_on_sqlite_a_second_receiver_of_the_same_config_waits_and_takes_over(link):
    """One host, SQLite: the state folder's flock is the active lock."""
    rng = random.Random(19)
    link.write_configs(send={"repeat": 1, "target": f"127.0.0.1:{link.recv_port}"},
                       recv={"standby_poll_seconds": 0.5})
    a = link.receiver()
    b = link.start(["transfer", "receive", "--config", str(link.recv_cfg)], "receiver")
    wait_until(lambda: b"receiver standby" in (link.root / "receiver.log").read_bytes(), 30, "the standby")
    link.sender()
    first = make_files(rng, [rng.randrange(1, 100_000) for _ in range(5)], prefix="E")
    _send_link(link, first)
    wait_until(lambda: len(list(link.inbound.glob("*.p7m"))) == 5, 60, "first files")
    a.kill9()
    wait_until(lambda: (link.root / "receiver.log").read_bytes().count(b"receiver ready") == 2, 30, "takeover")
    second = make_files(rng, [rng.randrange(1, 100_000) for _ in range(5)], prefix="F")
    _send_link(link, second)
    wait_until(lambda: len(list(link.inbound.glob("*.p7m"))) == 10, 60, "second files")
    assert b.alive()
    wait_until(lambda: not link.inner_rows("select seq from transfer_received where status = 'publishing'"), 20,
               "the last publications to be committed")
    rows = link.inner_rows("select seq, count(*) from transfer_received where status = 'published' group by seq")
    assert len(rows) == 10 and all(c == 1 for _, c in rows)
    assert link.open_gaps() == []


def _send_link(link: Link, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        link.publish(name, data)


def test_the_active_lock_takes_a_multi_host_database_url(tmp_path):
    # A standby database makes database.url name both hosts; the receiver's lock must accept it.
    from transfer.active_lock import ActiveLock

    lock = ActiveLock("postgresql+psycopg://gw@db1:5441,db2:5442/tgw?target_session_attrs=read-write",
                      tmp_path / "receive.lock", application_name="test")
    assert lock.postgres and "host=db1%3A5441&host=db2%3A5442" in lock.url
