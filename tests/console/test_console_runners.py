"""The dashboard's runner list: every inner runner seen in the last day, from intake_runners."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import delete

from inner_zone.models import RunnerRow
from tgw_common.db import dispose_engines, transaction, utcnow

from .conftest import copy_zone, signed_in


@pytest.fixture
def rzone(tmp_path, zone_template):
    yield copy_zone(zone_template, tmp_path / "r")
    dispose_engines()


@pytest.fixture
def rapp(rzone):
    from inner_zone.console.app import create_app

    application = create_app(rzone.load_config())
    application.config["TESTING"] = True
    yield application
    application.extensions["tgw_console"].close()


def _runner(engine, session: str, *, host: str, pid: int, seen_ago: float, stopped: bool = False, leases: int = 0,
            loaded: int = 0, queue: str = "database") -> None:
    now = utcnow()
    with transaction(engine) as s:
        s.add(RunnerRow(session=session, host=host, pid=pid, queue=queue, started_at=now - timedelta(hours=2),
                        seen_at=now - timedelta(seconds=seen_ago), leases=leases, stopped=stopped,
                        counts={"loaded": loaded, "duplicate": 0}, last_error=None))


def _row(page: str, session: str) -> str:
    found = re.search(rf'<tr data-runner="{session}" class="status-(\w+)">(.*?)</tr>', page, re.S)
    assert found, f"runner {session} not listed"
    return found.group(1) + found.group(2)


def test_dashboard_lists_every_runner_of_the_last_day(rapp, rzone):
    engine = rzone.engine()
    with transaction(engine) as s:
        s.execute(delete(RunnerRow))
    _runner(engine, "a" * 32, host="inner-1", pid=4101, seen_ago=1, leases=3, loaded=120)
    _runner(engine, "b" * 32, host="inner-2", pid=4202, seen_ago=600, leases=1, loaded=7)  # killed
    _runner(engine, "c" * 32, host="inner-2", pid=4203, seen_ago=30, stopped=True, loaded=55)
    _runner(engine, "d" * 32, host="inner-9", pid=4909, seen_ago=2 * 86400)  # retired: not listed

    client = signed_in(rapp, "vera")
    page = client.get("/dashboard").get_data(as_text=True)
    running, killed, stopped = _row(page, "a" * 32), _row(page, "b" * 32), _row(page, "c" * 32)
    assert running.startswith("running") and "inner-1" in running and "4101" in running
    assert re.search(r'<td class="num">3</td>\s*<td class="num">120</td>', running)  # leases, loaded
    assert "執行中" in running
    assert killed.startswith("silent") and "失去聯繫" in killed and "inner-2" in killed and "4202" in killed
    assert stopped.startswith("stopped") and "已停止" in stopped
    assert 'data-runner="' + "d" * 32 not in page and "inner-9" not in page
    assert page.index('data-runner="' + "a" * 32) < page.index('data-runner="' + "c" * 32)  # newest first
    assert "內部處理程序（最近 24 小時）" in page
    assert "佇列：收件目錄（僅一個處理程序）" in page  # this zone runs inner.queue: spool

    client.get("/lang/en")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Inner runners, last 24 hours" in page and "not heard from" in page and "Leases held" in page

    data = client.get("/dashboard.json").get_json()
    assert data["queue_mode"] == "spool"
    listed = {r["session"]: r for r in data["runners"]}
    assert set(listed) == {"a" * 32, "b" * 32, "c" * 32}
    assert (listed["a" * 32]["status"], listed["a" * 32]["leases"], listed["a" * 32]["loaded"]) == ("running", 3, 120)
    assert listed["b" * 32]["status"] == "silent"


def test_dashboard_without_runners_says_so(rapp, rzone):
    engine = rzone.engine()
    with transaction(engine) as s:
        s.execute(delete(RunnerRow))
    page = signed_in(rapp, "vera").get("/dashboard").get_data(as_text=True)
    assert 'id="no-runners"' in page and "data-runner=" not in page
