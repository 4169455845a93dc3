"""The alert log and history on PostgreSQL (the production database), in a schema of its own."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest

from monitoring.engine import MonitorEngine

from .mkit import TGW, beat, load, write_monitor_config
from .test_monitor_engine import MONDAY_10

pytestmark = pytest.mark.postgres

def test_alert_log_and_history_on_postgres(tmp_path, smtp, pg_url):
    kw = {"daemons": ["inner-runner"], "pending_seconds": 10, "heartbeat_timeout_seconds": 30}
    cfg_path = write_monitor_config(tmp_path, smtp_port=smtp.port, db_url=pg_url, **kw)
    t0 = MONDAY_10
    first = MonitorEngine(load(cfg_path), started_at=t0)
    first.start(t0)
    beat(first.db, "inner-runner", t0)
    for s in (1, 35, 46):
        first.cycle(t0 + timedelta(seconds=s))
    assert [m["X-TGW-Kind"] for m in smtp.sink.mails()] == ["firing"]

    second = MonitorEngine(load(cfg_path), started_at=t0 + timedelta(seconds=50))
    second.start(t0 + timedelta(seconds=50))
    for s in (51, 60):
        second.cycle(t0 + timedelta(seconds=s))
    assert len(smtp.sink.mails()) == 1  # the restart re-sent nothing
    beat(second.db, "inner-runner", t0 + timedelta(seconds=70), session="s2")
    second.cycle(t0 + timedelta(seconds=71))
    assert [m["X-TGW-Kind"] for m in smtp.sink.mails()] == ["firing", "resolved"]

    done = subprocess.run([TGW, "monitor", "alerts", "--config", str(cfg_path), "--since", "2026-03-01", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["state"] for r in reversed(rows)] == ["pending", "firing", "resolved"]
    assert {r["labels"]["subject"] for r in rows} == {"inner-runner"}
    done = subprocess.run([TGW, "monitor", "alerts", "--config", str(cfg_path), "--since", "2026-03-01",
                           "--notifications", "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert [(n["kind"], n["result"]) for n in reversed(json.loads(done.stdout))] == [("firing", "sent"),
                                                                                     ("resolved", "sent")]
