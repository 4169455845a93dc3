"""Every field the dashboard, `tgw inner status` and the monitor show about the daemons, with a
real value produced by the real parts: `tgw transfer send` and `tgw transfer receive` over
real UDP on 127.0.0.1, `tgw inner run` loading what arrives, the console app reading the
zone database, and the monitor's engine judging it. Nothing here writes a heartbeat by hand.

The sender is made to fail for real: a numbered file is truncated while its copy is on
the link, so the copy cannot be read to its end. That error must cross the one-way link in
the sender's heartbeat and reach the console's "Last error" and the monitor's
sender_health check.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.inner_zone.ikit import envelope
from tests.kit import free_port, wait_until

from .conftest import TGW, copy_zone, signed_in

SENDER_HOST = "outer-sender-host"


def _state(cz, daemon: str) -> tuple[str | None, dict]:
    import sqlite3

    con = sqlite3.connect(f"file:{cz.zone.db_url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("select host, state from daemon_status where daemon = ?", (daemon,)).fetchone()
    except sqlite3.OperationalError:
        return None, {}
    finally:
        con.close()
    return (row[0], json.loads(row[1])) if row else (None, {})


class Procs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([TGW, "--log-level", "INFO", *args], stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def _link_configs(cz, root: Path) -> tuple[Path, Path]:
    port = free_port(__import__("socket").SOCK_DGRAM)
    send = root / "send.yaml"
    recv = root / "recv.yaml"
    send.write_text(yaml.safe_dump({
        "node": {"zone": "outer", "host": SENDER_HOST},
        "database": {"url": f"sqlite:///{root / 'outer.db'}"},
        # Slow on purpose: the big file is still on the link when the test truncates it, and
        # the file after it waits for its first copy long enough to be seen waiting.
        "transfer_send": {"outbound": str(root / "outbound"), "sent_dir": str(root / "sent"),
                          "state_dir": str(root / "send-state"), "target": f"127.0.0.1:{port}",
                          "rate_bps": 3_000_000, "repeat": 1, "heartbeat_seconds": 0.5, "rescan_seconds": 5}}))
    recv.write_text(yaml.safe_dump({
        "node": {"zone": "inner", "host": "inner-receiver-host"},
        "database": {"url": cz.zone.db_url},
        "transfer_receive": {"listen": f"127.0.0.1:{port}", "inbound": str(cz.zone.inbound),
                             "staging_dir": str(root / "staging"), "state_dir": str(root / "recv-state"),
                             "heartbeat_seconds": 0.5, "gap_grace_seconds": 0.5,
                             "socket_buffer_bytes": 16 * 1024 * 1024}}))
    (root / "outbound").mkdir()
    return send, recv


def _publish(outbound: Path, name: str, data: bytes) -> None:
    tmp = outbound / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, outbound / name)


@pytest.fixture(scope="module")
def live(tmp_path_factory, zone_template, kit):
    """The whole inner side running, fed by a real sender, until the sender's error is across."""
    import sqlite3

    root = tmp_path_factory.mktemp("live")
    cz = copy_zone(zone_template, root / "z")
    send_cfg, recv_cfg = _link_configs(cz, root)
    procs = Procs(root)
    seen: dict[str, dict] = {}
    try:
        procs.start("receiver", "transfer", "receive", "--config", str(recv_cfg))
        wait_until(lambda: b"receiver ready" in (root / "receiver.log").read_bytes(), 30, "receiver ready")
        runner = procs.start("runner", "inner", "run", "--config", str(cz.config))
        sender = procs.start("sender", "transfer", "send", "--config", str(send_cfg))
        rng = random.Random(13)
        _publish(root / "outbound", "TPELIVE00001.p7m", envelope(kit, "A10001", number=9100, count=2))
        _publish(root / "outbound", "TPELIVE00002.p7m", rng.randbytes(6 * 1024 * 1024))
        _publish(root / "outbound", "TPELIVE00003.p7m", b"not an envelope at all")

        def numbered(seq: int) -> str | None:
            try:
                con = sqlite3.connect(f"file:{root / 'outer.db'}?mode=ro", uri=True, timeout=30)
                row = con.execute("select path from transfer_sent where seq = ?", (seq,)).fetchone()
                con.close()
            except sqlite3.OperationalError:
                return None
            return row[0] if row else None

        big = Path(wait_until(lambda: numbered(2), 30, "the big file numbered"))

        def waiting_seen() -> bool:
            _host, st = _state(cz, "outer.transfer-send")
            if st.get("oldest_age_seconds"):
                seen["sender_waiting"] = st
            rx = _state(cz, "transfer-receive")[1]
            if rx.get("files_in_progress"):
                seen["receiver_busy"] = rx
            return "sender_waiting" in seen and "receiver_busy" in seen

        wait_until(waiting_seen, 30, "the sender reporting a file waiting, the receiver one in progress")
        os.truncate(big, 1000)  # the copy on the link can no longer be read to its end

        def error_across() -> dict | None:
            host, st = _state(cz, "outer.transfer-send")
            return {"host": host, **st} if "cannot read numbered file" in (st.get("last_error") or "") else None

        seen["sender_error"] = wait_until(error_across, 60, "the sender's error across the link")

        def runner_done() -> dict | None:
            st = _state(cz, "inner-runner")[1]
            processed = st.get("processed") or {}
            return st if processed.get("loaded") and processed.get("refused") else None

        seen["runner"] = wait_until(runner_done, 60, "the runner loading the envelope and refusing the junk")
        seen["receiver"] = _state(cz, "transfer-receive")[1]
        seen["pids"] = {"sender": sender.pid, "runner": runner.pid}
        yield cz, seen
    finally:
        procs.stop()


