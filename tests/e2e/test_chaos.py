"""An operator's bad day: daemons killed at random while envelopes flow, and nobody steps in.

`tgw up --loss 0.05` (5 % of the link's datagrams lost), envelopes uploaded through the
portal while a second thread SIGKILLs a random daemon of the envelope's path (receiver,
sender, runner, both monitors, the receipts daemons and the return link) 30 times, about
one every two seconds; in the middle, the receiver is also held down for 8 s, longer than
the carousel's second copy but shorter than its window, so files sent meanwhile are missed
and must come back by themselves. At the end: every envelope has its expected fate (each
valid one loaded exactly once), no gap is open, nothing was resent by hand, and every
program is RUNNING.

The carousel is shortened to 0, 3, 15 and 45 s (`tgw up --repeat-schedule`) so the test
need not wait the default five minutes; the outage still falls between its second offset
and its window, which is what the default schedule guarantees at its own scale.

200 envelopes, the issue's run: about 2.5 minutes on the shared 2-core machine (measured
at 145 s), under the 4 minutes that would have called for a smaller default count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import xmlrpc.client
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.e2e.conftest import free_port_base, tgw
from tests.e2e.test_appliance import _engine, _final_events, _wait_for
from tgw.appliance.client import Portal
from tgw_common.db import transaction
from tgw_common.events import EventRow

COUNT = 200
KILLS = 30
VICTIMS = ("transfer-receive", "transfer-send", "inner-runner", "monitor-outer", "monitor-inner",
           "outer-receipts", "inner-receipts", "return-send", "return-receive")
SCHEDULE = "0,3,15,45"
OUTAGE_SECONDS = 8


def _rpc(folder: Path) -> xmlrpc.client.ServerProxy:
    from supervisor.xmlrpc import SupervisorTransport

    return xmlrpc.client.ServerProxy("http://127.0.0.1",
                                     transport=SupervisorTransport(None, None, f"unix://{folder / 'supervisor.sock'}"))


class Chaos(threading.Thread):
    """SIGKILLs a random RUNNING daemon, KILLS times; holds the receiver down once in the middle."""

    def __init__(self, folder: Path, seed: int) -> None:
        super().__init__(name="chaos", daemon=True)
        self.folder = folder
        self.rng = random.Random(seed)
        self.kills: list[tuple[str, int]] = []
        self.outage_done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            rpc = _rpc(self.folder)
            while len(self.kills) < KILLS:
                if len(self.kills) == KILLS // 3 and not self.outage_done.is_set():
                    self._outage(rpc)
                time.sleep(self.rng.uniform(1.0, 3.0))
                name = self.rng.choice(VICTIMS)
                info = rpc.supervisor.getProcessInfo(name)
                # Kills while STARTING are what used up startretries in the issue; but not for
                # the runner, where crashes on the same envelope rightly count it as poison.
                allowed = ("RUNNING",) if name == "inner-runner" else ("RUNNING", "STARTING")
                if info["statename"] not in allowed or not info["pid"]:
                    continue
                os.kill(info["pid"], signal.SIGKILL)
                self.kills.append((name, info["pid"]))
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _outage(self, rpc) -> None:
        rpc.supervisor.stopProcess("transfer-receive", True)
        time.sleep(OUTAGE_SECONDS)
        rpc.supervisor.startProcess("transfer-receive", False)
        self.outage_done.set()


def _states(folder: Path) -> dict[str, str]:
    return {p["name"]: p["statename"] for p in _rpc(folder).supervisor.getAllProcessInfo()}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_random_kills_during_a_lossy_run_need_no_human(appliance_dir: Path, tmp_path: Path):
    folder = appliance_dir
    tgw("up", "--dir", folder, "--port-base", str(free_port_base()), "--loss", "0.05",
        "--repeat-schedule", SCHEDULE, timeout=300)
    creds = json.loads((folder / "credentials.json").read_text())
    batch = tmp_path / "batch"
    tgw("demo-data", "envelopes", "--pki", folder / "pki", "--out", batch, "--count", str(COUNT), "--seed", "23")
    expected = json.loads((batch / "expected.json").read_text())["files"]
    outer = _engine(folder / "config" / "outer.yaml")
    inner = _engine(folder / "config" / "inner.yaml")

    seed = int(os.environ.get("TGW_CHAOS_SEED", "36"))
    chaos = Chaos(folder, seed)
    chaos.start()
    portals = {code: Portal(creds["portal"], a["token"]) for code, a in creds["agencies"].items()}
    answers: dict[str, object] = {}
    try:
        for entry in expected:
            if entry.get("after"):
                first = answers[entry["after"]].tracking_id
                _wait_for(lambda first=first: _final_events(inner, [first]).get(first) == "loaded",
                          timeout=180, what=f"{entry['after']} loaded")
            answers[entry["file"]] = portals[entry["upload_as"]].upload((batch / entry["file"]).read_bytes())
            # Spread the uploads over the kills (about a minute), as a day's traffic would be.
            time.sleep(max(0.0, 50.0 / COUNT - 0.05))
    finally:
        for portal in portals.values():
            portal.close()
    chaos.join(timeout=300)
    assert chaos.error is None, f"chaos thread (seed {seed}): {chaos.error!r}"
    assert len(chaos.kills) == KILLS and chaos.outage_done.is_set()

    accepted = {e["file"]: answers[e["file"]].tracking_id for e in expected if answers[e["file"]].status == 202}
    finals = _wait_for(lambda: (lambda d: d if len(d) == len(accepted) else None)(
        _final_events(inner, list(accepted.values()))), timeout=300,
        what=f"every accepted envelope to finish (seed {seed}, kills {Counter(n for n, _ in chaos.kills)})")

    with transaction(inner) as s:
        loaded = Counter(dict(s.execute(text("SELECT sha256, count(*) FROM intake_envelopes GROUP BY sha256")).all()))
        loaded_events = Counter(dict(s.execute(select(EventRow.sha256, func.count()).where(
            EventRow.event == "loaded").group_by(EventRow.sha256)).all()))
    problems = []
    for e in expected:
        answer = answers[e["file"]]
        if e["expect"] == "loaded":
            if answer.status != 202 or finals.get(accepted[e["file"]]) != "loaded":
                problems.append(f"{e['file']}: not loaded ({answer.status}, {finals.get(answer.tracking_id)})")
            elif loaded[e["sha256"]] != 1 or loaded_events[e["sha256"]] != 1:
                problems.append(f"{e['file']}: {loaded[e['sha256']]} rows, {loaded_events[e['sha256']]} events")
        elif e["zone"] == "outer":
            if answer.status != e["http_status"] or answer.body.get("reason") != e["reason"]:
                problems.append(f"{e['file']}: expected {e['http_status']} {e['reason']}, got {answer.status}")
        elif answer.status != 202 or finals.get(accepted[e["file"]]) != "quarantined":
            problems.append(f"{e['file']}: expected quarantine, got {answer.status} {finals.get(answer.tracking_id)}")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)

    # The outage cost nothing: the receiver saw from the sender's ledger what it had missed,
    # and the carousel's later copies closed every such gap; nobody carried a resend list.
    with transaction(inner) as s:
        gaps = s.execute(text("SELECT seq, closed_by FROM transfer_gaps")).all()
    assert gaps, "the 8 s outage should have made the receiver miss files"
    assert all(closed_by in ("arrived", "duplicate") for _seq, closed_by in gaps), gaps
    with transaction(outer) as s:
        resent = s.scalar(select(func.count()).select_from(EventRow).where(EventRow.event == "resent"))
    assert resent == 0

    # Every program came back by itself and is running.
    _wait_for(lambda: all(s == "RUNNING" for s in _states(folder).values()), timeout=120,
              what="every program RUNNING")
    killed = {name for name, _ in chaos.kills}
    status = {p["name"]: p for p in _rpc(folder).supervisor.getAllProcessInfo()}
    for name, pid in chaos.kills:
        assert status[name]["pid"] != pid, f"{name} still has the pid that was killed"
    assert killed >= {"transfer-receive", "inner-runner"} or len(killed) >= 5
