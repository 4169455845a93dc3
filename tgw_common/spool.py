"""Handing files between processes through folders, crash-safe (Maildir's tmp -> new).

A file is written under `<queue>/.tmp`, flushed and made durable, renamed into the queue and
the folder made durable; readers see only finished names. Every producer hands a file over
with `publish()` (or `write_atomic()` for bytes in memory): nothing else in the project
renames a file into a folder another process reads, or calls fsync. A worker claims a file by renaming it into
`.claimed/`; at start-up `recover()` puts claimed files back and counts the try, and after
`max_tries` a file that keeps killing its worker is set aside in `.bad/`. All of a queue's
folders are on one filesystem, so every move is an atomic rename.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HIDDEN = (".", "~")


def sync_folders(*folders: Path) -> None:
    """Make the entries of each folder durable (a rename or unlink in it survives a power cut).

    The one place a caller that batches its moves (`publish(..., sync=False)`) makes them
    durable before it relies on them."""
    for folder in dict.fromkeys(folders):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_file(path: Path) -> None:
    """Make a finished file's bytes durable (before a database row comes to rely on them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def durable_file(path: Path, mode: str = "xb", *, private: bool = False) -> Iterator[BinaryIO]:
    """Open `path` for writing; on a clean exit its bytes are flushed and made durable.

    For producers that write a file in pieces and look at it before they publish it. A
    `private` file is created 0600, so a secret is never readable by others, not even briefly.
    """
    opener = _private_opener if private else None
    with open(path, mode, opener=opener) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def make_folders(path: Path) -> None:
    """mkdir -p, with each new folder's entry made durable in its parent (a new day's archive
    folder must survive a power cut as surely as the file published into it)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        sync_folders(folder.parent)


def write_atomic(dest: Path, data: bytes | Iterator[bytes], *, tmp_dir: Path | None = None,
                 private: bool = False) -> Path:
    """Write `data` to `dest` so that `dest` is either absent or complete, even after a crash."""
    tmp_dir = tmp_dir or dest.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".{dest.name}.{os.getpid()}.tmp"
    with durable_file(tmp, "wb", private=private) as fh:
        if isinstance(data, bytes | bytearray | memoryview):
            fh.write(data)
        else:
            for chunk in data:
                fh.write(chunk)
    os.replace(tmp, dest)
    sync_folders(dest.parent)
    return dest


def publish(src: Path, dest: Path, *, sync: bool = True, keep_source: bool = False) -> Path:
    """Put the finished file `src` at `dest`: the one way a file enters a spool or a folder
    another process reads.

    On one filesystem it is a rename, so `dest` is never seen half-written; with `sync` the
    file's bytes and both folders are made durable first and after. `sync=False` leaves the
    folders to the caller's `sync_folders()` (a runner batching many moves). Across
    filesystems (an archive on its own volume) the file is copied to a temporary name beside
    `dest`, made durable, renamed, and only then is `src` removed: a crash leaves at worst two
    identical copies, never none. `keep_source` always copies (an operator's own file).
    """
    make_folders(dest.parent)
    if not keep_source:
        try:
            if sync:
                _sync_if_regular(src)
            os.replace(src, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            if sync:
                sync_folders(dest.parent, src.parent)
            return dest
    _copy_across(src, dest)
    if not keep_source:
        src.unlink()
        sync_folders(src.parent)
    return dest


def _sync_if_regular(path: Path) -> None:
    """sync_file for whatever lies in a spool: a FIFO must not block the open, and a link or a
    file nobody may read (set aside as unreadable) has no bytes of ours to make durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    finally:
        os.close(fd)


def _copy_across(src: Path, dest: Path) -> None:
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
    with open(src, "rb") as s, durable_file(tmp, "wb") as d:
        shutil.copyfileobj(s, d, 1024 * 1024)
    os.replace(tmp, dest)
    sync_folders(dest.parent)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (files can be gigabytes: read in chunks)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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
        return publish(src, self.root / _safe_name(name or src.name))

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
        sync_folders(self.claimed)

    def release(self, claimed: Claimed) -> None:
        """Give a claimed file back to the queue (the work will be tried again)."""
        publish(claimed.path, self.root / claimed.name)

    def set_aside(self, claimed: Claimed) -> Path:
        """Move a claimed file to .bad/ (it has used up its tries, or cannot be read at all).

        An earlier file of the same name stays: this one gets a `.2`, `.3`, ... suffix.
        """
        dest, n = self.bad / claimed.name, 1
        while os.path.lexists(dest):
            n += 1
            dest = self.bad / f"{claimed.name}.{n}"
        publish(claimed.path, dest)
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
                publish(Path(entry.path), self.root / entry.name)
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
