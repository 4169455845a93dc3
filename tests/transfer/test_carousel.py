"""The sender's carousel: every file goes again at each offset of repeat_schedule_seconds,
so a receiver that was down for less than the last offset still gets every file."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tgw_common.config import TransferSendConfig
from tgw_common.db import make_engine, transaction
from transfer.models import SentFile
from transfer.sender_store import SenderStore, next_due

from .conftest import check_inbound, make_files, wait_until


def test_the_schedule_is_checked():
    assert TransferSendConfig().repeat_schedule_seconds == [0, 5, 60, 300]
    assert TransferSendConfig().window_seconds == 300
    for bad in ([], [5, 10], [0, 5, 5], [0, 10, 5], [0, -1], [float(i) for i in range(21)]):
        with pytest.raises(ValidationError):
            TransferSendConfig(repeat_schedule_seconds=bad)


def test_old_keys_become_an_equal_spaced_schedule_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = TransferSendConfig(repeat=3, repeat_spacing_seconds=10)
    assert cfg.repeat_schedule_seconds == [0, 10, 20]
    assert "repeat_spacing_seconds are deprecated" in caplog.text
    assert TransferSendConfig(repeat=1).repeat_schedule_seconds == [0]
    # Back to back once meant spacing 0; the offsets must increase, so 1 ms apart.
    assert TransferSendConfig(repeat=2, repeat_spacing_seconds=0).repeat_schedule_seconds == [0, 0.001]
    # The new key wins over the old ones.
    assert TransferSendConfig(repeat=5, repeat_schedule_seconds=[0, 7]).repeat_schedule_seconds == [0, 7]
    with pytest.raises(ValidationError):
        TransferSendConfig(repeat=21)
    with pytest.raises(ValidationError):
        TransferSendConfig(repeat=2, repeat_spacing_seconds=-1)


def test_due_times_come_from_the_first_copy_and_the_count(tmp_path):
    first = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = [0, 5, 60, 300]
    assert [next_due(first, n, schedule) for n in range(1, 5)] == [
        first + timedelta(seconds=5), first + timedelta(seconds=60), first + timedelta(seconds=300), None]
    # A sender restarted with another schedule moves what is still due onto it.
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    sent = tmp_path / "sent"
    sent.mkdir()
    store = SenderStore(engine, sent)
    for seq in (1, 2):
        path = sent / f"{seq:012d}-F{seq}.p7m"
        path.write_bytes(b"data")
        store.add(seq, path.name[13:], path)
    with transaction(engine) as s:
        for seq in (1, 2):
            row = s.get(SentFile, seq)
            row.copies_sent, row.first_sent_at, row.next_due_at = seq, first, first + timedelta(seconds=10)
    assert store.reschedule([0, 30, 90]) == 2
    with transaction(engine) as s:
        assert s.get(SentFile, 1).next_due_at == first + timedelta(seconds=30)
        assert s.get(SentFile, 2).next_due_at == first + timedelta(seconds=90)
    assert store.reschedule([0, 30]) == 1
    with transaction(engine) as s:
        assert s.get(SentFile, 2).next_due_at is None


def test_a_receiver_started_after_the_first_copies_still_gets_every_file(link):
    """Real sender and receiver over UDP: the receiver is down for the first two copies of
    every file; the third (20 s after the first) brings them all, the gaps the receiver
    opened on seeing the sender's ledger close by themselves, and the fourth is dropped as
    a duplicate. No resend, no operator."""
    rng = random.Random(17)
    files = make_files(rng, [rng.randrange(2_000, 300_000) for _ in range(25)])
    link.write_configs(send={"repeat_schedule_seconds": [0, 2, 20, 24], "target": f"127.0.0.1:{link.recv_port}"})
    link.sender()
    for name, data in files.items():
        link.publish(name, data)
    wait_until(lambda: link.all_sent_once(len(files), 2), 60, "two copies of every file, into the void")
    assert not link.inner_db.exists(), "no receiver has run yet"
    link.receiver()
    wait_until(lambda: link.inbound.exists() and {p.name for p in link.inbound.iterdir()} >= set(files), 90,
               "the third copies to bring every file")
    wait_until(lambda: link.all_sent_once(len(files), 4), 60, "the fourth copies")
    wait_until(lambda: not link.open_gaps(), 30, "every gap closed")
    check_inbound(link, files)
    gaps = dict(link.inner_rows("select closed_by, count(*) from transfer_gaps group by closed_by"))
    # The ledger in the sender's heartbeats told the new receiver what it had missed: gaps,
    # opened within a heartbeat of its start and closed by the carousel's third copy.
    assert gaps and set(gaps) == {"arrived"}, gaps
    # The fourth copy of a published file is dropped before it is even assembled.
    dup = link.inner_rows("select count(*) from provenance_events where event = 'duplicate'")[0][0]
    assert dup >= len(files)
    events = dict(link.outer_rows("select event, count(*) from provenance_events group by event"))
    assert events["sent"] == 4 * len(files) and "resent" not in events
