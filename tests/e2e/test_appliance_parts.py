"""The appliance's own pieces, each on its own: configs, supervisord.conf, SMTP sink, event listener."""

from __future__ import annotations

import json
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.conftest import free_port_base, tgw
from tgw.appliance.configs import TEMPLATES, write_configs
from tgw.appliance.layout import Layout, Settings, ports
from tgw.appliance.programs import supervisord_conf
from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction
from tgw_common.events import DaemonStatusRow


@pytest.fixture
def layout(tmp_path, demo_pki) -> Layout:
    layout = Layout.at(tmp_path / "app")
    shutil.copytree(demo_pki, layout.pki)
    return layout


@pytest.mark.parametrize("loss", [None, 0.1])
def test_configs_from_the_templates_load_and_point_at_each_other(layout, loss):
    settings = Settings(port_base=30000, loss=loss)
    outer_path, inner_path = write_configs(layout, settings, console=False)
    outer, inner = load_config(outer_path), load_config(inner_path)
    p = ports(30000)
    assert "${" not in outer_path.read_text() + inner_path.read_text()
    # The outer zone knows the treasury's certificate (to seal batches), never the envelope key.
    assert outer.treasury.certificate == layout.pki / "treasury" / "envelope.pem"
    assert outer.treasury.private_key is None, "the outer zone must never hold the envelope key"
    assert outer.outer.outbound == outer.transfer_send.outbound == layout.root / "outer" / "outbound"
    assert inner.inner.inbound == inner.transfer_receive.inbound == layout.root / "inner" / "inbound"
    assert outer.transfer_send.target == f"127.0.0.1:{p['relay'] if loss else p['receive']}"
    assert inner.transfer_receive.listen == f"127.0.0.1:{p['receive']}"
    assert outer.outer.bind == f"127.0.0.1:{p['web']}" and not outer.outer.cookie_secure
    assert outer.events.publish == outer.monitor.listen == layout.feed("outer")
    assert inner.events.publish == inner.monitor.listen == layout.feed("inner")
    assert outer.monitor.supervisor_url == inner.monitor.supervisor_url == f"unix://{layout.socket}"
    assert inner.monitor.smtp.port == outer.monitor.smtp.port == p["smtp"]
    assert outer.database.url != inner.database.url
    # The return link: receipts from the inner side's sender to the outer side's receiver, and only those.
    assert inner.transfer_send.outbound == inner.receipts.outbound == layout.root / "inner" / "receipts"
    assert outer.transfer_receive.inbound == outer.receipts.inbound == layout.root / "outer" / "receipts"
    assert inner.transfer_send.target == f"127.0.0.1:{p['return_relay'] if loss else p['return_receive']}"
    assert outer.transfer_receive.listen == f"127.0.0.1:{p['return_receive']}"
    assert outer.receipts.private_key is None and inner.receipts.private_key == layout.pki / "treasury" / "receipt.key"
    assert inner.receipts.certificate == outer.receipts.certificate == layout.pki / "treasury" / "receipt.pem"
    programs = {d.supervisor_program for d in outer.monitor.daemons + inner.monitor.daemons} - {None}
    assert programs == {"outer-web", "transfer-send", "transfer-receive", "inner-runner", "supervisor-events",
                        "inner-receipts", "return-send", "return-receive", "outer-receipts"}
    assert {p.name for p in TEMPLATES.glob("*.yaml")} == {"outer.yaml", "inner.yaml"}


