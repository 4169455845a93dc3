"""Quarantine actions with their provenance events, on a whole inner zone (`Inner`).

The same from the CLI, the console and the runner, so an envelope's timeline reads alike
whoever acted. `quarantine.Quarantine` keeps the files; this module also records what was
done. `hop` is the inner runner's name (intake.HOP), given by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tgw_common.db import transaction

from .context import Inner
from .fileops import tracking_id
from .quarantine import OPEN


def retry_entry(inner: Inner, qid: str, *, note: str | None, by: str, hop: str) -> dict[str, Any]:
    """Put an entry back into the inbound spool and record `retried`; QuarantineError if it cannot be."""
    entry = inner.quarantine.retry(qid, inner.inbound, note=note, by=by)
    inner.provenance.record("retried", hop, sha256=entry["sha256"], tracking_id=entry["tracking_id"],
                            envelope_id=entry.get("envelope_id"), quarantine_id=qid, by=by, note=note)
    return entry


def reject_entry(inner: Inner, qid: str, *, note: str, by: str, hop: str) -> dict[str, Any]:
    """Close an entry for good and record `rejected`; QuarantineError if it cannot be."""
    entry = inner.quarantine.reject(qid, note=note, by=by)
    inner.provenance.record("rejected", hop, sha256=entry["sha256"], tracking_id=entry["tracking_id"],
                            envelope_id=entry.get("envelope_id"), reason=entry.get("reason"), quarantine_id=qid,
                            by=by, note=note)
    return entry


def quarantine_unreadable(inner: Inner, src: Path, *, name: str, tries: int, problem: str, hop: str,
                          claimed_at: datetime, set_aside: Callable[[], Path]) -> dict[str, Any]:
    """File a claimed spool entry the pipeline cannot read (`problem` says why) as POISON.

    The events are those of any refusal (claimed, refused, quarantined), under the file's
    tracking id; there is no SHA-256, since nothing could be read to compute it.
    """
    tid = tracking_id(name)
    message = f"{problem}; it cannot be read as an envelope"
    qid = inner.quarantine.choose_id(tid, None)
    with transaction(inner.engine) as s:
        inner.provenance.record("claimed", hop, session=s, at=claimed_at, tracking_id=tid, file=name, tries=tries)
        inner.provenance.record("refused", hop, session=s, tracking_id=tid, reason="POISON", layer="intake",
                                message=message[:500], tries=tries)
        inner.provenance.record("quarantined", hop, session=s, tracking_id=tid, reason="POISON", quarantine_id=qid,
                                status=OPEN, held=False)
    return inner.quarantine.put_unreadable(src, name=name, tracking_id=tid, message=message, detail={"tries": tries},
                                           events=inner.provenance.history(tracking_id=tid),
                                           first_seen_at=claimed_at, tries=tries, set_aside=set_aside)
