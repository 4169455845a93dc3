"""A program supervisord gave up on (FATAL): the mailed alert says exactly what to run."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from datetime import UTC, datetime
from pathlib import Path

from monitoring.checks.daemons import start_command
from monitoring.engine import MonitorEngine
from monitoring.snapshot import ProcessState

from .mkit import beat, body, free_port, load, wait_until, write_monitor_config

SUPERVISORD = str(Path(sys.executable).with_name("supervisord"))


def test_the_command_for_each_supervisor():
    url = "unix:///srv/app/supervisor.sock"
    fatal = ProcessState("supervisor", "transfer-receive", "FATAL", False, "Exited too quickly")
    assert start_command(fatal, url) == "supervisorctl -s unix:///srv/app/supervisor.sock start transfer-receive"
    assert start_command(ProcessState("supervisor", "x", "BACKOFF", False, ""), url) is None  # still retrying
    failed = ProcessState("systemd", "tgw-transfer-receive.service", "failed", False, "")
    assert start_command(failed, None) == ("systemctl reset-failed tgw-transfer-receive.service && "
                                           "systemctl start tgw-transfer-receive.service")
    assert start_command(ProcessState("systemd", "u", "activating", False, ""), None) is None


def test_a_fatal_program_is_mailed_with_the_command_to_start_it(tmp_path, smtp):
    port = free_port()
    conf = tmp_path / "supervisord.conf"
    # Exits at once, and supervisord tries only once: FATAL within a second or two.
    conf.write_text(f"""
[supervisord]
nodaemon=true
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
[inet_http_server]
port=127.0.0.1:{port}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[program:transfer-receive]
command={sys.executable} -c "raise SystemExit(3)"
startsecs=1
startretries=0
autorestart=true
""")
    proc = subprocess.Popen([SUPERVISORD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/RPC2"
    try:
        rpc = xmlrpc.client.ServerProxy(url)

        def fatal():
            try:
                return rpc.supervisor.getProcessInfo("transfer-receive")["statename"] == "FATAL"
            except OSError:
                return False

        wait_until(fatal, 30, "supervisord to give up on the program")
        cfg = load(write_monitor_config(
            tmp_path / "zone", smtp_port=smtp.port, pending_seconds=0, supervisor_url=url,
            daemons=[{"name": "transfer-receive", "supervisor_program": "transfer-receive"}]))
        now = datetime.now(UTC)
        engine = MonitorEngine(cfg, started_at=now)
        engine.start(now)
        beat(engine.db, "transfer-receive", now)
        engine.cycle(now)
        alert = {a.check: a for a in engine.notifier.firing()}["supervisor_state"]
        command = f"supervisorctl -s {url} start transfer-receive"
        assert alert.facts["run"] == command and alert.facts["state"] == "FATAL"
        assert command in alert.summary_en and command in alert.summary_zh

        def mailed():
            return [m for m in smtp.sink.mails(kind="firing") if command in body(m)]

        assert wait_until(mailed, 30, "the alert mail")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
