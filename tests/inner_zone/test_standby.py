"""The standby database: a real primary and synchronous standby (pg_createcluster), the
promote and replication commands, the runner's start-up check, the monitor's
replication_lag check, and a failover in the middle of a load that loses nothing confirmed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tgw_common.db import libpq_url

from .ikit import TGW, RunnerProc, envelope, make_zone, wait_until
from .standby import make_pair, tools_present

A = "A10001"


def _need_clusters() -> None:
    if tools_present() and os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("the standby tests need postgresql-common (pg_createcluster) and root")
    pytest.skip("needs postgresql-common (pg_createcluster) and root")


@pytest.fixture(scope="module")
def pair():
    _need_clusters()
    made = make_pair(f"tgw{os.getpid()}m")
    yield made
    made.drop()


@pytest.fixture
def fresh_pair():
    """A pair of its own, for a test that promotes the standby (the pair is spent after)."""
    _need_clusters()
    made = make_pair(f"tgw{os.getpid()}f")
    yield made
    made.drop()


def tgw(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([TGW, *args], capture_output=True, text=True, timeout=timeout)


def test_the_multi_host_url_becomes_the_form_sqlalchemy_accepts():
    from sqlalchemy.engine import make_url

    url = libpq_url("postgresql+psycopg://gw@db1:5441,db2:5442/tgw?target_session_attrs=read-write")
    parsed = make_url(url)
    assert parsed.query["host"] == ("db1:5441", "db2:5442") and parsed.database == "tgw"
    assert parsed.query["target_session_attrs"] == "read-write" and parsed.username == "gw"
    plain = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx"
    assert libpq_url(plain) == plain and libpq_url("sqlite:///a,b.db") == "sqlite:///a,b.db"


def test_a_commit_is_on_the_standby_and_the_multi_host_engine_finds_the_primary(pair):
    from sqlalchemy import text

    from tgw_common.db import dispose_engines, make_engine

    pair.primary.psql("CREATE TABLE IF NOT EXISTS probe (n int); INSERT INTO probe VALUES (1)")
    # synchronous_commit = on: the commit returned once the standby had the WAL on disk;
    # replay follows at once, well within this wait.
    wait_until(lambda: pair.standby.psql("SELECT count(*) FROM probe") == "1", 10, "the row on the standby")
    engine = make_engine(pair.multi_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT inet_server_port()")).scalar() == pair.primary.port
    dispose_engines()


def test_replication_shows_the_synchronous_standby(pair, tmp_path, demo_pki):
    zone = make_zone(tmp_path / "zone", demo_pki, db_url=pair.multi_url)
    done = tgw("inner", "db", "replication", "--config", str(zone.config), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    [standby] = info["standbys"]
    assert standby["name"] == pair.standby_name and standby["state"] == "streaming"
    assert standby["sync_state"] == "sync" and info["problem"] is None and info["in_recovery"] is False
    text_out = tgw("inner", "db", "replication", "--config", str(zone.config)).stdout
    assert pair.standby_name in text_out and "ok: commits wait for a synchronous standby" in text_out


def test_promote_refuses_beside_a_live_primary_and_a_non_standby(pair, tmp_path, demo_pki):
    zone = make_zone(tmp_path / "zone", demo_pki, db_url=pair.multi_url,
                     database={"url": pair.multi_url, "standby_url": pair.standby.url()})
    done = tgw("inner", "db", "promote", "--config", str(zone.config))
    assert done.returncode == 1 and "still accepts writes" in done.stderr
    done = tgw("inner", "db", "promote", "--config", str(zone.config), "--standby", pair.primary.url(), "--force")
    assert done.returncode == 1 and "not a standby" in done.stderr
    assert pair.standby.psql("SELECT pg_is_in_recovery()") == "t"  # nothing was promoted


def test_the_runner_refuses_to_start_without_a_synchronous_standby(tmp_path, demo_pki, pg_url):
    zone = make_zone(tmp_path / "zone", demo_pki, db_url=pg_url,
                     database={"url": pg_url, "require_synchronous_standby": True})
    done = tgw("inner", "run", "--config", str(zone.config), timeout=60)
    assert done.returncode == 3
    assert "require_synchronous_standby" in done.stderr and "synchronous_standby_names" in done.stderr


def test_the_monitor_mails_a_disconnected_standby_and_its_return(pair, tmp_path):
    from monitoring.engine import MonitorEngine
    from tests.monitoring.mkit import SmtpServer, body, load, write_monitor_config

    pair.primary.psql("DROP DATABASE IF EXISTS mon", database="postgres")
    pair.primary.psql("CREATE DATABASE mon", database="postgres")
    # The monitor's own writes must not wait for the standby this test stops.
    url = pair.primary.url("mon") + "?options=-csynchronous_commit%3Dlocal"
    smtp = SmtpServer()
    try:
        cfg = load(write_monitor_config(tmp_path / "mon", smtp_port=smtp.port, db_url=url, daemons=[],
                                        extra={"database": {"url": url, "replication_lag_alert_seconds": 5}}))
        t0 = datetime.now(UTC)
        engine = MonitorEngine(cfg, started_at=t0)
        engine.start(t0)
        engine.cycle(t0)
        pair.standby.ctl("stop")
        for seconds in (1, 12):
            engine.cycle(t0 + timedelta(seconds=seconds))
        [mail] = smtp.sink.mails(kind="firing")
        text = body(mail)
        assert "check=replication_lag" in text and "no standby is streaming" in text
        pair.standby.ctl("start")
        pair.wait_streaming()
        for seconds in (20, 40):
            engine.cycle(t0 + timedelta(seconds=seconds))
        [resolved] = smtp.sink.mails(kind="resolved")
        assert "replication_lag" in body(resolved)
    finally:
        smtp.stop()
        if not pair.standby.running():
            pair.standby.ctl("start")


def _loaded(cluster) -> list[tuple[str, str]]:
    out = cluster.psql("SELECT envelope_id || ' ' || sha256 FROM intake_envelopes")
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def test_a_failover_during_a_load_loses_nothing_confirmed(fresh_pair, tmp_path, demo_pki, fkit):
    pair, n = fresh_pair, 60
    zone = make_zone(tmp_path / "zone", demo_pki, db_url=pair.multi_url,
                     database={"url": pair.multi_url, "standby_url": pair.standby.url(),
                               "require_synchronous_standby": True})
    shas = {}
    for i in range(n):
        data = envelope(fkit, A, number=7000 + i)
        shas[f"{A}-E{7000 + i:08d}"] = hashlib.sha256(data).hexdigest()
        zone.drop(f"F{i:03d}.p7m", data)
    proc = RunnerProc(zone, tmp_path / "runner.log")
    try:
        wait_until(lambda: pair.primary.psql("SELECT to_regclass('intake_envelopes') IS NOT NULL") == "t"
                   and len(_loaded(pair.primary)) >= 10, 60, "ten envelopes loaded on the primary")
        before = _loaded(pair.primary)
        pair.primary.ctl("stop", "-m", "immediate")
        # The runner archives a file only after its load committed: the archive is what it was told.
        archived = [p.name for p in zone.archived()]
        confirmed = {eid for eid, sha in shas.items() if any(sha in name for name in archived)}
        assert len(before) < n, "the whole batch loaded before the crash: nothing was tested"

        done = tgw("inner", "db", "promote", "--config", str(zone.config))
        assert done.returncode == 0, done.stderr
        assert "promoted" in done.stdout

        wait_until(lambda: len(_loaded(pair.standby)) == n, 60, "the rest loaded on the new primary", step=0.5)
        assert proc.alive()  # the same process: it reconnected by itself
    finally:
        code = proc.stop()
    assert code == 0, (tmp_path / "runner.log").read_text()[-3000:]
    after = _loaded(pair.standby)
    assert {eid for eid, _ in before} <= {eid for eid, _ in after}
    assert confirmed <= {eid for eid, _ in after}
    assert sorted(eid for eid, _ in after) == sorted(shas)  # each once, none missing
    assert {sha for _, sha in after} == set(shas.values())
    assert pair.standby.psql("SELECT count(*) FROM intake_documents") == str(2 * n)
    assert len(zone.archived()) == n and not zone.quarantine_entries()
    again = tgw("inner", "db", "promote", "--config", str(zone.config), "--force")
    assert again.returncode == 1 and "not a standby" in again.stderr


def test_the_lag_bound_and_a_standby_not_streaming_are_alerts():
    from monitoring.checks.base import CheckEnv
    from monitoring.checks.replication import replication_lag
    from monitoring.snapshot import Snapshot
    from tgw_common.config import MonitorConfig
    from tgw_common.replication import ReplicationView, StandbyState

    now = datetime.now(UTC)
    env = CheckEnv(monitor=MonitorConfig(), zone="inner", host="db-host")
    snap = Snapshot(zone="inner", host="db-host", monitor_started_at=now)
    snap.replication = ReplicationView(
        in_recovery=False, synchronous_standby_names="FIRST 1 (b, c)", synchronous_commit="on", alert_seconds=30,
        standbys=[StandbyState("b", "10.0.2.5", "streaming", "sync", 2.0, 100),
                  StandbyState("c", "10.0.3.5", "streaming", "potential", 95.25, 9_000_000),
                  StandbyState("d", "10.0.4.5", "catchup", "async", 0.0, None)])
    alerts = {a.subject: a for a in replication_lag(snap, env, now)}
    assert set(alerts) == {"c", "d"}
    assert alerts["c"].facts["lag_seconds"] == 95.25 and "95 s behind" in alerts["c"].summary_en
    assert "catchup" in alerts["d"].summary_en
    snap.replication = ReplicationView(in_recovery=False, synchronous_standby_names="", synchronous_commit="on")
    assert replication_lag(snap, env, now) == []  # a site without a standby is not an alert
    snap.replication.expected = True
    [alone] = replication_lag(snap, env, now)
    assert alone.severity == "warning" and alone.subject == "standby"
