"""The shared pieces every hop stands on: spools, provenance events, the runner loop."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import zmq

from tgw_common.db import make_engine, transaction
from tgw_common.events import Provenance
from tgw_common.runner import Runner
from tgw_common.spool import SpoolQueue, write_atomic


def test_spool_claim_finish_and_fifo(tmp_path):
    q = SpoolQueue(tmp_path / "q")
    for name in ("0002.p7m", "0001.p7m", "0003.p7m"):
        q.enqueue_bytes(name, name.encode())
    assert q.ready() == ["0001.p7m", "0002.p7m", "0003.p7m"]
    claimed = q.claim("0001.p7m")
    assert claimed.tries == 1 and claimed.path.read_bytes() == b"0001.p7m"
    assert q.claim("0001.p7m") is None  # a second worker loses the race cleanly
    q.finish(claimed)
    assert q.ready() == ["0002.p7m", "0003.p7m"] and not any(q.claimed.iterdir())


def test_spool_recover_counts_tries_then_hands_back_poison(tmp_path):
    q = SpoolQueue(tmp_path / "q", max_tries=2)
    q.enqueue_bytes("a.p7m", b"x")
    for expected_back in (["a.p7m"], []):
        claimed = q.claim("a.p7m")
        assert claimed is not None
        # The worker dies here (kill -9): the file stays claimed until the next start.
        back, exhausted = SpoolQueue(tmp_path / "q", max_tries=2).recover()
        assert back == expected_back
    assert [c.name for c in exhausted] == ["a.p7m"] and exhausted[0].tries == 2
    dest = q.set_aside(exhausted[0])
    assert dest.parent == q.bad and dest.read_bytes() == b"x"


def test_spool_leftover_tmp_is_removed_and_never_seen(tmp_path):
    q = SpoolQueue(tmp_path / "q")
    (q.tmp / ".half.p7m.123.tmp").write_bytes(b"half")
    assert q.ready() == []
    q.recover()
    assert not any(q.tmp.iterdir())


def test_spool_refuses_path_names(tmp_path):
    q = SpoolQueue(tmp_path / "q")
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            q.enqueue_bytes(bad, b"")


def test_write_atomic_never_leaves_partial(tmp_path):
    def chunks():
        yield b"abc"
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "out.bin", chunks())
    assert not (tmp_path / "out.bin").exists()


def test_events_are_stored_and_published_after_commit(tmp_path):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    engine = make_engine(f"sqlite:///{tmp_path / 'ev.db'}")
    prov = Provenance(engine, zone="inner", host="h1", publish=f"tcp://127.0.0.1:{port}")
    try:
        time.sleep(0.3)  # PUB/SUB joining: messages before the connection are dropped by design
        with transaction(engine) as session:
            prov.record("loaded", "inner-runner", sha256="a" * 64, envelope_id="E1", session=session, documents=3)
            assert sub.poll(200) == 0  # not before the commit
        assert sub.poll(3000)
        topic, body = sub.recv_multipart()
        event = json.loads(body)
        assert topic == b"event" and event["event"] == "loaded" and event["detail"] == {"documents": 3}
        prov.heartbeat("inner-runner", session_id="s1", started_at=event_time(), queue_depth=4)
        assert sub.poll(3000)
        topic, body = sub.recv_multipart()
        assert topic == b"heartbeat" and json.loads(body)["state"]["queue_depth"] == 4
        assert [e["event"] for e in prov.history(envelope_id="E1")] == ["loaded"]
        assert prov.daemons()[0]["daemon"] == "inner-runner"
        with pytest.raises(ValueError):
            prov.record("teleported", "inner-runner")
    finally:
        prov.close()
        sub.close()


def test_event_rolled_back_with_the_work(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ev.db'}")
    prov = Provenance(engine, zone="inner", host="h1")
    with pytest.raises(RuntimeError), transaction(engine) as session:
        prov.record("loaded", "inner-runner", envelope_id="E2", session=session)
        raise RuntimeError("load failed")
    assert prov.history(envelope_id="E2") == []


def event_time():
    from tgw_common.db import utcnow

    return utcnow()


class CountingRunner(Runner):
    name = "counting"
    heartbeat_seconds = 0.0

    def __init__(self, provenance, items):
        super().__init__(provenance)
        self.items = items
        self.done = []
        self.started = False

    def startup(self):
        self.started = True

    def one_iteration(self):
        if not self.items:
            return 0
        self.done.append(self.items.pop(0))
        return 1

    def health(self):
        return {"queue_depth": len(self.items)}


def test_runner_until_idle_and_heartbeat(tmp_path):
    prov = Provenance(make_engine(f"sqlite:///{tmp_path / 'r.db'}"), zone="inner", host="h")
    runner = CountingRunner(prov, [1, 2, 3])
    runner.run(until_idle=True)
    assert runner.started and runner.done == [1, 2, 3]
    beat = prov.daemons()[0]
    assert beat["daemon"] == "counting" and beat["session"] == runner.session_id
    assert beat["state"]["pid"] == os.getpid()


def test_runner_stops_promptly_when_asked(tmp_path):
    runner = CountingRunner(None, [])
    runner.idle_sleep_seconds = 30
    thread = threading.Thread(target=runner.run)
    thread.start()
    time.sleep(0.2)
    runner.stop()
    thread.join(5)
    assert not thread.is_alive()
