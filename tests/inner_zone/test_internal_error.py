"""An envelope whose judgement raises an exception no rule expected is a defect, visible as one:
quarantined at once as INTERNAL_ERROR (not retried into POISON), its traceback logged once,
listed in the runner's heartbeat, and alerted on by the monitor with its tracking id."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .ikit import envelope, q, run_once

A = "A10001"
TRIGGERED = {"INTERNAL_ERROR"}


def _defective_payload_reader(monkeypatch):
    import tgw_common.tpe.opener as opener

    def broken(*args, **kw):
        raise KeyError("a defect in the payload reader")

    monkeypatch.setattr(opener, "unpack_payload", broken)


def test_an_unexpected_exception_is_quarantined_as_internal_error_once(zone, fkit, monkeypatch, caplog):
    _defective_payload_reader(monkeypatch)
    zone.drop("T0500.p7m", envelope(fkit, A, number=500))
    with caplog.at_level(logging.INFO):
        runner = run_once(zone)
    [entry] = zone.quarantine_entries()
    assert (entry["id"], entry["reason"], entry["layer"], entry["tries"]) == ("T0500", "INTERNAL_ERROR", "intake", 1)
    assert "KeyError" in entry["message"] and entry["reason_zh"]
    assert [e["event"] for e in entry["events"]] == ["claimed", "refused", "quarantined"]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "defect" in tracebacks[0].getMessage()
    assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 0
    assert not list(zone.inbound.glob("*.p7m")) and not any((zone.inbound / ".claimed").iterdir())
    assert runner.counts["poison"] == 0

    from monitoring.checks import run_checks
    from monitoring.checks.base import CheckEnv
    from monitoring.snapshot import DaemonSeen, Snapshot
    from tgw_common.config import MonitorConfig

    health = runner.health()
    assert health["internal_errors"] == ["T0500"]
    now = datetime.now(UTC)
    snap = Snapshot(zone="inner", host="inner1", monitor_started_at=now)
    snap.daemons["inner-runner"] = DaemonSeen("inner-runner", "inner", "inner1", "s1", now, now, health)
    alerts, evaluated = run_checks(snap, CheckEnv(MonitorConfig(), "inner", "inner1"), now)
    [alert] = [a for a in alerts if a.check == "internal_error"]
    assert "internal_error" in evaluated
    assert (alert.severity, alert.subject, alert.facts["tracking_id"]) == ("critical", "T0500", "T0500")
    assert "T0500" in alert.summary_en and "T0500" in alert.summary_zh


def test_the_alert_ends_when_the_entry_is_dealt_with(zone, fkit, monkeypatch):
    from inner_zone.context import open_inner
    from inner_zone.quarantine_ops import reject_entry
    from tgw_common.config import load_config

    _defective_payload_reader(monkeypatch)
    zone.drop("T0501.p7m", envelope(fkit, A, number=501))
    run_once(zone)
    inner = open_inner(load_config(zone.config))
    inner.quarantine.counts()
    assert inner.quarantine.last_defects == ["T0501"]
    reject_entry(inner, "T0501", note="defect reported", by="operator", hop="inner-runner")
    inner.quarantine.counts()
    assert inner.quarantine.last_defects == []


def test_tgw_envelope_open_reports_a_defect_as_internal_error(fkit, config_path, tmp_path, monkeypatch):
    import json

    from .ikit import cli

    _defective_payload_reader(monkeypatch)
    path = tmp_path / "e.p7m"
    path.write_bytes(envelope(fkit, A, number=502))
    code, out = cli("envelope", "open", str(path), "--config", str(config_path), "--json")
    assert "Traceback" in out and out.count("Traceback") == 1  # the log line, once
    verdict = json.loads(out[out.index("{\n"):])  # the verdict follows the log line
    assert (verdict["accepted"], verdict["reason"], verdict["layer"]) == (False, "INTERNAL_ERROR", "intake")
    assert code != 0
