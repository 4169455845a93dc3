"""The real `tgw monitor run` process: a daemon stops, one alert mail; it returns, one resolved
mail; the monitor is killed -9 and restarted in between and sends nothing twice. Real SMTP
(aiosmtpd), real ZeroMQ, real SQLite, real /metrics over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.request

import pytest

from tgw_common.config import load_config
from tgw_common.db import make_engine
from tgw_common.events import Provenance
from tgw_common.runner import Runner

from .mkit import TGW, body, free_port, wait_until, write_monitor_config


class FakeRunner(Runner):
    """A hop that does nothing but live: heartbeats into the zone DB and onto the feed."""

    name = "inner-runner"
    heartbeat_seconds = 0.2
    idle_sleep_seconds = 0.1

    def one_iteration(self) -> int:
        return 0

    def health(self):
        return {"queue_depth": 0, "oldest_age_seconds": 0}


def start_fake(config) -> tuple[FakeRunner, threading.Thread]:
    prov = Provenance(make_engine(config.database.url), zone="inner", host="app-host",
                      publish=config.monitor.listen)
    runner = FakeRunner(prov)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return runner, thread


def stop_fake(runner: FakeRunner, thread: threading.Thread) -> None:
    runner.stop()
    thread.join(5)
    runner.provenance.close()


def metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""


def sample(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def tgw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TGW, *args], capture_output=True, text=True, timeout=60, check=False)


class Monitor:
    def __init__(self, cfg_path, log) -> None:
        self.fh = open(log, "ab")  # noqa: SIM115 - open while the process runs
        self.p = subprocess.Popen([TGW, "--log-level", "INFO", "monitor", "run", "--config", str(cfg_path)],
                                  stdout=subprocess.DEVNULL, stderr=self.fh)

    def stop(self, sig=signal.SIGTERM) -> int:
        self.p.send_signal(sig)
        rc = self.p.wait(15)
        self.fh.close()
        return rc


@pytest.fixture
def setup(tmp_path, smtp):
    mport = free_port()
    cfg_path = write_monitor_config(tmp_path, smtp_port=smtp.port, daemons=["inner-runner"], metrics_bind=f"127.0.0.1:{mport}",
                                    interval_seconds=0.2, pending_seconds=1.0, heartbeat_timeout_seconds=1.5,
                                    group_wait_seconds=0, group_interval_seconds=30)
    return cfg_path, load_config(cfg_path), mport


def test_daemon_stop_gives_one_alert_and_one_resolved_mail_across_monitor_restart(setup, smtp, tmp_path):
    cfg_path, config, mport = setup
    fake = start_fake(config)
    mon = Monitor(cfg_path, tmp_path / "monitor.log")
    try:
        wait_until(lambda: sample(metrics(mport), "tgw_daemon_up", daemon="inner-runner") == 1.0, 20,
                   "the monitor to see inner-runner up")
        done = tgw("monitor", "status", "--config", str(cfg_path), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["monitor"]["running"] is True

        # Envelope events reach the counters and latencies (read from the zone DB, woken by the feed).
        prov = fake[0].provenance
        prov.record("arrived", "transfer-receive", sha256="c" * 64, tracking_id="T-LIVE")
        prov.record("loaded", "inner-runner", sha256="c" * 64, envelope_id="E-LIVE")
        text = wait_until(lambda: (t := metrics(mport)) and sample(t, "tgw_hop_events_total", event="loaded") and t,
                          20, "the events on /metrics")
        assert sample(text, "tgw_hop_events_total", hop="transfer-receive", event="arrived") == 1.0
        assert sample(text, "tgw_hop_latency_seconds_count", hop="inner-runner") == 1.0

        stop_fake(*fake)
        [mail] = wait_until(lambda: smtp.sink.mails(), 20, "the alert mail")
        assert mail["X-TGW-Kind"] == "firing"
        assert "CRITICAL" in mail["Subject"] and "inner-runner" in mail["Subject"]
        text = body(mail)
        assert "程式停止（無心跳）" in text and "daemon down (no heartbeat)" in text and "systemctl status" in text
        assert smtp.sink.envelopes[0][1] == ["ops@treasury.example.tw"]

        # The mail leaves mid-cycle; the view /metrics serves is complete at the cycle's end.
        text = wait_until(lambda: (t := metrics(mport)) and sample(t, "tgw_alerts_firing") == 1.0 and t, 10,
                          "the alert on /metrics")
        assert sample(text, "tgw_daemon_up", daemon="inner-runner") == 0.0
        assert sample(text, "tgw_alert", check="daemon_down", state="firing") == 1.0
        done = tgw("monitor", "status", "--config", str(cfg_path), "--json")
        assert done.returncode == 1 and json.loads(done.stdout)["firing"] == 1
        human = tgw("monitor", "status", "--config", str(cfg_path))
        assert human.returncode == 1 and "daemon_down" in human.stdout

        # kill -9 and start again: the notification log is in the zone DB, nothing is re-sent.
        mon.stop(signal.SIGKILL)
        mon = Monitor(cfg_path, tmp_path / "monitor.log")
        wait_until(lambda: (sample(metrics(mport), "tgw_monitor_cycles_total") or 0) >= 10, 20,
                   "the restarted monitor to run its cycles")
        assert len(smtp.sink.mails()) == 1

        fake = start_fake(config)
        resolved = wait_until(lambda: smtp.sink.mails(kind="resolved"), 20, "the resolved mail")
        assert "RESOLVED" in resolved[0]["Subject"] and "inner-runner" in body(resolved[0])
        cycles = sample(metrics(mport), "tgw_monitor_cycles_total")
        wait_until(lambda: sample(metrics(mport), "tgw_monitor_cycles_total") >= cycles + 5, 10, "more cycles")
        assert [m["X-TGW-Kind"] for m in smtp.sink.mails()] == ["firing", "resolved"]

        done = tgw("monitor", "alerts", "--config", str(cfg_path), "--json")
        assert done.returncode == 0, done.stderr
        states = [r["state"] for r in reversed(json.loads(done.stdout)) if r["labels"]["check"] == "daemon_down"]
        assert states == ["pending", "firing", "resolved"]
        done = tgw("monitor", "alerts", "--config", str(cfg_path), "--notifications", "--json")
        assert [n["kind"] for n in reversed(json.loads(done.stdout))] == ["firing", "resolved"]
        assert tgw("monitor", "status", "--config", str(cfg_path)).returncode == 0
    finally:
        stop_fake(*fake)
        rc = mon.stop()
    assert rc == 0, (tmp_path / "monitor.log").read_text()[-3000:]


def test_run_once(tmp_path, smtp):
    from datetime import timedelta

    from tgw_common.db import utcnow

    from .mkit import beat

    cfg_path = write_monitor_config(tmp_path, smtp_port=smtp.port, daemons=["transfer-send"], zone="outer",
                                    pending_seconds=0)
    from tgw_common.db import create_tables

    db = make_engine(load_config(cfg_path).database.url)
    create_tables(db)
    beat(db, "transfer-send", utcnow() - timedelta(hours=1), zone="outer")
    done = tgw("monitor", "run", "--config", str(cfg_path), "--once")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [t["state"] for t in result["transitions"]] == ["pending", "firing"]
    assert result["notices"] == [{"kind": "firing", "group": '{zone="outer",hop="transfer-send"}', "result": "sent"}]
    [mail] = smtp.sink.mails()
    assert "[outer]" in mail["Subject"] and "transfer-send" in mail["Subject"]


def test_status_says_when_the_monitor_is_not_running(setup):
    cfg_path, _config, _ = setup
    done = tgw("monitor", "status", "--config", str(cfg_path), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["monitor"]["running"] is False


def test_bad_config_exits_2_naming_the_key(tmp_path, smtp):
    cfg_path = write_monitor_config(tmp_path, smtp_port=smtp.port, hops={"nowhere": {"warn_depth": 5}},
                                    schedules={"backlog": {"start": "08:00"}})
    done = tgw("monitor", "run", "--config", str(cfg_path))
    assert done.returncode == 2
    assert "monitor.hops.nowhere: unknown hop" in done.stderr
    assert "monitor.schedules.backlog: unknown check" in done.stderr
    cfg_path.write_text(cfg_path.read_text().replace("start: 08:00", "start: '25:00'"))
    done = tgw("monitor", "status", "--config", str(cfg_path))
    assert done.returncode == 2 and "schedules.backlog.start" in done.stderr


def test_busy_listen_address_is_an_operational_failure(setup):
    import zmq

    cfg_path, config, _ = setup
    holder = zmq.Context.instance().socket(zmq.SUB)
    holder.bind(config.monitor.listen)
    try:
        done = tgw("monitor", "run", "--config", str(cfg_path))
        assert done.returncode == 3 and "cannot bind" in done.stderr
    finally:
        holder.close(0)
