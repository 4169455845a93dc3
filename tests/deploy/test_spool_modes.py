"""File modes across the daemons' users: what the group-shared spools rely on.

On the inner host the receiver (user tgw-recv) publishes into inbound/ and the runner
(user tgw-inner, same group tgw-inbound) must read what it published. The unit gives the
receiver UMask=0027, so a published file must be group-readable. Run here with real
daemons over UDP on 127.0.0.1, the receiver under umask 0027 as in its unit.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.notifysock import NotifySocket

TGW = str(Path(sys.executable).with_name("tgw"))


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_published_inbound_file_is_group_readable(tmp_path):
    port = _port()
    spool = tmp_path / "spool"
    (spool / "outbound").mkdir(parents=True)
    send = tmp_path / "send.yaml"
    send.write_text(yaml.safe_dump({
        "node": {"zone": "outer"}, "database": {"url": f"sqlite:///{tmp_path / 'outer.db'}"},
        "transfer_send": {"outbound": str(spool / "outbound"), "sent_dir": str(spool / "sent"),
                          "state_dir": str(spool / "send-state"), "target": f"127.0.0.1:{port}",
                          "repeat": 2, "repeat_spacing_seconds": 1}}))
    recv = tmp_path / "recv.yaml"
    recv.write_text(yaml.safe_dump({
        "node": {"zone": "inner"}, "database": {"url": f"sqlite:///{tmp_path / 'inner.db'}"},
        "transfer_receive": {"listen": f"127.0.0.1:{port}", "inbound": str(spool / "inbound"),
                             "staging_dir": str(spool / "staging"), "state_dir": str(spool / "recv-state"),
                             "socket_buffer_bytes": 1048576}}))

    def umask_0027() -> None:
        os.umask(0o027)

    # The sender starts only once the receiver is READY=1 (its socket bound), as
    # After=/Type=notify would order them: a first copy sent earlier would be lost.
    notify = NotifySocket(tmp_path / "notify.sock")
    procs = []
    try:
        for verb, config in (("receive", recv), ("send", send)):
            log = (tmp_path / f"{verb}.log").open("wb")
            env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
            procs.append(subprocess.Popen([TGW, "transfer", verb, "--config", str(config)], stdout=log, env=env,
                                          stderr=subprocess.STDOUT, preexec_fn=umask_0027))
            notify.wait_for(procs[-1], "READY=1")
        (spool / "outbound" / "TPE0001.p7m").write_bytes(os.urandom(5000))
        published = spool / "inbound" / "TPE0001.p7m"
        deadline = time.monotonic() + 60
        while not published.exists():
            if not all(p.poll() is None for p in procs):
                pytest.fail("a daemon died: " + (tmp_path / "receive.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                pytest.fail("the file never arrived")
            time.sleep(0.1)
        mode = stat.S_IMODE(published.stat().st_mode)
    finally:
        notify.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    assert mode & 0o040, f"published with mode {mode:o}: the runner's group cannot read it"
    assert not mode & 0o007, f"published with mode {mode:o}: others must get nothing"
