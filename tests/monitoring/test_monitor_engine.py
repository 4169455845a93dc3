"""The monitor's cycle against a real SQLite zone database and a real SMTP server, with the
clock injected: hours of "stuck" or a weekend night take no waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization

from monitoring.engine import MonitorEngine
from tgw_common.events import Provenance

from .mkit import beat, body, load, write_monitor_config

TPE = ZoneInfo("Asia/Taipei")
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=TPE).astimezone(UTC)  # a working day, 10:00 in Taipei
SHA_A = "a" * 64
SHA_B = "b" * 64


def make(tmp_path, smtp, *, started_at=MONDAY_10, name="zone", **monitor) -> MonitorEngine:
    cfg = load(write_monitor_config(tmp_path / name, smtp_port=smtp.port, **monitor))
    engine = MonitorEngine(cfg, started_at=started_at)
    engine.start(started_at)
    return engine


def step(engine: MonitorEngine, at: datetime, *, beats=("inner-runner",), **state):
    for daemon in beats:
        beat(engine.db, daemon, at, **state)
    return engine.cycle(at)


def test_stuck_envelope_alert_names_envelope_and_hop(tmp_path, smtp):
    engine = make(tmp_path, smtp, daemons=["inner-runner"], pending_seconds=10,
                  hops={"inner-runner": {"stuck_seconds": 600, "warn_age_seconds": 7200, "critical_age_seconds": 9000}})
    prov = Provenance(engine.db, zone="inner", host="app-host")
    t0 = MONDAY_10
    prov.record("arrived", "transfer-receive", sha256=SHA_A, tracking_id="T20260302-0001", at=t0)
    prov.record("claimed", "inner-runner", sha256=SHA_A, tracking_id="T20260302-0001", at=t0 + timedelta(seconds=1))
    prov.record("decrypted", "inner-runner", sha256=SHA_A, envelope_id="A10001-20260302-0001",
                at=t0 + timedelta(seconds=2))
    # A second envelope goes through normally and must not be reported.
    prov.record("arrived", "transfer-receive", sha256=SHA_B, tracking_id="T20260302-0002", at=t0)
    prov.record("loaded", "inner-runner", sha256=SHA_B, envelope_id="A10001-20260302-0002",
                at=t0 + timedelta(seconds=30))

    for seconds in (5, 300, 599):
        step(engine, t0 + timedelta(seconds=seconds), queue_depth=1, oldest_age_seconds=seconds)
    assert smtp.sink.mails() == []
    r = step(engine, t0 + timedelta(seconds=605), queue_depth=1, oldest_age_seconds=605)
    assert [t.to_state for t in r.transitions] == ["pending"]
    assert smtp.sink.mails() == []  # pending: not yet
    r = step(engine, t0 + timedelta(seconds=616), queue_depth=1, oldest_age_seconds=616)
    assert [t.to_state for t in r.transitions] == ["firing"]

    [mail] = smtp.sink.mails()
    assert mail["X-TGW-Kind"] == "firing"
    assert "inner-runner" in mail["Subject"]
    text = body(mail)
    for needle in ("T20260302-0001", SHA_A, "A10001-20260302-0001", "hop=inner-runner", "check=stuck",
                   "信封停滯於某一站", "envelope stuck in a hop", "先檢查", "Check first"):
        assert needle in text, needle
    assert "T20260302-0002" not in text
    # Since when: 10:00 Taipei on the day it arrived.
    assert "2026-03-02 10:00:00 (Asia/Taipei)" in text

    # It is finally loaded: one resolved notice, then nothing more.
    prov.record("loaded", "inner-runner", sha256=SHA_A, envelope_id="A10001-20260302-0001",
                at=t0 + timedelta(seconds=700))
    step(engine, t0 + timedelta(seconds=701), queue_depth=0, oldest_age_seconds=0)
    step(engine, t0 + timedelta(seconds=760), queue_depth=0, oldest_age_seconds=0)
    resolved = smtp.sink.mails(kind="resolved")
    assert len(resolved) == 1 and len(smtp.sink.mails()) == 2
    assert "T20260302-0001" in body(resolved[0]) and "RESOLVED" in resolved[0]["Subject"]


def test_restarted_monitor_does_not_resend(tmp_path, smtp):
    kw = {"daemons": ["inner-runner"], "pending_seconds": 10, "heartbeat_timeout_seconds": 30}
    first = make(tmp_path, smtp, **kw)
    t0 = MONDAY_10
    step(first, t0 + timedelta(seconds=1))
    for s in (35, 40, 46):  # last heartbeat at t0+1: down from t0+31, firing after 10 s pending
        first.cycle(t0 + timedelta(seconds=s))
    assert len(smtp.sink.mails(kind="firing")) == 1

    # A new process: everything it knows comes from the zone database.
    second = make(tmp_path, smtp, started_at=t0 + timedelta(seconds=60), **kw)
    assert [a.state for a in second.notifier.alerts.values()] == ["firing"]
    for s in (61, 70, 90):
        second.cycle(t0 + timedelta(seconds=s))
    assert len(smtp.sink.mails()) == 1

    step(second, t0 + timedelta(seconds=100), session="s2")
    second.cycle(t0 + timedelta(seconds=101))
    assert len(smtp.sink.mails(kind="firing")) == 1
    assert len(smtp.sink.mails(kind="resolved")) == 1
    states = [r["state"] for r in reversed(second.store.history(since=t0))]
    assert states == ["pending", "firing", "resolved"]
    [note_sent, note_resolved] = reversed(second.store.notifications(since=t0))
    assert (note_sent["kind"], note_sent["result"], note_resolved["kind"]) == ("firing", "sent", "resolved")


def test_no_mail_outside_the_schedule(tmp_path, smtp):
    weekdays = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00",
                "timezone": "Asia/Taipei"}
    engine = make(tmp_path, smtp, daemons=["inner-runner"], pending_seconds=10,
                  started_at=datetime(2026, 3, 7, 2, 0, tzinfo=TPE).astimezone(UTC),
                  schedules={"backlog_depth": weekdays, "idle": weekdays},
                  hops={"inner-runner": {"warn_depth": 10, "critical_depth": 1000, "idle_seconds": 600}})
    saturday_night = datetime(2026, 3, 7, 3, 0, tzinfo=TPE).astimezone(UTC)
    for minutes in range(0, 120, 5):
        step(engine, saturday_night + timedelta(minutes=minutes), queue_depth=50)
    assert smtp.sink.mails() == []
    firing = engine.notifier.firing()
    assert [(a.check, a.muted) for a in firing] == [("backlog_depth", True)]  # known, kept, not mailed
    assert "idle" not in {a.check for a in engine.notifier.alerts.values()}  # a quiet night is no alarm

    # Monday 08:00 opens the window: the backlog still there is mailed now.
    monday = datetime(2026, 3, 9, 8, 0, 30, tzinfo=TPE).astimezone(UTC)
    step(engine, monday, queue_depth=50)
    [mail] = smtp.sink.mails()
    assert "backlog_depth" in body(mail) and "50" in body(mail)
    # Nothing has passed since 08:00: after idle_seconds the quiet hop is an alarm in working hours.
    step(engine, monday + timedelta(minutes=11), queue_depth=50)
    step(engine, monday + timedelta(minutes=12), queue_depth=50)
    assert "idle" in {a.check for a in engine.notifier.firing()}


def test_hop_down_inhibits_downstream_symptoms(tmp_path, smtp):
    engine = make(tmp_path, smtp, daemons=["outer.transfer-send", "inner-runner"], pending_seconds=0,
                  hops={"inner-runner": {"stuck_seconds": 60}})
    prov = Provenance(engine.db, zone="inner", host="app-host")
    t0 = MONDAY_10
    prov.record("arrived", "transfer-receive", sha256=SHA_A, tracking_id="T-STUCK", at=t0)
    beat(engine.db, "outer.transfer-send", t0)
    # The sender has been silent for 10 minutes (sender or link down); the runner is up, one envelope stuck.
    step(engine, t0 + timedelta(minutes=10), beats=("inner-runner",))
    mails = smtp.sink.mails()
    firing = {a.check: a for a in engine.notifier.firing()}
    assert firing["stuck"].inhibited_by == firing["daemon_down"].fingerprint
    assert len(mails) == 1 and "transfer-send" in mails[0]["X-TGW-Group"]
    assert "T-STUCK" not in body(mails[0])

    # The sender comes back: the stuck envelope is no longer explained by it and is mailed.
    beat(engine.db, "outer.transfer-send", t0 + timedelta(minutes=11), session="s2")
    step(engine, t0 + timedelta(minutes=11), beats=("inner-runner",))
    stuck = smtp.sink.mails(group_contains='hop="inner-runner"')
    assert len(stuck) == 1 and "T-STUCK" in body(stuck[0])
    assert len(smtp.sink.mails(kind="resolved", group_contains='hop="transfer-send"')) == 1


def test_restarts_gaps_drops_and_sender_health(tmp_path, smtp):
    engine = make(tmp_path, smtp, daemons=["transfer-receive", "outer.transfer-send"], pending_seconds=0,
                  max_restarts_per_hour=3, udp_drops_warn=10, udp_drop_window_seconds=300,
                  sender_min_free_bytes=10 * 2**30)
    t0 = MONDAY_10
    for i in range(5):  # five sessions within the hour
        at = t0 + timedelta(minutes=i)
        # State shaped as transfer/receiver.py and transfer/sender.py report it.
        beat(engine.db, "transfer-receive", at, session=f"r{i}", open_gaps=0, queue_drops=0,
             kernel={"socket_drops": 100, "udp_rcvbuf_errors": 100}, queue_depth=5000, files_in_progress=1)
        beat(engine.db, "outer.transfer-send", at, session="s1", disk_free=20 * 2**30, last_seq=7, queue_depth=0)
        engine.cycle(at)
    assert {a.check for a in engine.notifier.firing()} == {"restarts"}

    at = t0 + timedelta(minutes=5)
    beat(engine.db, "transfer-receive", at, session="r4", open_gaps=2, queue_drops=20, kernel={"socket_drops": 130},
         gap_seqs=[41, 42])
    beat(engine.db, "outer.transfer-send", at, session="s1", disk_free=3 * 2**30, last_error="disk nearly full")
    engine.cycle(at)
    firing = {(a.check, a.labels["subject"]): a for a in engine.notifier.firing()}
    assert firing[("transfer_gap", "")].severity == "critical"
    assert firing[("transfer_gap", "")].facts["missing"] == [41, 42]
    assert firing[("udp_drops", "")].facts["dropped_in_window"] == 50
    assert firing[("sender_health", "outer.transfer-send/disk")].severity == "warning"
    assert "disk nearly full" in firing[("sender_health", "outer.transfer-send/error")].summary_en
    gap_mail = smtp.sink.mails(group_contains='hop="transfer-receive"')
    # The inner runner's own report (inner_zone/runner.py health()): quarantine and CRL holds.
    beat(engine.db, "inner-runner", at, queue_depth=0, oldest_age_seconds=None, quarantine=2, held=0)
    engine.cycle(at + timedelta(seconds=1))
    q = [a for a in engine.notifier.firing() if a.check == "quarantine"]
    assert [(a.labels["subject"], a.facts) for a in q] == [("quarantine", {"quarantine": 2})]
    beat(engine.db, "inner-runner", at + timedelta(minutes=65), quarantine=0, held=0)
    assert gap_mail and "41" in body(gap_mail[-1])

    # An hour later nothing restarted, the gaps were filled and the drops stopped.
    later = t0 + timedelta(minutes=70)
    beat(engine.db, "transfer-receive", later, session="r4", open_gaps=0, queue_drops=20, kernel={"socket_drops": 130})
    beat(engine.db, "outer.transfer-send", later, session="s1", disk_free=20 * 2**30)
    engine.cycle(later)
    assert engine.notifier.firing() == []


def test_certificate_expiry_and_crl_freshness(tmp_path, smtp, pki):
    from tgw.demo.pki import Issuer, _key, _name, _usage, issue, make_crl
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file
    from tgw_common.registry import SignerRegistry

    now = datetime.now(UTC).replace(microsecond=0)
    gca = Issuer(load_certificate_file(pki / "gca.pem"), load_private_key_file(pki / "gca.key"))
    cfg_extra = {"trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                           "crl_dir": str(pki / "crl")},
                 "treasury": {"certificate": str(pki / "treasury" / "envelope.pem")}}
    cfg = load(write_monitor_config(tmp_path / "zone", smtp_port=smtp.port, pending_seconds=0, extra=cfg_extra,
                                    cert_warning_days=30, cert_critical_days=7, crl_warning_hours=24))
    engine = MonitorEngine(cfg, started_at=now)
    registry = SignerRegistry(engine.db)
    key = _key(2048)
    for cn, days in (("二十天 accountant", 20), ("三天 head", 3), ("六十天 releaser", 60)):
        cert = issue(_name(cn, unit="A10001"), key, gca, not_before=now - timedelta(days=300),
                     not_after=now + timedelta(days=days), usage=_usage(sign=True))
        registry.add(cert, agency="A10001", role=cn.split()[1])
    # The GCA's CRL goes stale in two hours; the root's CRL is missing altogether.
    crl = make_crl(gca, [], this_update=now - timedelta(days=6), next_update=now + timedelta(hours=2), number=9)
    (pki / "crl" / "gca.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    (pki / "crl" / "root.crl").unlink()

    engine.start(now)
    engine.cycle(now)
    firing = {a.labels["check"]: [] for a in engine.notifier.firing()}
    for a in engine.notifier.firing():
        firing[a.check].append(a)
    certs = {a.facts["subject"]: a.severity for a in firing["cert_expiry"]}
    assert certs == {"二十天 accountant": "warning", "三天 head": "critical"}
    assert [a.severity for a in firing["crl_stale"]] == ["warning"]
    assert [a.labels["subject"] for a in firing["crl_missing"]] == ["Demo Government Root CA 示範政府憑證總管理中心"]

    [mail] = smtp.sink.mails(group_contains='hop="pki"')
    text = body(mail)
    assert "憑證即將到期" in text and "二十天 accountant" in text and "三天 head" in text
    assert "六十天" not in text
    assert "CRL" in text and "tgw registry add" in text


def test_heartbeat_only_on_the_feed_counts(tmp_path, smtp):
    """A heartbeat that came over ZeroMQ but is not (yet) in the database keeps the daemon up."""
    import zmq

    from monitoring.feed import Feed

    engine = make(tmp_path, smtp, daemons=["inner-runner"], pending_seconds=0, heartbeat_timeout_seconds=5)
    feed = Feed(engine.mon.listen)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(engine.mon.listen)
    try:
        at = datetime.now(UTC)
        body_ = {"daemon": "inner-runner", "zone": "inner", "host": "app-host", "session": "live",
                 "started_at": at.isoformat(), "at": at.isoformat(), "state": {"queue_depth": 3}}
        import json

        taken = []
        for _ in range(100):  # the PUB side drops until the connection is up (slow joiner)
            pub.send_multipart([b"heartbeat", json.dumps(body_).encode()])
            pub.send_multipart([b"heartbeat", b"not json"])
            taken = feed.poll(0.05)
            if taken:
                break
        assert taken and taken[0][0] == "heartbeat"
        assert feed.counts["bad"] >= 1
        for topic, msg in taken:
            engine.take(topic, msg, at)
        engine.cycle(at + timedelta(seconds=1))
        assert engine.notifier.firing() == []
        assert engine.view["daemons"][0]["up"] is True
        assert engine.view["hops"][3]["depth"] == 3
        engine.cycle(at + timedelta(seconds=10))
        assert [a.check for a in engine.notifier.firing()] == ["daemon_down"]
    finally:
        pub.close()
        feed.close()
