"""Small helpers both ends share: addresses, the single-instance lock, safe names."""

from __future__ import annotations

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


def disk_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
