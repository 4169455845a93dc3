"""tgw_common.runner.Runner and systemd's watchdog, over a real NOTIFY_SOCKET: a pass of many
slow items must keep sending WATCHDOG=1, and no more often than `watchdog_seconds`."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

from tgw_common.runner import Runner

ITEM_SECONDS = 0.25


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; each message is kept with the time it
    arrived (a thread reads them as they come)."""

    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._done.set()
        self._reader.join(5)
        self.sock.close()

    def watchdogs(self) -> list[float]:
        return [at for at, msg in self.messages if msg == "WATCHDOG=1"]


@pytest.fixture
def notify(tmp_path, monkeypatch):
    sock = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


class SlowItems(Runner):
    """One pass over `count` items of ITEM_SECONDS each, noting when each item started."""

    name = "test-runner"

    def __init__(self, count: int) -> None:
        super().__init__(None)
        self.todo = count
        self.started: list[float] = []

    def one_iteration(self) -> int:
        done = 0
        while self.todo:
            self.keep_alive()
            self.started.append(time.monotonic())
            time.sleep(ITEM_SECONDS)
            self.todo -= 1
            done += 1
        return done


def test_a_long_pass_keeps_the_watchdog_fed_between_items(notify):
    runner = SlowItems(12)  # 3 s in one pass
    runner.run(until_idle=True)
    time.sleep(0.2)  # the reader thread takes the last datagrams
    assert notify.messages[0][1] == "READY=1" and notify.messages[-1][1] == "STOPPING=1"
    pings = notify.watchdogs()
    first, last = runner.started[0], runner.started[-1]
    during = [t for t in pings if first <= t < last]
    # Before this, WATCHDOG=1 went out only after the pass: none while the items ran.
    assert len(during) >= 2, (pings, runner.started)
    # Each came between two items (at the start of one), not in a burst at the end.
    assert all(any(abs(t - s) < 0.1 for s in runner.started) for t in during)
    # Rate-limited: at most one a second, however many items there are.
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert min(gaps) >= runner.watchdog_seconds - 0.1, gaps
    elapsed = notify.messages[-1][0] - notify.messages[0][0]
    # (with the same 0.1 s of scheduling slack the gaps are allowed: pings a whole second apart
    # over a 3.0 s pass measured as 2.999 s would otherwise fail it)
    assert len(pings) <= elapsed / (runner.watchdog_seconds - 0.1) + 1, (len(pings), elapsed)

