"""Handing files between processes through folders, crash-safe (Maildir's tmp -> new).

A file is written under `<queue>/.tmp`, flushed and fsynced, renamed into the queue and the
folder fsynced; readers see only finished names. A worker claims a file by renaming it into
`.claimed/`; at start-up `recover()` puts claimed files back and counts the try, and after
`max_tries` a file that keeps killing its worker is set aside in `.bad/`. All of a queue's
folders are on one filesystem, so every move is an atomic rename.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HIDDEN = (".", "~")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(dest: Path, data: bytes | Iterator[bytes], *, tmp_dir: Path | None = None) -> Path:
    """Write `data` to `dest` so that `dest` is either absent or complete, even after a crash."""
    tmp_dir = tmp_dir or dest.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".{dest.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        if isinstance(data, bytes | bytearray | memoryview):
            fh.write(data)
        else:
            for chunk in data:
                fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return dest


def move_durably(src: Path, dest: Path) -> Path:
    """Rename `src` to `dest` (same filesystem) and fsync both folders."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)
    return dest


def copy_durably(src: Path, dest: Path) -> Path:
    """Copy `src` to `dest` through a temporary name, so `dest` is never seen half-written."""
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s, open(tmp, "wb") as d:
        shutil.copyfileobj(s, d, 1024 * 1024)
        d.flush()
        os.fsync(d.fileno())
    return move_durably(tmp, dest)


@dataclass(frozen=True)
class Claimed:
    """A file this worker owns until it calls finish() or release()."""

    path: Path
    name: str
    tries: int


class SpoolQueue:
    """One queue folder: ready files at the top, .tmp/.claimed/.bad/.tries beside them."""

    def __init__(self, root: Path, *, max_tries: int = 3) -> None:
        self.root = Path(root)
        self.max_tries = max_tries
        self.tmp = self.root / ".tmp"
        self.claimed = self.root / ".claimed"
        self.bad = self.root / ".bad"
        self.tries_dir = self.root / ".tries"
        for d in (self.root, self.tmp, self.claimed, self.bad, self.tries_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --- producers
    def enqueue_bytes(self, name: str, data: bytes) -> Path:
        return write_atomic(self.root / _safe_name(name), data, tmp_dir=self.tmp)

    def enqueue_file(self, src: Path, name: str | None = None) -> Path:
        """Move a finished file (on the same filesystem) into the queue."""
        return move_durably(src, self.root / _safe_name(name or src.name))

    # --- consumers
    def ready(self) -> list[str]:
        """Finished files in FIFO order (names start with a sortable time or sequence)."""
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_file() and not e.name.startswith(HIDDEN)]
        except FileNotFoundError:
            return []
        return sorted(names)

    def depth(self) -> int:
        return len(self.ready())

    def oldest_age(self, now: float) -> float | None:
        ages = []
        for name in self.ready()[:1]:
            try:
                ages.append(now - (self.root / name).lstat().st_mtime)
            except OSError:
                continue
        return max(ages) if ages else None

    def claim(self, name: str) -> Claimed | None:
        """Take a ready file by rename; None if another worker was faster."""
        tries = self._tries(name) + 1
        self._set_tries(name, tries)
        try:
            os.rename(self.root / name, self.claimed / name)
        except FileNotFoundError:
            return None
        return Claimed(self.claimed / name, name, tries)

    def finish(self, claimed: Claimed) -> None:
        """The work on a claimed file is durable elsewhere: forget the file."""
        claimed.path.unlink(missing_ok=True)
        (self.tries_dir / claimed.name).unlink(missing_ok=True)
        fsync_dir(self.claimed)

    def release(self, claimed: Claimed) -> None:
        """Give a claimed file back to the queue (the work will be tried again)."""
        move_durably(claimed.path, self.root / claimed.name)

    def set_aside(self, claimed: Claimed) -> Path:
        """Move a claimed file to .bad/ (it has used up its tries, or cannot be read at all).

        An earlier file of the same name stays: this one gets a `.2`, `.3`, ... suffix.
        """
        dest, n = self.bad / claimed.name, 1
        while os.path.lexists(dest):
            n += 1
            dest = self.bad / f"{claimed.name}.{n}"
        move_durably(claimed.path, dest)
        (self.tries_dir / claimed.name).unlink(missing_ok=True)
        return dest

    def recover(self) -> tuple[list[str], list[Claimed]]:
        """At start-up: put claimed files back, or hand back those out of tries.

        Returns the names put back and the claims that used up their tries; the caller
        decides where those go (quarantine), since only it knows what the file is.
        """
        back: list[str] = []
        exhausted: list[Claimed] = []
        for entry in sorted(os.scandir(self.claimed), key=lambda e: e.name):
            tries = self._tries(entry.name)
            if tries >= self.max_tries:
                exhausted.append(Claimed(Path(entry.path), entry.name, tries))
            else:
                move_durably(Path(entry.path), self.root / entry.name)
                back.append(entry.name)
        for entry in os.scandir(self.tmp):
            # A .tmp file is a write that never finished: its producer will write it again.
            Path(entry.path).unlink(missing_ok=True)
        return back, exhausted

    def _tries(self, name: str) -> int:
        try:
            return int((self.tries_dir / name).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _set_tries(self, name: str, tries: int) -> None:
        write_atomic(self.tries_dir / name, str(tries).encode(), tmp_dir=self.tmp)


def _safe_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith(HIDDEN) or name in (".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")
    return name
