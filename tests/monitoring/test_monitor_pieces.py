"""Schedules, the envelope tracker and the host-resource checks, each on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from monitoring.checks import run_checks
from monitoring.checks.base import CheckEnv
from monitoring.hops import HOPS, entering, leaving
from monitoring.schedule import Window
from monitoring.snapshot import DiskUse, Snapshot
from monitoring.tracker import EnvelopeTracker
from tgw_common.config import MonitorConfig, ScheduleConfig

TPE = ZoneInfo("Asia/Taipei")


def tpe(*args) -> datetime:
    return datetime(*args, tzinfo=TPE)


def test_weekday_window_in_taipei_with_holidays():
    w = Window(ScheduleConfig(holidays=["2026-02-27"]))  # weekdays 08:00-18:00 Asia/Taipei
    assert w.is_open(tpe(2026, 3, 2, 8, 0))
    assert w.is_open(tpe(2026, 3, 2, 17, 59))
    assert not w.is_open(tpe(2026, 3, 2, 18, 0))
    assert not w.is_open(tpe(2026, 3, 2, 7, 59))
    assert not w.is_open(tpe(2026, 3, 7, 10, 0))  # Saturday
    assert not w.is_open(tpe(2026, 2, 27, 10, 0))  # a Friday holiday (228)
    # 01:30 UTC is 09:30 in Taipei: the window is judged in its own zone.
    assert w.is_open(datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    assert w.opened_at(tpe(2026, 3, 2, 9, 30)) == tpe(2026, 3, 2, 8, 0)


def test_overnight_window_belongs_to_the_day_it_starts():
    w = Window(ScheduleConfig(days=["fri"], start="22:00", end="06:00"))
    assert w.is_open(tpe(2026, 3, 6, 23, 0))  # Friday night
    assert w.is_open(tpe(2026, 3, 7, 5, 59))  # Saturday early morning, still Friday's window
    assert not w.is_open(tpe(2026, 3, 7, 6, 0))
    assert not w.is_open(tpe(2026, 3, 7, 23, 0))  # Saturday night: no window


@pytest.mark.parametrize("bad", [{"start": "8am"}, {"end": "24:30"}, {"timezone": "Taipei"},
                                 {"days": ["monday"]}, {"holidays": ["2026-13-01"]}])
def test_bad_schedule_is_refused(bad):
    with pytest.raises(ValidationError):
        ScheduleConfig(**bad)


def test_hop_table_is_consistent():
    assert [h.name for h in HOPS] == ["outer-web", "transfer-send", "transfer-receive", "inner-runner"]
    assert entering("spooled") == ["transfer-send"] and leaving("spooled", "outer-web") == ["outer-web"]
    assert entering("arrived") == ["inner-runner"]
    # A duplicate dropped by the receiver does not take the first copy out of the runner.
    assert leaving("duplicate", "transfer-receive") == []
    assert leaving("duplicate", "inner-runner") == ["inner-runner"]


def _ev(at, event, hop, **ids):
    return {"at": at, "event": event, "hop": hop, **ids}


def test_tracker_by_time_not_by_arrival_order_and_names_learnt_along_the_way():
    t = EnvelopeTracker()
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    # The "loaded" row is read before the "arrived" row (ids committed out of order).
    t.apply(_ev(t0 + timedelta(seconds=40), "loaded", "inner-runner", sha256="s1", envelope_id="E1"))
    t.apply(_ev(t0, "arrived", "transfer-receive", sha256="s1", tracking_id="T1"))
    assert t.open_in("inner-runner") == []
    assert t.latency_quantiles("inner-runner", t0)["p50"] == 40.0

    t.apply(_ev(t0, "arrived", "transfer-receive", sha256="s2", tracking_id="T2"))
    t.apply(_ev(t0 + timedelta(seconds=1), "decrypted", "inner-runner", sha256="s2", envelope_id="E2"))
    t.apply(_ev(t0 + timedelta(seconds=2), "duplicate", "transfer-receive", sha256="s2"))
    [(env, presence)] = t.open_in("inner-runner")
    assert (env.tracking_id, env.sha256, env.envelope_id) == ("T2", "s2", "E2")
    # Quarantined, then an operator retries it: in the hop again from the retry on.
    t.apply(_ev(t0 + timedelta(seconds=5), "quarantined", "inner-runner", sha256="s2"))
    assert t.open_in("inner-runner") == []
    t.apply(_ev(t0 + timedelta(hours=1), "retried", "inner-runner", envelope_id="E2"))
    [(env, presence)] = t.open_in("inner-runner")
    assert presence.entered_at == t0 + timedelta(hours=1) and presence.enter_event == "retried"
    # Applying the same events again changes nothing (replay after a restart).
    t.apply(_ev(t0, "arrived", "transfer-receive", sha256="s2", tracking_id="T2"))
    assert len(t.open_in("inner-runner")) == 1
    t.prune(t0 + timedelta(days=1))
    assert len(t) == 1  # the open one is kept, the finished one forgotten


def _env(**monitor) -> CheckEnv:
    return CheckEnv(MonitorConfig(**monitor), "outer", "web1")


def test_disk_memory_cpu_levels():
    snap = Snapshot(zone="outer", host="web1", monitor_started_at=datetime.now(UTC))
    snap.disks = [DiskUse("/var/tgw", 0.90, 10 * 2**30, 100 * 2**30), DiskUse("/srv", 0.97, 3 * 2**30, 100 * 2**30),
                  DiskUse("/tmp", 0.5, 50 * 2**30, 100 * 2**30)]
    snap.memory_fraction, snap.cpu_fraction = 0.98, 0.95
    alerts, evaluated = run_checks(snap, _env(), datetime.now(UTC))
    got = {(a.check, a.subject): a.severity for a in alerts}
    assert got == {("disk", "/var/tgw"): "warning", ("disk", "/srv"): "critical", ("memory", ""): "critical",
                   ("cpu", ""): "warning"}
    assert {"disk", "memory", "cpu", "daemon_down", "cert_expiry"} <= evaluated

    alerts, evaluated = run_checks(snap, _env(disabled_checks=["cpu", "disk"]), datetime.now(UTC))
    assert {a.check for a in alerts} == {"memory"} and "cpu" in evaluated


def test_an_unreadable_input_is_a_check_error_and_not_a_recovery():
    snap = Snapshot(zone="outer", host="web1", monitor_started_at=datetime.now(UTC))
    snap.unavailable["pki"] = "FileNotFoundError: /etc/tgw/treasury.pem"
    alerts, evaluated = run_checks(snap, _env(), datetime.now(UTC))
    errors = {a.subject: a for a in alerts if a.check == "monitor_check_error"}
    assert set(errors) == {"cert_expiry", "crl"}
    assert "treasury.pem" in errors["cert_expiry"].summary_en
    assert "cert_expiry" not in evaluated and "crl_stale" not in evaluated


def test_monitor_config_rejects_inconsistent_values():
    with pytest.raises(ValidationError, match="critical_depth must be at least warn_depth"):
        MonitorConfig(hops={"inner-runner": {"warn_depth": 100, "critical_depth": 10}})
    with pytest.raises(ValidationError, match="listed twice"):
        MonitorConfig(daemons=["inner-runner", {"name": "inner-runner"}])
    with pytest.raises(ValidationError, match="password_env"):
        MonitorConfig(smtp={"username": "monitor"})
    with pytest.raises(ValidationError, match="not both"):
        MonitorConfig(smtp={"starttls": True, "implicit_tls": True})


@pytest.mark.parametrize("name", ["monitor-outer.yaml", "monitor-inner.yaml"])
def test_example_configs_are_valid(name):
    from pathlib import Path

    from monitoring.engine import config_problems
    from tgw_common.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / name, check_files=False)
    assert cfg.monitor is not None and config_problems(cfg) == []
