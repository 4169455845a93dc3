"""A stand-in for systemd's notify socket ($NOTIFY_SOCKET) that records who sent what.

With SO_PASSCRED the kernel stamps every datagram with the sender's PID, which is what
systemd checks for NotifyAccess=main.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[int, str]] = []  # (sender pid, message)

    def receive(self, timeout: float) -> tuple[int, str] | None:
        self.sock.settimeout(timeout)
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", payload[:12])
        message = (pid, data.decode())
        self.messages.append(message)
        return message

    def wait_for(self, proc: subprocess.Popen, wanted: str, timeout: float = 60) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"daemon exited with {proc.returncode} before {wanted}"
            got = self.receive(0.5)
            if got and wanted in got[1].splitlines():
                return got
        pytest.fail(f"no {wanted} within {timeout} s; got {self.messages}")

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive(0.2)

    def take_queued(self) -> None:
        """What the daemon sent before it exited (already in the socket's queue)."""
        while self.receive(0.05) is not None:
            pass

    def close(self) -> None:
        self.sock.close()
