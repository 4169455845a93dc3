"""The inner runner feeds systemd's watchdog between envelopes, not only between passes: a
pass is up to 50 envelopes, and big ones take a minute each."""

from __future__ import annotations

import socket

from tgw_common.config import load_config

from .ikit import envelope

A = "A10001"


def test_watchdog_is_fed_between_envelopes_of_one_pass(zone, fkit, tmp_path, monkeypatch):
    from inner_zone.runner import BATCH, InnerRunner

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))

    def received() -> list[str]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096).decode())
            except BlockingIOError:
                return out

    class Observed(InnerRunner):
        """The real runner, noting what reached the socket while each envelope was handled."""

        def __init__(self, config) -> None:
            super().__init__(config)
            self.per_item: list[list[str]] = []

        def _handle(self, claimed):
            before = received()
            ok = super()._handle(claimed)
            self.per_item.append(before + received())
            return ok

    count = 5
    assert count < BATCH  # all of them in one pass
    for n in range(count):
        zone.drop(f"D{n:04d}.p7m", envelope(fkit, A, number=400 + n))
    runner = Observed(load_config(zone.config))
    # Envelopes this small take milliseconds; without the rate limit every one must ping.
    runner.watchdog_seconds = 0
    runner.run(until_idle=True)
    sock.close()

    assert runner.counts["loaded"] == count
    assert len(runner.per_item) == count
    # One WATCHDOG=1 just before each envelope: between envelopes, not once for the pass.
    assert [msgs.count("WATCHDOG=1") for msgs in runner.per_item] == [1] * count, runner.per_item
