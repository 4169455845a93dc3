"""The whole gateway on one machine, started as the README says, with 200 envelopes through it.

`tgw up` in a fresh folder (real supervisord, gunicorn, UDP link, runner, monitors, SMTP
sink), `tgw demo-data envelopes` for valid envelopes and every kind of bad one, uploads
through the portal's API with each agency's bearer token, then from the zones' own records:
every valid envelope loaded exactly once, every bad one refused at upload with its HTTP
status and reason or quarantined with its reason, and each accepted envelope's provenance
passing every hop. Once sender -> receiver, once through the lossy relay (5 % of the
datagrams lost) with the inner runner killed (-9) half-way through.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.e2e.conftest import free_port_base, tgw
from tgw.appliance.client import Portal
from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction
from tgw_common.events import EventRow

COUNT = 200
HOPS = {("outer-web", "received"), ("outer-web", "spooled"), ("transfer-send", "sent"), ("transfer-receive", "arrived")}


def _engine(config: Path):
    return make_engine(load_config(config).database.url)


def _events(engine, tracking_ids: list[str]) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    with transaction(engine) as s:
        for i in range(0, len(tracking_ids), 400):
            for hop, event, tid in s.execute(select(EventRow.hop, EventRow.event, EventRow.tracking_id)
                                             .where(EventRow.tracking_id.in_(tracking_ids[i:i + 400]))):
                out.setdefault(tid, set()).add((hop, event))
    return out


def _wait_for(condition, *, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _final_events(inner, tracking_ids: list[str]) -> dict[str, str]:
    """tracking id -> loaded / quarantined, for those the runner has finished."""
    done: dict[str, str] = {}
    for tid, events in _events(inner, tracking_ids).items():
        for event in ("loaded", "quarantined"):
            if ("inner-runner", event) in events:
                done[tid] = event
    return done


def _status(folder: Path) -> dict:
    """What `tgw status --json` prints (read in this process: one tgw start-up less per call)."""
    from tgw.appliance.layout import Layout
    from tgw.appliance.status import gather

    return gather(Layout.at(folder))


def _assert_owner_only(folder: Path) -> None:
    """Payees' accounts and ID numbers, password hashes, keys: nothing of the appliance is
    readable by another local user, the databases' WAL and SHM files included."""
    for name in ("inner.db", "outer.db"):
        assert list(folder.rglob(name)), f"{name} not found under {folder}"
        assert list(folder.rglob(name + "-wal")), f"{name}-wal not found: the check would miss it"
    shared = {str(p.relative_to(folder)): oct(stat.S_IMODE(p.lstat().st_mode))
              for p in (folder, *folder.rglob("*")) if not p.is_symlink() and p.lstat().st_mode & 0o077}
    assert shared == {}


def _assert_fates_reach_the_agency(folder: Path, creds: dict, expected: list, accepted: dict, finals: dict,
                                   tmp_path: Path) -> None:
    """Over the return link, each accepted envelope's fate reaches its agency through the API,
    with a receipt that openssl verifies against the root alone."""
    agency_of = {e["file"]: e["upload_as"] for e in expected}
    portals = {code: Portal(creds["portal"], a["token"]) for code, a in creds["agencies"].items()}
    want = {tid: ("loaded" if finals[tid] == "loaded" else "refused", agency_of[file]) for file, tid in accepted.items()}
    try:
        def states():
            seen = {tid: portals[code].fate(tid).body.get("state") for tid, (_w, code) in want.items()}
            return seen if all(seen[t] == w for t, (w, _c) in want.items()) else None

        _wait_for(states, timeout=120, what="every fate at the agency")
        for tid, (_w, code) in want.items():
            der = portals[code].receipt(tid)
            assert der is not None, tid
            path = tmp_path / "receipt.p7s"
            path.write_bytes(der)
            done = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(path), "-CAfile",
                                   str(folder / "pki" / "root.pem"), "-purpose", "any"], capture_output=True, check=False)
            assert done.returncode == 0 and tid.encode() in done.stdout, done.stderr.decode()
    finally:
        for portal in portals.values():
            portal.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("loss", [None, 0.05], ids=["direct", "lossy-relay"])
