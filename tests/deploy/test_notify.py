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
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.notifysock import NotifySocket

TGW = str(Path(sys.executable).with_name("tgw"))


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


def _gunicorn_config(tmp_path: Path, pki: Path, verb: str, port: int) -> dict:
    var = tmp_path / "var"
    trust = {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")], "crl_dir": str(pki / "crl")}
    if verb == "outer serve":
        return {"node": {"zone": "outer", "data_dir": str(var)},
                "database": {"url": f"sqlite:///{tmp_path / 'outer.db'}"}, "trust": trust,
                "outer": {"bind": f"127.0.0.1:{port}", "workers": 1, "threads": 1,
                          "outbound": str(var / "outbound"), "upload_tmp": str(var / "incoming"),
                          "secret_key_file": str(var / "secret"), "registration_export_dir": str(var / "certreq"),
                          "min_free_bytes": 0, "min_free_fraction": 0.0}}
    return {"node": {"zone": "inner", "data_dir": str(var)},
            "database": {"url": f"sqlite:///{tmp_path / 'inner.db'}"}, "trust": trust,
            "inner": {"inbound": str(var / "inbound"), "spool_dir": str(var / "spool"),
                      "quarantine_dir": str(var / "quarantine"), "archive_dir": str(var / "archive")},
            "console": {"bind": f"127.0.0.1:{port}", "workers": 1, "threads": 1,
                        "secret_key_file": str(var / "secret"), "certreq_import_dir": str(var / "certreq")}}


@pytest.mark.parametrize("verb", ["outer serve", "inner console"])
def test_gunicorn_arbiter_is_the_main_pid_and_sends_ready_once_listening(tmp_path, notify, demo_pki, verb):
    port = free_port()
    config = write(tmp_path / "gunicorn.yaml", _gunicorn_config(tmp_path, demo_pki, verb, port))
    log = tmp_path / "gunicorn.log"
    proc = start(config, *verb.split(), notify=notify, log=log)
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
