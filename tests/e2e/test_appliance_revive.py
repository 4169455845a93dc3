"""The appliance's event listener starts a FATAL program again, under a real supervisord.

The program cannot start (it exits at once) until a marker file exists; supervisord gives
up on it (FATAL) twice, and the listener starts it again each time after a longer pause,
recording each FATAL and its plan in the zone's database. Once the marker is there, the
next start sticks, with nobody running supervisorctl.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.conftest import free_port_base
from tgw.appliance.configs import write_configs
from tgw.appliance.layout import Layout, Settings
from tgw.appliance.revive import delay_for
from tgw_common.config import load_config
from tgw_common.db import create_tables, make_engine, transaction
from tgw_common.events import DaemonStatusRow

SUPERVISORD = str(Path(sys.executable).with_name("supervisord"))


def test_the_pause_doubles_up_to_five_minutes():
    assert [delay_for(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


def _conf(layout: Layout, marker: Path) -> str:
    flaky = (f"import os, sys, time; os.path.exists({str(marker)!r}) or sys.exit(3); time.sleep(600)")
    return f"""
[unix_http_server]
file={layout.socket}
[supervisord]
nodaemon=true
logfile={layout.root}/supervisord.log
pidfile={layout.root}/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[program:transfer-receive]
command={sys.executable} -c "{flaky}"
startsecs=1
startretries=0
autorestart=true
[eventlistener:supervisor-events]
command={sys.executable} -m tgw --log-level INFO appliance supervisor-events --dir {layout.root}
events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL,TICK_5
startsecs=1
stdout_logfile=NONE
stderr_logfile={layout.root}/listener.log
"""


def _revivals(layout: Layout) -> list[dict]:
    engine = make_engine(load_config(layout.inner_config).database.url)
    create_tables(engine)  # the listener's first heartbeat may not have made them yet
    with transaction(engine) as s:
        row = s.scalars(select(DaemonStatusRow).where(DaemonStatusRow.daemon == "supervisor")).first()
        return (row.state or {}).get("revivals", []) if row is not None else []


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.timeout(180)
def test_a_fatal_program_is_started_again_after_a_growing_pause(tmp_path, demo_pki):
    layout = Layout.at(tmp_path / "app")
    shutil.copytree(demo_pki, layout.pki)
    write_configs(layout, Settings(port_base=free_port_base()), console=False)
    marker = tmp_path / "may-start"
    layout.root.joinpath("supervisord.conf").write_text(_conf(layout, marker))
    proc = subprocess.Popen([SUPERVISORD, "-c", str(layout.root / "supervisord.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from supervisor.xmlrpc import SupervisorTransport

        def state() -> str | None:
            # A new proxy each time: one whose request failed (socket not there yet) cannot be reused.
            rpc = xmlrpc.client.ServerProxy("http://127.0.0.1",
                                            transport=SupervisorTransport(None, None, f"unix://{layout.socket}"))
            try:
                return rpc.supervisor.getProcessInfo("transfer-receive")["statename"]
            except OSError:
                return None

        def tries(n: int):
            return lambda: any(r["program"] == "transfer-receive" and r["tries"] >= n for r in _revivals(layout))

        _wait(lambda: state() == "FATAL", 30, "the first FATAL")
        _wait(tries(1), 30, "the listener to plan a start")
        # It starts it again (and it fails again): a second FATAL, planned further off.
        _wait(tries(2), 60, "the second FATAL, after the listener's start")
        (second,) = [r for r in _revivals(layout) if r["program"] == "transfer-receive"]
        assert second["due"] is not None and second["last_start"] is not None
        marker.touch()
        _wait(lambda: state() == "RUNNING", 60, "the listener's next start to stick")
        log = (layout.root / "listener.log").read_text()
        assert "FATAL program started again" in log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
