"""Small helpers both ends share: addresses, the single-instance lock, safe names."""

from __future__ import annotations

import fcntl
import os
import re
import socket
from pathlib import Path

# What a published name may look like: it becomes a file name in the inbound spool.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")


def parse_address(text: str) -> tuple[int, tuple]:
    """'HOST:PORT' or '[V6]:PORT' -> (address family, sockaddr); ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    try:
        port_no = int(port)
    except ValueError:
        raise ValueError(f"port is not a number in {text!r}") from None
    if not 0 <= port_no < 65536:
        raise ValueError(f"port out of range in {text!r}")
    try:
        info = socket.getaddrinfo(host, port_no, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr


class InstanceLock:
    """An flock on a file in the state folder: two senders on one state would reuse numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another process holds {self.path} (already running?)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def disk_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
