"""The sd_notify protocol as the units rely on it (Type=notify, NotifyAccess=main).

A Unix datagram socket plays systemd's notify socket: with SO_PASSCRED the kernel stamps
every message with the sender's PID, which is what NotifyAccess=main checks. The daemons
run as real processes started the way ExecStart= starts them (the `tgw` script is the main
process).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TGW = str(Path(sys.executable).with_name("tgw"))


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[int, str]] = []  # (sender pid, message)

    def receive(self, timeout: float) -> tuple[int, str] | None:
        self.sock.settimeout(timeout)
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", payload[:12])
        message = (pid, data.decode())
        self.messages.append(message)
        return message

    def wait_for(self, proc: subprocess.Popen, wanted: str, timeout: float = 60) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"daemon exited with {proc.returncode} before {wanted}"
            got = self.receive(0.5)
            if got and wanted in got[1].splitlines():
                return got
        pytest.fail(f"no {wanted} within {timeout} s; got {self.messages}")

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive(0.2)

    def take_queued(self) -> None:
        """What the daemon sent before it exited (already in the socket's queue)."""
        while self.receive(0.05) is not None:
            pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def start(config: Path, *verb: str, notify: NotifySocket, log: Path) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    return subprocess.Popen([TGW, *verb, "--config", str(config)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"did not stop on SIGTERM:\n{log.read_text()[-3000:]}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_runner_sends_ready_after_recovery_then_watchdog_from_the_main_pid(tmp_path, notify):
    # tgw transfer send: a numbered file without its row (a crash during pick-up) must be
    # adopted by start-up recovery BEFORE READY=1.
    sent = tmp_path / "sent"
    sent.mkdir()
    (sent / "000000000001-T1.p7m").write_bytes(b"x" * 100)
    db = tmp_path / "outer.db"
    config = write(tmp_path / "send.yaml", {
        "node": {"zone": "outer"},
        "database": {"url": f"sqlite:///{db}"},
        "transfer_send": {"outbound": str(tmp_path / "outbound"), "sent_dir": str(sent),
                          "state_dir": str(tmp_path / "state"), "target": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                          "repeat": 1},
    })
    log = tmp_path / "send.log"
    proc = start(config, "transfer", "send", notify=notify, log=log)
    try:
        pid, _ = notify.wait_for(proc, "READY=1")
        assert pid == proc.pid, "READY=1 must come from the main process (NotifyAccess=main)"
        with sqlite3.connect(db) as conn:
            seqs = [row[0] for row in conn.execute("SELECT seq FROM transfer_sent")]
        assert seqs == [1], "recovery finished before READY=1"
        pid, _ = notify.wait_for(proc, "WATCHDOG=1")
        assert pid == proc.pid
    finally:
        code = stop(proc, log)
        notify.take_queued()
    assert code == 0, log.read_text()[-3000:]
    assert {pid for pid, _ in notify.messages} == {proc.pid}
    assert notify.messages[-1][1] == "STOPPING=1"


def test_monitor_sends_ready_and_watchdog_from_the_main_pid(tmp_path, notify):
    config = write(tmp_path / "monitor.yaml", {
        "node": {"zone": "outer", "data_dir": str(tmp_path)},
        "database": {"url": f"sqlite:///{tmp_path / 'outer.db'}"},
        # The unit's endpoint form: a Unix socket, so the zone's daemons need no network for it.
        "monitor": {"listen": f"ipc://{tmp_path / 'feed.sock'}", "metrics_bind": None, "interval_seconds": 1},
    })
    log = tmp_path / "monitor.log"
    proc = start(config, "monitor", "run", notify=notify, log=log)
    try:
        pid, _ = notify.wait_for(proc, "READY=1")
        assert pid == proc.pid
        assert (tmp_path / "feed.sock").is_socket(), "the feed is bound before READY=1"
        pid, _ = notify.wait_for(proc, "WATCHDOG=1")
        assert pid == proc.pid
    finally:
        code = stop(proc, log)
        notify.take_queued()
    assert code == 0, log.read_text()[-3000:]
    assert {pid for pid, _ in notify.messages} == {proc.pid}


def test_gunicorn_arbiter_is_the_main_pid_and_sends_ready_once_listening(tmp_path, notify, demo_pki):
    port = free_port()
    var = tmp_path / "var"
    config = write(tmp_path / "outer.yaml", {
        "node": {"zone": "outer", "data_dir": str(var)},
        "database": {"url": f"sqlite:///{tmp_path / 'outer.db'}"},
        "trust": {"anchors": [str(demo_pki / "root.pem")], "intermediates": [str(demo_pki / "gca.pem")],
                  "crl_dir": str(demo_pki / "crl")},
        "outer": {"bind": f"127.0.0.1:{port}", "workers": 2, "threads": 1,
                  "outbound": str(var / "outbound"), "upload_tmp": str(var / "incoming"),
                  "secret_key_file": str(var / "secret"), "registration_export_dir": str(var / "certreq"),
                  "min_free_bytes": 0, "min_free_fraction": 0.0},
    })
    log = tmp_path / "outer.log"
    proc = start(config, "outer", "serve", notify=notify, log=log)
    try:
        pid, _ = notify.wait_for(proc, "READY=1")
        assert pid == proc.pid, "gunicorn's arbiter runs in the main process: NotifyAccess=main suffices"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # READY=1 came after the listening socket was bound
        # Workers boot after READY=1; none of them may send anything (NotifyAccess=main would
        # drop it and log a warning), and the arbiter sends no WATCHDOG=1 (hence no WatchdogSec=).
        notify.drain(2.0)
    finally:
        code = stop(proc, log)
        notify.take_queued()
    assert code == 0, log.read_text()[-3000:]
    assert {pid for pid, _ in notify.messages} == {proc.pid}
    assert not any("WATCHDOG=1" in m for _, m in notify.messages)
