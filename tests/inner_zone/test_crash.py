"""kill -9 of a real `tgw inner run` at random moments, many rounds, then a clean finish.

The spool holds a few hundred envelopes: good ones, refused ones, identical copies of
good ones under other names (the link delivered twice) and replays (a new envelope
reusing a loaded envelope id). Whatever the kills hit (start-up recovery, the middle of
a load, the gap between commit and archive, a quarantine move), at the end:
- every envelope file is accounted for: loaded, quarantined, or dropped as a duplicate;
- no content is loaded twice and none is both loaded and in quarantine;
- every loaded envelope is whole (all documents and payees, one "loaded" and one
  "archived" event, its original in the archive) and nothing is left in the spool.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tgw.demo.documents import bad_documents

from .ikit import RunnerProc, Zone, envelope, make_zone, numbered_documents, wait_until

A, B = "A10001", "A10002"
GOOD, BAD, COPIES, REPLAYS = 200, 10, 12, 6
ROUNDS = 12


@dataclass(frozen=True)
class Item:
    name: str
    data: bytes
    kind: str  # good | bad | copy | replay
    documents: int = 0
    payees: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@pytest.fixture(scope="module")
def items(fkit) -> list[Item]:
    """Built once for both databases: ~220 small envelopes."""
    out: list[Item] = []
    for n in range(GOOD):
        agency = A if n % 3 else B
        docs = numbered_documents(agency, 1 + n % 2, number=5000 + n)
        payees = sum(len(json.loads(d).get("payees", json.loads(d).get("recipients", []))) for _p, _k, d in docs)
        out.append(Item(f"G{n:04d}.p7m", envelope(fkit, agency, number=5000 + n, docs=docs), "good", len(docs),
                        payees))
    for n in range(BAD):
        docs = [(f"documents/{d.path}", d.kind, d.data)
                for d in bad_documents(["BAD_NATIONAL_ID", "VOUCHER_TOTAL_MISMATCH"][n % 2], A, seed=700 + n)]
        out.append(Item(f"X{n:04d}.p7m", fkit.envelope(A, payload=fkit.payload(A, docs=docs)), "bad"))
    rng = random.Random(7)
    for n, original in enumerate(rng.sample(out[:GOOD], COPIES)):
        out.append(Item(f"C{n:04d}.p7m", original.data, "copy", original.documents, original.payees))
    for n in range(REPLAYS):  # other content, the envelope id of good envelope n
        agency = A if n % 3 else B
        out.append(Item(f"R{n:04d}.p7m", envelope(fkit, agency, number=9000 + n, envelope_id=f"{agency}-E{5000 + n:08d}"),
                        "replay"))
    return out


def _started(log: Path, since: int) -> bool:
    return b'"started"' in log.read_bytes()[since:]


def torture(zone: Zone, items: list[Item], tmp_path: Path, seed: int) -> int:
    rng = random.Random(seed)
    order = items[:]
    rng.shuffle(order)
    for item in order:
        zone.drop(item.name, item.data)
    log = tmp_path / "runner.log"
    log.touch()
    claimed = zone.inbound / ".claimed"
    for round_ in range(ROUNDS):
        since = log.stat().st_size
        proc = RunnerProc(zone, log)
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0.2, 1.8))  # anywhere, start-up recovery included
        else:
            wait_until(lambda s=since, p=proc: _started(log, s) or not p.alive(), 60, "the runner to start")
            time.sleep(rng.uniform(0.0, 0.6))
        assert proc.alive(), f"runner exited by itself in round {round_}; see {log}"
        proc.kill9()
        if not list(zone.inbound.glob("*.p7m")) and not list(claimed.iterdir()):
            break
    kills = round_ + 1
    since = log.stat().st_size
    proc = RunnerProc(zone, log)
    try:
        # Started first: a SIGTERM before the runner's handlers exist ends it by the signal,
        # and the clean stop asserted below is the point of this last run.
        wait_until(lambda: _started(log, since), 60, "the last runner to start")
        wait_until(lambda: not list(zone.inbound.glob("*.p7m")) and not list(claimed.iterdir()), 120,
                   "the spool to drain")
    finally:
        assert proc.stop() == 0
    return kills


def check(zone: Zone, items: list[Item]) -> Counter:
    engine = create_engine(zone.db_url)
    with engine.connect() as c:
        rows = c.execute(text(
            "SELECT e.id, e.sha256, e.envelope_id, e.tracking_id, e.document_count, l.archived_at, l.archive_path "
            "FROM intake_envelopes e JOIN intake_loads l ON l.envelope_pk = e.id")).all()
        n_envelopes = c.execute(text("SELECT count(*) FROM intake_envelopes")).scalar()
        docs = dict(c.execute(text("SELECT envelope_pk, count(*) FROM intake_documents GROUP BY envelope_pk")).all())
        payees = dict(c.execute(text("SELECT d.envelope_pk, count(p.id) FROM intake_documents d "
                                     "LEFT JOIN intake_payees p ON p.document_pk = d.id GROUP BY d.envelope_pk")).all())
        events = Counter((r.envelope_id, r.event) for r in c.execute(text(
            "SELECT envelope_id, event FROM provenance_events WHERE event IN ('loaded', 'archived')")))
        duplicates = {r[0] for r in c.execute(text("SELECT tracking_id FROM provenance_events "
                                                   "WHERE event = 'duplicate'"))}
    engine.dispose()
    assert n_envelopes == len(rows), "an envelope row without its load record"
    loaded = {r.tracking_id: r for r in rows}
    assert len({r.sha256 for r in rows}) == len(rows)
    quarantined = {e["tracking_id"]: e for e in zone.quarantine_entries() if e["status"] == "open"}
    archived = {hashlib.sha256(p.read_bytes()).hexdigest() for p in zone.archived()}
    by_name = {i.name.removesuffix(".p7m"): i for i in items}

    outcome: Counter = Counter()
    for tid, item in by_name.items():
        states = [s for s, where in (("loaded", loaded), ("quarantined", quarantined), ("duplicate", duplicates))
                  if tid in where]
        # Exactly one fate per file: loaded, quarantined or dropped as a copy; never lost, never two.
        assert len(states) == 1, f"{item.name}: {states or 'lost'}"
        state = states[0]
        if state == "quarantined":
            reason = quarantined[tid]["reason"]
            allowed = {"bad": ("BAD_NATIONAL_ID", "VOUCHER_TOTAL_MISMATCH"), "replay": ("REPLAY",),
                       "good": ("REPLAY",), "copy": ()}[item.kind]
            assert reason in (*allowed, "POISON"), (item.name, reason)
            outcome[f"{item.kind}:{reason}"] += 1
        else:
            if state == "duplicate":
                # Dropped only because the same bytes are loaded under another name.
                assert item.sha256 in {r.sha256 for r in rows}, item.name
            else:
                assert item.kind != "bad" and loaded[tid].sha256 == item.sha256, item.name
            outcome[f"{item.kind}:{state}"] += 1
    for row in rows:
        item = by_name[row.tracking_id]
        # Whole, never half: every document and payee, both marks, the original archived.
        assert docs.get(row.id, 0) == row.document_count == item.documents, item.name
        assert payees.get(row.id, 0) == item.payees, item.name
        assert events[(row.envelope_id, "loaded")] == 1 and events[(row.envelope_id, "archived")] == 1, item.name
        assert row.archived_at is not None and row.sha256 in archived and Path(row.archive_path).exists(), item.name
    assert len(zone.archived()) == len(rows)
    # A replay and its original share an envelope id: at most one of them is loaded.
    assert max(Counter(row.envelope_id for row in rows).values()) == 1
    assert not list(zone.inbound.glob("*.p7m")) and not list((zone.inbound / ".claimed").iterdir())
    return outcome


def _run(zone: Zone, items, tmp_path, seed):
    kills = torture(zone, items, tmp_path, seed)
    outcome = check(zone, items)
    print(f"{kills} kills: {dict(sorted(outcome.items()))}")
    # The kills must not have turned the whole run into poison: most envelopes load.
    assert outcome["good:loaded"] + outcome["copy:loaded"] + outcome["copy:duplicate"] >= GOOD * 0.9, outcome
    assert outcome["bad:BAD_NATIONAL_ID"] + outcome["bad:VOUCHER_TOTAL_MISMATCH"] + outcome["bad:POISON"] == BAD


def test_kill9_many_rounds_sqlite(tmp_path, demo_pki, items):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 5})
    _run(zone, items, tmp_path, seed=1)


@pytest.mark.postgres
def test_kill9_many_rounds_postgresql(tmp_path, demo_pki, items, pg_url):
    zone = make_zone(tmp_path / "zone", demo_pki, db_url=pg_url, inner={"max_tries": 5})
    _run(zone, items, tmp_path, seed=2)
