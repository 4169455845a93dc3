"""One daemon per state folder: an flock on a file there, held for the process's life.

Two senders on one state would reuse sequence numbers; two inner runners on one spool would
put back each other's claimed files at start-up. The kernel drops the lock when the process
dies, so a `kill -9` never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another live process holds the lock."""


class InstanceLock:
    def __init__(self, path: Path, *, holder: str = "process") -> None:
        self.path = Path(path)
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"another {self.holder} holds {self.path} (already running?)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
