"""runners_idle and runner_down: the inner runners' own rows and the shared queue, on the
real intake tables (PostgreSQL and SQLite), mailed through a real SMTP server."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from inner_zone.dbsetup import upgrade
from inner_zone.models import QueuedEnvelope, RunnerRow
from monitoring.engine import MonitorEngine
from tgw_common.db import transaction

from .mkit import body, load, write_monitor_config
from .test_monitor_engine import MONDAY_10

T0 = MONDAY_10


def _engine(tmp_path, smtp, *, db_url=None, zone="inner", **monitor) -> MonitorEngine:
    cfg = load(write_monitor_config(tmp_path, smtp_port=smtp.port, db_url=db_url, zone=zone,
                                    extra={"inner": {"heartbeat_seconds": 5}}, **monitor))
    engine = MonitorEngine(cfg, started_at=T0)
    upgrade(engine.db)
    engine.start(T0)
    return engine


def runner(db, session: str, *, host: str, pid: int, seen_at: datetime, stopped: bool = False,
           queue: str = "database", leases: int = 0) -> None:
    with transaction(db) as s:
        row = s.get(RunnerRow, session) or RunnerRow(session=session, host=host, pid=pid, queue=queue,
                                                     started_at=T0 - timedelta(hours=1), counts={"loaded": 7})
        row.seen_at, row.stopped, row.leases, row.last_error = seen_at, stopped, leases, None
        s.add(row)


def enqueue(db, name: str, at: datetime, *, lease_expires_at: datetime | None = None) -> None:
    with transaction(db) as s:
        s.add(QueuedEnvelope(name=name, sha256="c" * 64, size=10, state="ready", tries=0, lease_token=1,
                             lease_owner="x" if lease_expires_at else None, lease_host="h1" if lease_expires_at else None,
                             lease_expires_at=lease_expires_at, enqueued_at=at, enqueued_by="receiver"))


def _checks(result) -> list[tuple[str, str, str]]:
    """Each alert's last change in the cycle (with pending_seconds 0 it goes pending and firing at once)."""
    last = {(t.alert.check, t.alert.labels["subject"]): t.to_state for t in result.transitions}
    return sorted((check, subject, state) for (check, subject), state in last.items())


@pytest.mark.postgres
def test_idle_queue_and_dead_runner_on_postgres(tmp_path, smtp, pg_url):
    mon = _engine(tmp_path, smtp, db_url=pg_url, pending_seconds=10)
    db = mon.db
    runner(db, "a" * 32, host="inner-1", pid=111, seen_at=T0)
    runner(db, "b" * 32, host="inner-2", pid=222, seen_at=T0 - timedelta(days=2))  # long retired: never mailed
    for i in range(3):
        enqueue(db, f"T-{i}.p7m", T0 - timedelta(seconds=10))
    assert _checks(mon.cycle(T0 + timedelta(seconds=1))) == []

    # Runner a dies without a clean stop; the envelopes wait past the bound.
    assert _checks(mon.cycle(T0 + timedelta(seconds=130))) == [
        ("runner_down", f"111/{'a' * 32}", "pending"), ("runners_idle", "", "pending")]
    assert _checks(mon.cycle(T0 + timedelta(seconds=145))) == [
        ("runner_down", f"111/{'a' * 32}", "firing"), ("runners_idle", "", "firing")]
    [mail] = smtp.sink.mails(kind="firing")
    text = body(mail)
    for needle in ("check=runners_idle", "check=runner_down", "3 envelopes have waited over 120 s",
                   "inner-1 pid 111", "no runner is alive", "host=inner-1", "沒有任何處理程序在執行"):
        assert needle in text, needle
    assert "inner-2" not in text and "222" not in text

    # Another runner comes up: the queue has someone again, the dead one is still reported.
    runner(db, "c" * 32, host="inner-2", pid=333, seen_at=T0 + timedelta(seconds=150))
    # (the dead one's alert drops to a warning: someone carries the load)
    assert _checks(mon.cycle(T0 + timedelta(seconds=152))) == [
        ("runner_down", f"111/{'a' * 32}", "changed"), ("runners_idle", "", "resolved")]
    # The dead one is restarted and stops cleanly: its alert resolves too.
    runner(db, "a" * 32, host="inner-1", pid=111, seen_at=T0 + timedelta(seconds=155), stopped=True)
    assert _checks(mon.cycle(T0 + timedelta(seconds=156))) == [("runner_down", f"111/{'a' * 32}", "resolved")]
    assert [m["X-TGW-Kind"] for m in smtp.sink.mails()] == ["firing", "resolved"]


@pytest.mark.postgres
def test_a_live_lease_or_a_fresh_runner_means_not_idle(tmp_path, smtp, pg_url):
    mon = _engine(tmp_path, smtp, db_url=pg_url, pending_seconds=0)
    db = mon.db
    runner(db, "a" * 32, host="inner-1", pid=111, seen_at=T0 - timedelta(minutes=10))
    enqueue(db, "T-1.p7m", T0 - timedelta(minutes=10), lease_expires_at=T0 + timedelta(seconds=30))
    # A lease still runs (a runner busy with one envelope, its row late): not idle; the row is late.
    assert _checks(mon.cycle(T0)) == [("runner_down", f"111/{'a' * 32}", "firing")]
    # The lease ran out: nobody works on the queue.
    assert ("runners_idle", "", "firing") in _checks(mon.cycle(T0 + timedelta(seconds=31)))
    # A runner seen again (its heartbeat) ends both, whatever the queue holds.
    runner(db, "a" * 32, host="inner-1", pid=111, seen_at=T0 + timedelta(seconds=40))
    assert _checks(mon.cycle(T0 + timedelta(seconds=41))) == [
        ("runner_down", f"111/{'a' * 32}", "resolved"), ("runners_idle", "", "resolved")]


def test_spool_queue_on_sqlite_only_runner_down(tmp_path, smtp):
    mon = _engine(tmp_path, smtp, pending_seconds=0, runner_down_after_seconds=60)
    runner(mon.db, "s" * 32, host="box", pid=42, seen_at=T0, queue="spool")
    assert _checks(mon.cycle(T0 + timedelta(seconds=59))) == []
    result = mon.cycle(T0 + timedelta(hours=3))
    assert _checks(result) == [("runner_down", f"42/{'s' * 32}", "firing")]  # never runners_idle: no shared queue
    text = body(smtp.sink.mails(kind="firing")[0])
    assert "runner box pid 42 has not reported for" in text
    # A day later the row is history, not an alert.
    assert _checks(mon.cycle(T0 + timedelta(days=1, seconds=1))) == [("runner_down", f"42/{'s' * 32}", "resolved")]


def test_outer_zone_has_no_runner_checks(tmp_path, smtp):
    mon = _engine(tmp_path, smtp, zone="outer", pending_seconds=0)
    runner(mon.db, "o" * 32, host="box", pid=1, seen_at=T0 - timedelta(hours=1))
    assert _checks(mon.cycle(T0)) == []
