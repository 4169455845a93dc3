"""Moving envelope files between the inner zone's folders without ever losing one.

The spools, the quarantine and the archive should share one filesystem (a rename is then
atomic), but an archive on its own volume is common; across filesystems the file is
copied durably first and the source removed only after that, so a crash leaves at worst
two identical copies, never none.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from tgw_common.spool import copy_durably, fsync_dir, move_durably


def move_file(src: Path, dest: Path) -> Path:
    try:
        return move_durably(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    copy_durably(src, dest)
    src.unlink()
    fsync_dir(src.parent)
    return dest


def ensure_dir(path: Path) -> None:
    """mkdir -p, with each new folder's entry fsynced in its parent (a new day's archive folder
    must survive a power cut as surely as the file renamed into it)."""
    if path.is_dir():
        return
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def place_file(src: Path, dest: Path, *, keep_source: bool, sync: bool = True) -> Path:
    """Put `src` at `dest` idempotently: a second call after a crash finds the work done.

    `dest` is named after the content's hash by the callers, so an existing `dest` holds
    the same bytes and the source copy is redundant. With keep_source the source (an
    operator's own file given to `tgw inner process`) is copied, never moved. With
    sync=False a same-filesystem move is a bare rename and the caller fsyncs both folders
    before it relies on the move (the runner does so once per batch).
    """
    ensure_dir(dest.parent)
    if dest.exists():
        if not keep_source and src.exists():
            src.unlink()
            if sync:
                fsync_dir(src.parent)
        return dest
    if keep_source:
        return copy_durably(src, dest)
    if not sync:
        try:
            os.replace(src, dest)
            return dest
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    return move_file(src, dest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def tracking_id(name: str) -> str:
    """The transfer receiver publishes `<tracking_id>.p7m`: the tracking id is the stem
    (at most 64 characters, the width of the provenance events' tracking_id column)."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem[:64]
