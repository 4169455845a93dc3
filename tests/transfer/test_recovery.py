"""Crash recovery of each end, without the network: numbering and publication."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tgw_common.db import make_engine, transaction
from tgw_common.events import Provenance
from transfer.keeper import Keeper
from transfer.models import ReceivedFile, SentFile
from transfer.sender_store import SenderStore


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path}/t.db")


def test_a_numbered_file_without_a_row_is_adopted_and_its_number_never_reused(tmp_path, engine):
    sent = tmp_path / "sent"
    store = SenderStore(engine, sent)
    sent.mkdir()
    for seq in (1, 2, 3):
        (sent / f"{seq:012d}-F{seq}.p7m").write_bytes(b"x" * seq)
        store.add(seq, f"F{seq}.p7m", sent / f"{seq:012d}-F{seq}.p7m")
    # kill -9 between the rename into sent_dir and the row: the number is in the name only
    (sent / "000000000004-F4.p7m").write_bytes(b"four")
    # a row whose file an operator deleted
    (sent / "000000000002-F2.p7m").unlink()
    next_seq, adopted, removed = SenderStore(engine, sent).recover()
    assert (next_seq, adopted, removed) == (5, [4], [2])
    with transaction(engine) as s:
        row = s.get(SentFile, 4)
        assert (row.name, row.size, row.copies_sent) == ("F4.p7m", 4, 0)
    # Retention may delete every file: the numbers stay taken (rows are never deleted).
    for p in sent.iterdir():
        p.unlink()
    assert SenderStore(engine, sent).recover()[0] == 5


def test_next_job_order_first_copies_then_resends_then_repeats(tmp_path, engine):
    from datetime import timedelta

    from tgw_common.db import utcnow

    sent = tmp_path / "sent"
    sent.mkdir()
    store = SenderStore(engine, sent)
    for seq in (1, 2, 3):
        path = sent / f"{seq:012d}-F{seq}.p7m"
        path.write_bytes(b"data")
        store.add(seq, path.name[13:], path)
    now = utcnow()
    with transaction(engine) as s:
        s.get(SentFile, 1).copies_sent, s.get(SentFile, 1).next_due_at = 1, now - timedelta(seconds=1)
        s.get(SentFile, 2).copies_sent, s.get(SentFile, 2).next_due_at = 1, None
        s.get(SentFile, 2).resend_pending, s.get(SentFile, 2).resend_requested_at = 1, now
    job = store.next_job(now)
    assert (job.seq, job.resend, job.copy) == (3, False, 1)
    with transaction(engine) as s:
        s.get(SentFile, 3).copies_sent, s.get(SentFile, 3).next_due_at = 1, now + timedelta(seconds=60)
    job = store.next_job(now)
    assert (job.seq, job.resend, job.copy) == (2, True, 2)
    with transaction(engine) as s:
        s.get(SentFile, 2).resend_pending = 0
    assert store.next_job(now).seq == 1
    with transaction(engine) as s:
        s.get(SentFile, 1).next_due_at = None
    assert store.next_job(now) is None


def _keeper(tmp_path: Path, engine) -> Keeper:
    for d in ("inbound", "staging"):
        (tmp_path / d).mkdir(exist_ok=True)
    prov = Provenance(engine, zone="inner", host="t")
    return Keeper(engine, prov, inbound=tmp_path / "inbound", staging=tmp_path / "staging")


def _publishing_row(engine, tmp_path, seq: int) -> None:
    from tgw_common.db import utcnow

    with transaction(engine) as s:
        s.add(ReceivedFile(seq=seq, session="aa", name=f"F{seq}.p7m", size=4, sha256="0" * 64, status="publishing",
                           staging=str(tmp_path / "staging" / f"aa-{seq}.part"),
                           path=str(tmp_path / "inbound" / f"F{seq}.p7m"), at=utcnow()))


def test_interrupted_publications_are_finished_once(tmp_path, engine):
    keeper = _keeper(tmp_path, engine)
    # seq 1: killed after the intent row, before the rename
    (tmp_path / "staging" / "aa-1.part").write_bytes(b"one!")
    _publishing_row(engine, tmp_path, 1)
    # seq 2: killed after the rename, before the row said so
    (tmp_path / "inbound" / "F2.p7m").write_bytes(b"two!")
    _publishing_row(engine, tmp_path, 2)
    # a half-received file of the dead process
    (tmp_path / "staging" / "bb-9.part").write_bytes(b"half")
    (tmp_path / "staging" / "bb-9.fec").write_bytes(b"half")
    assert keeper.recover() == {"publications_finished": 2, "staging_removed": 2}
    assert sorted(p.name for p in (tmp_path / "inbound").iterdir()) == ["F1.p7m", "F2.p7m"]
    assert (tmp_path / "inbound" / "F1.p7m").read_bytes() == b"one!"
    assert not list((tmp_path / "staging").iterdir())
    with transaction(engine) as s:
        assert set(s.scalars(select(ReceivedFile.status))) == {"published"}
    arrived = keeper.provenance.recent(10, event="arrived")
    assert sorted(e["detail"]["seq"] for e in arrived) == [1, 2]
    assert keeper.recover() == {"publications_finished": 0, "staging_removed": 0}
