"""Process state from a real supervisord over XML-RPC, and from systemctl."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from datetime import UTC, datetime
from pathlib import Path

from monitoring.engine import MonitorEngine

from .mkit import beat, free_port, load, wait_until, write_monitor_config

SUPERVISORD = str(Path(sys.executable).with_name("supervisord"))


def test_supervisor_and_systemd_states(tmp_path, smtp):
    port = free_port()
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""
[supervisord]
nodaemon=true
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
[inet_http_server]
port=127.0.0.1:{port}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[program:tgw-inner-runner]
command={sys.executable} -c "import time; time.sleep(600)"
startsecs=0
stopwaitsecs=5
""")
    proc = subprocess.Popen([SUPERVISORD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/RPC2"
    try:
        rpc = xmlrpc.client.ServerProxy(url)

        def running():
            try:
                return rpc.supervisor.getProcessInfo("tgw-inner-runner")["statename"] == "RUNNING"
            except OSError:
                return False

        wait_until(running, 30, "supervisord to run the program")
        cfg = load(write_monitor_config(
            tmp_path / "zone", smtp_port=smtp.port, pending_seconds=0, supervisor_url=url,
            daemons=[{"name": "inner-runner", "supervisor_program": "tgw-inner-runner"},
                     {"name": "transfer-receive", "systemd_unit": "tgw-no-such-unit.service"}]))
        now = datetime.now(UTC)
        engine = MonitorEngine(cfg, started_at=now)
        engine.start(now)

        def cycle():
            at = datetime.now(UTC)
            beat(engine.db, "inner-runner", at)
            beat(engine.db, "transfer-receive", at)
            engine.cycle(at)
            return {(a.check, a.labels["subject"]): a for a in engine.notifier.firing()}

        firing = cycle()
        # No systemd on this unit (or no systemd at all): either way it is not active.
        assert set(firing) == {("systemd_state", "transfer-receive")}
        assert firing[("systemd_state", "transfer-receive")].facts["state"] in ("inactive", "unknown", "failed")

        rpc.supervisor.stopProcess("tgw-inner-runner")
        firing = cycle()
        assert firing[("supervisor_state", "inner-runner")].facts["state"] == "STOPPED"
        assert engine.view["daemons"][0]["process"] == [{"source": "supervisor", "name": "tgw-inner-runner",
                                                         "state": "STOPPED", "running": False}]
        rpc.supervisor.startProcess("tgw-inner-runner")
        assert ("supervisor_state", "inner-runner") not in cycle()

        rpc.supervisor.shutdown()
        proc.wait(30)
        firing = cycle()
        assert firing[("supervisor_state", "inner-runner")].facts["state"] == "UNREACHABLE"
        # The supervisor alert says "hop down": the stuck/backlog symptoms of that hop would be inhibited.
        assert [m["X-TGW-Kind"] for m in smtp.sink.mails(group_contains='hop="inner-runner"')] == [
            "firing", "resolved", "firing"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