def test_two_hundred_envelopes_end_to_end(appliance_dir: Path, tmp_path: Path, loss: float | None):
    folder = appliance_dir
    args = ["up", "--dir", folder, "--port-base", str(free_port_base())]
    if loss is not None:
        args += ["--loss", str(loss)]
    started = time.monotonic()
    up = tgw(*args, timeout=300)
    assert "http://127.0.0.1:" in up.stdout

    # What `tgw up` promised: credentials only for us, every program RUNNING, the relay iff --loss.
    creds_file = folder / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    _assert_owner_only(folder)
    creds = json.loads(creds_file.read_text())
    assert set(creds["agencies"]) == {"A10001", "A10002", "A10003"}
    if Path("/usr/lib/softhsm/libsofthsm2.so").is_file():  # the demo IC cards and a signer config per officer
        for code, a in creds["agencies"].items():
            assert set(a["cards"]) == {"accountant", "head", "releaser"}
            for role, card in a["cards"].items():
                assert card["token_label"] == f"{code}-{role}" and card["pin"]
                assert load_config(card["signer_config"]).signer.portal_origin == creds["portal"]
                assert card["signer_url"].startswith("http://127.0.0.1:")
        assert "tgw agency signer --config" in up.stdout
    status = _status(folder)
    programs = {p["program"]: p for p in status["programs"]}
    assert all(p["state"] == "RUNNING" for p in programs.values())
    assert ("transfer-relay" in programs) == (loss is not None)
    assert {"outer-web", "transfer-send", "transfer-receive", "inner-runner", "monitor-outer", "monitor-inner",
            "smtp-sink", "supervisor-events"} <= set(programs)

    batch = tmp_path / "batch"
    tgw("demo-data", "envelopes", "--pki", folder / "pki", "--out", batch, "--count", str(COUNT), "--seed", "11")
    expected = json.loads((batch / "expected.json").read_text())["files"]
    assert len(expected) == COUNT

    outer = _engine(folder / "config" / "outer.yaml")
    inner = _engine(folder / "config" / "inner.yaml")
    portals = {code: Portal(creds["portal"], a["token"]) for code, a in creds["agencies"].items()}
    answers: dict[str, object] = {}
    killed_pid = None
    try:
        for n, entry in enumerate(expected):
            if entry.get("after"):
                first = answers[entry["after"]].tracking_id
                _wait_for(lambda first=first: _final_events(inner, [first]).get(first) == "loaded",
                          timeout=120, what=f"{entry['after']} loaded")
            answers[entry["file"]] = portals[entry["upload_as"]].upload((batch / entry["file"]).read_bytes())
            if loss is not None and n == COUNT // 2:
                # kill -9 in the middle of the traffic: supervisord restarts it, nothing is lost or doubled.
                killed_pid = programs["inner-runner"]["pid"]
                os.kill(killed_pid, signal.SIGKILL)
    finally:
        for portal in portals.values():
            portal.close()

    accepted = {e["file"]: answers[e["file"]].tracking_id for e in expected if answers[e["file"]].status == 202}
    finals = _wait_for(lambda: (lambda d: d if len(d) == len(accepted) else None)(
        _final_events(inner, list(accepted.values()))), timeout=180, what="every accepted envelope to finish")

    quarantine = json.loads(tgw("inner", "quarantine", "list", "--json", "--config",
                                folder / "config" / "inner.yaml").stdout)
    quarantined = {q["sha256"]: q for q in quarantine}
    with transaction(inner) as s:
        loaded = Counter(dict(s.execute(text("SELECT sha256, count(*) FROM intake_envelopes GROUP BY sha256")).all()))
        loaded_events = Counter(dict(s.execute(select(EventRow.sha256, func.count()).where(
            EventRow.event == "loaded").group_by(EventRow.sha256)).all()))
    problems = []
    for e in expected:
        answer, sha = answers[e["file"]], e["sha256"]
        if e["expect"] == "loaded":
            if answer.status != 202 or finals.get(accepted[e["file"]]) != "loaded":
                problems.append(f"{e['file']}: not loaded ({answer.status} {answer.body.get('reason')})")
            elif loaded[sha] != 1 or loaded_events[sha] != 1:
                problems.append(f"{e['file']}: {loaded[sha]} rows, {loaded_events[sha]} loaded events")
        elif e["zone"] == "outer":
            if not (400 <= answer.status < 500 and answer.status == e["http_status"]
                    and answer.body.get("reason") == e["reason"] and answer.body.get("message")):
                problems.append(f"{e['file']}: expected {e['http_status']} {e['reason']}, got {answer.status} "
                                f"{answer.body}")
        else:
            q = quarantined.get(sha)
            if answer.status != 202 or q is None or q["reason"] != e["reason"] or q["status"] != "open":
                problems.append(f"{e['file']}: expected quarantine {e['reason']}, got {answer.status} "
                                f"{q and (q['reason'], q['status'])}")
            elif loaded[sha]:
                problems.append(f"{e['file']}: quarantined and loaded")
    assert not problems, "\n".join(problems)
    assert sum(loaded.values()) == sum(e["expect"] == "loaded" for e in expected), "something extra was loaded"

    # Provenance: every accepted envelope went through every hop, in both zones' records.
    tids = list(accepted.values())
    outer_events, inner_events = _events(outer, tids), _events(inner, tids)
    for file, tid in accepted.items():
        seen = outer_events.get(tid, set()) | inner_events.get(tid, set())
        last = ("inner-runner", "loaded") if finals[tid] == "loaded" else ("inner-runner", "quarantined")
        missing = (HOPS | {last}) - seen
        assert not missing, f"{file} ({tid}): no {sorted(missing)} in its provenance: {sorted(seen)}"
    # ... and a refused upload never reached the spool.
    refused_ids = [a.tracking_id for a in answers.values() if a.status != 202 and a.tracking_id]
    assert not any(("outer-web", "spooled") in ev for ev in _events(outer, refused_ids).values())

    _assert_fates_reach_the_agency(folder, creds, expected, accepted, finals, tmp_path)

    status = _status(folder)
    assert all(p["state"] == "RUNNING" for p in status["programs"])
    assert ("return-relay" in {p["program"] for p in status["programs"]}) == (loss is not None)
    if killed_pid is not None:
        runner = next(p for p in status["programs"] if p["program"] == "inner-runner")
        assert runner["pid"] != killed_pid
        # The event listener put the crash on record in the inner zone's database.
        with transaction(inner) as s:
            state = s.execute(text("SELECT state FROM daemon_status WHERE daemon = 'supervisor'")).scalar_one()
        state = json.loads(state) if isinstance(state, str) else state
        assert state["last_exit"]["program"] == "inner-runner" and state["exits_last_hour"] >= 1
    else:
        # The monitors mail through the SMTP sink: the demo PKI's expired (registered) accountant
        # certificate is an alert from the first cycle on.
        # (pending 30 s + group wait 10 s + a cycle after the monitor's start: usually here already)
        mails = _wait_for(lambda: list((folder / "mail").glob("*.eml")),
                          timeout=max(10, 150 - (time.monotonic() - started)), what="an alert mail in the SMTP sink")
        assert any(b"X-TGW-Zone:" in m.read_bytes() for m in mails)

    tgw("down", "--dir", folder, timeout=660)
    assert not _status(folder)["running"]
    if loss is not None:
        # The relay prints its counters when it stops: the loss was real.
        counters = [json.loads(line) for line in (folder / "log" / "transfer-relay.log").read_text().splitlines()
                    if line.startswith("{") and '"dropped"' in line]
        assert counters and counters[-1]["dropped"] > 0