def test_the_senders_last_error_crosses_the_link(live):
    _cz, seen = live
    err = seen["sender_error"]
    assert "TPELIVE00002.p7m" in err["last_error"] and "shorter" in err["last_error"]
    assert err["last_error_at"]
    # The row names the sender's own host and process, not the receiver that relayed it.
    assert err["host"] == SENDER_HOST and err["pid"] == seen["pids"]["sender"]
    assert err["files_numbered"] == 3 and err["copies_sent"] >= 2 and err["last_seq"] >= 1
    assert err["disk_free"] > 0 and err["rate_bps"] == 3_000_000 and err["seen_by"] == "transfer-receive"
    assert seen["sender_waiting"]["oldest_age_seconds"] > 0 and seen["sender_waiting"]["queue_depth"] >= 1
    assert seen["receiver_busy"]["files_in_progress"] >= 1


def test_the_dashboard_shows_every_daemon_field(live):
    from inner_zone.console.app import create_app
    from tgw_common.db import dispose_engines

    cz, seen = live
    app = create_app(cz.load_config())
    app.config["TESTING"] = True
    try:
        client = signed_in(app, "vera")
        page = client.get("/dashboard").get_data(as_text=True)
        data = client.get("/dashboard.json").get_json()
    finally:
        app.extensions["tgw_console"].close()
        dispose_engines()
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-daemon="([^"]+)".*?</tr>', page, re.S)}
    sender = rows["outer.transfer-send"]
    assert SENDER_HOST in sender and str(seen["pids"]["sender"]) in sender
    assert "cannot read numbered file" in sender  # the "Last error" column
    runner = rows["inner-runner"]
    assert 'class="status-up"' in runner and str(seen["pids"]["runner"]) in runner
    assert str(seen["pids"]["runner"]) in runner
    panel = page.split('id="outer-health"')[1].split("</section>")[0]
    assert "cannot read numbered file" in panel and SENDER_HOST in panel
    by = {d["daemon"]: d for d in data["daemons"]}
    assert by["outer.transfer-send"]["last_error"] and by["outer.transfer-send"]["pid"] == seen["pids"]["sender"]
    assert by["transfer-receive"]["host"] == "inner-receiver-host" and by["transfer-receive"]["pid"]
    outer = data["outer"]
    assert outer["host"] == SENDER_HOST and outer["files_numbered"] == 3 and outer["copies_sent"] >= 2
    assert outer["disk_free"] > 0 and outer["last_seq"] >= 1 and outer["sender_silent"] is False
    queues = {q["hop"]: q for q in data["queues"]}
    assert queues["quarantine"]["depth"] >= 1  # the junk file, refused by the runner


def test_inner_status_shows_the_runner(live):
    cz, seen = live
    out = json.loads(cz.tgw("status", "--json").stdout)
    runner = out["runner"]
    assert runner["host"] and runner["state"]["pid"] == seen["pids"]["runner"]
    assert runner["state"]["processed"]["loaded"] >= 1 and runner["state"]["processed"]["refused"] >= 1
    assert runner["seconds_since_heartbeat"] is not None and out["quarantine"] >= 1
    assert out["loaded"]["live"]["envelopes"] >= 3
    assert any(e["event"] == "arrived" for e in out["events"])
    text = cz.tgw("status").stdout
    assert f"pid {seen['pids']['runner']}" in text and "processed" in text


def test_the_monitor_fires_sender_health_on_the_error(live, tmp_path):
    from monitoring.engine import MonitorEngine
    from tests.monitoring.mkit import SmtpServer, load, write_monitor_config
    from tgw_common.db import utcnow

    cz, _seen = live
    smtp = SmtpServer()
    try:
        cfg = load(write_monitor_config(tmp_path / "mon", smtp_port=smtp.port, db_url=cz.zone.db_url,
                                        pending_seconds=0, heartbeat_timeout_seconds=3600))
        now = utcnow()
        engine = MonitorEngine(cfg, started_at=now - timedelta(minutes=1))
        engine.start(now)
        engine.cycle(now)
        firing = {(a.check, a.labels["subject"]): a for a in engine.notifier.alerts.values()}
        alert = firing[("sender_health", "outer.transfer-send/error")]
        assert "cannot read numbered file" in alert.summary_en and alert.labels["host"] == SENDER_HOST
        view = engine.view
        assert "cannot read numbered file" in view["transfer"]["outer.transfer-send"]["last_error"]
        daemons = {d["daemon"]: d for d in view["daemons"]}
        assert daemons["outer.transfer-send"]["host"] == SENDER_HOST and daemons["inner-runner"]["up"]
        from monitoring.metrics import render

        samples = {(m.name, tuple(sorted(x.labels.items()))): x.value for m in render(view, {}) for x in m.samples}
        free = samples[("tgw_sender_disk_free_bytes", (("daemon", "outer.transfer-send"), ("zone", "inner")))]
        assert free > 0
        assert any(name == "tgw_daemon_up" and ("host", SENDER_HOST) in labels and value == 1.0
                   for (name, labels), value in samples.items())
        from click.testing import CliRunner

        from tgw.cli import main

        shown = CliRunner().invoke(main, ["monitor", "status", "--config", str(cfg.source)])
        assert shown.exit_code == 1  # an alert is firing
        assert SENDER_HOST in shown.output and "cannot read numbered file" in shown.output
    finally:
        smtp.stop()
