"""What the inner zone adds to tgw_common.spool when it files an envelope: names.

The archive and the quarantine name a file after its content (tracking id and SHA-256, or
the entry's ID), so placing it there is idempotent: a second try after a crash finds the
work done. The moves themselves are the spool's `publish` (same-filesystem rename, made
durable, with the cross-filesystem copy fallback).
"""

from __future__ import annotations

from pathlib import Path

from tgw_common.spool import publish, sync_folders


def place_file(src: Path, dest: Path, *, keep_source: bool, sync: bool = True) -> Path:
    """Put `src` at `dest` idempotently: a second call after a crash finds the work done.

    `dest` is named after the content's hash by the callers, so an existing `dest` holds
    the same bytes and the source copy is redundant. With keep_source the source (an
    operator's own file given to `tgw inner process`) is copied, never moved. With
    sync=False a same-filesystem move is a bare rename and the caller makes both folders
    durable before it relies on the move (the runner does so once per batch).
    """
    if dest.exists():
        if not keep_source and src.exists():
            src.unlink()
            if sync:
                sync_folders(src.parent)
        return dest
    return publish(src, dest, sync=sync, keep_source=keep_source)


def tracking_id(name: str) -> str:
    """The transfer receiver publishes `<tracking_id>.p7m`: the tracking id is the stem
    (at most 64 characters, the width of the provenance events' tracking_id column)."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem[:64]
