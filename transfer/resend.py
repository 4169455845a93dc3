"""Operator resends: which files, queued for the running sender, and waiting for them.

The resend command does not open a socket of its own: the sender daemon owns the link
and its rate budget, so a resend is a request written to the sender's table
(`resend_pending`), which the daemon serves before scheduled repeats. The command then
follows the daemon's progress.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, or_, select

from tgw_common.db import transaction, utcnow
from tgw_common.events import DaemonStatusRow

from .models import SentFile

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_RANGE = 1_000_000


def parse_seq_ranges(text: str) -> list[int]:
    """'5', '5-9', '5-9,12' -> sorted numbers; ValueError naming the bad part."""
    seqs: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"not a sequence number or range A-B: {part!r}")
        first = int(m.group(1))
        last = int(m.group(2) or first)
        if last < first:
            raise ValueError(f"range runs backwards: {part!r}")
        if last - first >= MAX_RANGE:
            raise ValueError(f"range too long (more than {MAX_RANGE:,} numbers): {part!r}")
        seqs.update(range(first, last + 1))
    return sorted(seqs)


def parse_gaps_listing(text: str) -> list[int]:
    """The sequence numbers in the output of `tgw transfer gaps` (plain or --json)."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"looks like JSON but is not: {exc}") from None
        items = data.get("gaps", []) if isinstance(data, dict) else data
        try:
            return sorted({int(item["seq"]) for item in items})
        except (TypeError, KeyError, ValueError):
            raise ValueError("JSON gap list without a 'seq' in every entry") from None
    seqs: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.split()[0]
        try:
            seqs.update(parse_seq_ranges(token))
        except ValueError:
            raise ValueError(f"line {lineno}: does not start with a sequence number: {line[:60]!r}") from None
    return sorted(seqs)


@dataclass
class Request:
    queued: dict[int, int] = field(default_factory=dict)  # seq -> resends_done before the request
    copies: int = 1
    names: dict[int, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def queue_resends(engine: Engine, seqs: list[int], ids: list[str], *, copies: int = 1) -> Request:
    """Ask for `copies` more copies of each file; a poor link may need more than one, and
    the receiver combines the shares of all copies of one sender session."""
    req = Request(copies=copies)
    now = utcnow()
    with transaction(engine) as s:
        rows: dict[int, SentFile] = {}
        for seq in seqs:
            row = s.get(SentFile, seq)
            if row is None:
                req.unknown.append(str(seq))
            else:
                rows[seq] = row
        for tid in ids:
            found = s.scalars(select(SentFile).where(or_(SentFile.name == tid, SentFile.name.like(f"{tid}.%")))).all()
            found = [r for r in found if r.tracking_id == tid or r.name == tid]
            if not found:
                req.unknown.append(tid)
            for row in found:
                rows[row.seq] = row
        for seq, row in sorted(rows.items()):
            if row.removed_at is not None:
                req.removed.append(seq)
                continue
            req.queued[seq] = row.resends_done
            req.names[seq] = row.name
            row.resend_pending += copies
            row.resend_requested_at = now
    return req


def sender_alive(engine: Engine, heartbeat_seconds: float) -> bool:
    with transaction(engine) as s:
        row = s.get(DaemonStatusRow, "transfer-send")
        if row is None:
            return False
        return utcnow() - row.at < timedelta(seconds=max(3 * heartbeat_seconds, 10))


def progress(engine: Engine, req: Request) -> int:
    """How many of the requested resends the sender has completed."""
    with transaction(engine) as s:
        rows = s.execute(select(SentFile.seq, SentFile.resends_done, SentFile.removed_at)
                         .where(SentFile.seq.in_(list(req.queued)))).all()
    return sum(min(done - req.queued[seq], req.copies) if removed is None else req.copies
               for seq, done, removed in rows)


def wait(engine: Engine, req: Request, *, timeout: float, show: bool) -> bool:
    """Follow the sender until every requested file went out again; False on timeout."""
    from tqdm import tqdm

    total = len(req.queued) * req.copies
    deadline = time.monotonic() + timeout
    with tqdm(total=total, unit="copy", desc="重送 resend", disable=not show, leave=True) as bar:
        done = 0
        while done < total:
            now_done = progress(engine, req)
            bar.update(now_done - done)
            done = now_done
            if done >= total:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
    return True