def test_supervisord_conf_as_supervisor_reads_it(layout):
    from supervisor.datatypes import RestartUnconditionally
    from supervisor.options import ServerOptions

    settings = Settings(port_base=30000, loss=0.05)
    write_configs(layout, settings, console=True)
    layout.supervisor_conf.write_text(supervisord_conf(layout, settings, console=True))
    layout.log_dir.mkdir()  # `tgw up` makes it before supervisord starts; supervisor checks it exists
    options = ServerOptions()
    options.realize(args=["-c", str(layout.supervisor_conf)])
    groups = {g.name: g for g in options.process_group_configs}
    prio = {name: g.priority for name, g in groups.items()}
    # Monitors first; what receives before what sends; the portal last (so it stops first).
    assert prio["smtp-sink"] < prio["monitor-outer"] < prio["inner-runner"] < prio["transfer-receive"]
    assert prio["transfer-receive"] < prio["transfer-relay"] < prio["transfer-send"] < prio["outer-web"]
    assert prio["supervisor-events"] < prio["monitor-outer"] and "inner-console" in prio
    for name, group in groups.items():
        (proc,) = group.process_configs
        assert proc.stopsignal == signal.SIGTERM and proc.stopasgroup and proc.killasgroup, name
        # Never a permanent FATAL from a burst of kills; a clean exit comes back too (docs/appliance.md).
        assert proc.startretries >= 50 and proc.startsecs >= 1, name
        assert proc.autorestart is RestartUnconditionally, name
    listener = groups["supervisor-events"]
    assert {e.__name__ for e in listener.pool_events} == {"ProcessStateExitedEvent", "ProcessStateFatalEvent",
                                                          "Tick5Event"}
    runner = groups["inner-runner"].process_configs[0]
    assert runner.stopwaitsecs >= 120 and runner.command.endswith(f"inner run --config {layout.inner_config}")
    assert options.serverurl == f"unix://{layout.socket}"


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_sink_keeps_each_mail_as_an_eml_file(tmp_path):
    port, folder = _free_tcp_port(), tmp_path / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "tgw", "appliance", "smtp-sink", "--listen", f"127.0.0.1:{port}",
                             "--dir", str(folder)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "mon@x.localhost", "ops@x.localhost", "告警 FIRING"
        msg.set_content("內容 body")
        with client:
            client.send_message(msg)
        (eml,) = folder.glob("*.eml")
        data = eml.read_bytes()
        assert b"X-Sink-Rcpt-To: ops@x.localhost" in data and b"Subject:" in data
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _event(name: str, payload: str) -> str:
    return f"ver:3.0 server:supervisor serial:1 pool:supervisor-events poolserial:1 eventname:{name} " \
           f"len:{len(payload.encode())}\n{payload}"


def test_event_listener_records_exits_in_the_zone_databases(layout):
    write_configs(layout, Settings(port_base=free_port_base()), console=False)
    proc = subprocess.Popen([sys.executable, "-m", "tgw", "appliance", "supervisor-events", "--dir", str(layout.root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "READY\n"
        for name, payload in (
            ("PROCESS_STATE_EXITED", "processname:inner-runner groupname:inner-runner from_state:RUNNING "
                                     "expected:0 pid:4242"),
            ("PROCESS_STATE_FATAL", "processname:transfer-send groupname:transfer-send from_state:BACKOFF"),
            ("TICK_5", "when:1700000000"),
        ):
            proc.stdin.write(_event(name, payload))
            proc.stdin.flush()
            assert proc.stdout.read(len("RESULT 2\nOK")) == "RESULT 2\nOK"
            assert proc.stdout.readline() == "READY\n"
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def beat(config: Path) -> dict:
        with transaction(make_engine(load_config(config).database.url)) as s:
            return s.scalars(select(DaemonStatusRow).where(DaemonStatusRow.daemon == "supervisor")).one().state

    inner, outer = beat(layout.inner_config), beat(layout.outer_config)
    assert inner["last_exit"]["program"] == "inner-runner" and inner["last_exit"]["pid"] == "4242"
    assert inner["exits_last_hour"] == 1
    assert outer["last_exit"]["program"] == "transfer-send" and outer["last_exit"]["event"] == "FATAL"
    kept = json.loads((layout.state_dir / "supervisor-events.json").read_text())["exits"]
    assert [e["program"] for e in kept] == ["inner-runner", "transfer-send"]


def test_status_and_down_of_an_appliance_that_is_not_running(tmp_path):
    folder = tmp_path / "none"
    assert "not running" in tgw("status", "--dir", folder, check=1).stdout
    assert "not running" in tgw("down", "--dir", folder).stdout
    long = tmp_path / ("x" * 120)
    assert "at most" in tgw("up", "--dir", long, check=2).stderr


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path):
    base = free_port_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 80))
        taken.listen()
        err = tgw("up", "--dir", tmp_path / "app", "--port-base", str(base), check=3).stderr
    assert f"web 127.0.0.1:{base + 80}" in err and "--port-base" in err
    assert not (tmp_path / "app" / "pki").exists() and not (tmp_path / "app" / "supervisord.pid").exists()
