"""Taking one upload in: stream to disk, check the release layer, refuse replays, publish.

The order is what makes it safe:

1. The caller has authenticated the uploader; nothing of the body was read before that.
2. The body is streamed into `upload_tmp/<random>.part` with a size limit while hashing,
   then made durable. Only now is it parsed, and only the release layer (no key exists here).
3. Accepted: renamed to `upload_tmp/<tracking_id>.p7m`; then ONE transaction records the
   upload, the replay guard (primary key = release digest) and the "received" event.
4. The file is renamed into the transfer's outbound spool and "spooled" is recorded.

A crash between 3 and 4 leaves an accepted upload whose file waits in upload_tmp; the
recovery sweep (at start-up and periodically) finishes the move, so nothing accepted is
lost and nothing is sent twice. A crash before 3 leaves only temporary files, which the
sweep deletes; the agency never got a 202 and uploads again.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from tgw_common.config import OuterConfig
from tgw_common.db import transaction, utcnow
from tgw_common.events import Provenance
from tgw_common.reasons import Layer, Refusal
from tgw_common.spool import HIDDEN, durable_file, publish
from tgw_common.tpe.opener import EnvelopeOpener

from . import audit
from .diskguard import check_room
from .models import ReleaseSeen, Upload

log = logging.getLogger(__name__)

HOP = "outer-web"
CHUNK = 1024 * 1024
PART_SUFFIX = ".part"
READY_SUFFIX = ".p7m"
# A .part file not written to for this long belongs to an upload that died.
STALE_PART = timedelta(minutes=10)
# An accepted upload not spooled after this long was interrupted between commit and rename.
STALE_ACCEPTED = timedelta(minutes=2)


@dataclass(frozen=True)
class Uploader:
    user_id: int | None
    username: str
    agency: str
    ip: str
    via: str  # "api" | "web"


def new_tracking_id(agency: str, now: datetime) -> str:
    """Sortable by time (the sender's spool is FIFO by name), unique, safe as a file name."""
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond:06d}Z-{agency}-{secrets.token_hex(3)}"


def _refuse(code: str, message: str) -> Refusal:
    return Refusal(code, Layer.UPLOAD, message)


def outbound_depth(outbound: Path) -> int:
    try:
        return sum(1 for e in os.scandir(outbound) if e.is_file() and not e.name.startswith(HIDDEN))
    except FileNotFoundError:
        return 0


class UploadIntake:
    def __init__(self, engine: Engine, cfg: OuterConfig, provenance: Provenance,
                 opener: Callable[[], EnvelopeOpener]) -> None:
        self.engine = engine
        self.cfg = cfg
        self.provenance = provenance
        self.opener = opener
        for folder in (cfg.upload_tmp, cfg.outbound):
            folder.mkdir(parents=True, exist_ok=True)

    # --- the one entry point
    def receive(self, stream: BinaryIO, *, content_length: int | None, who: Uploader) -> dict[str, Any]:
        """Accept the envelope in `stream` (answer for the 202) or raise a Refusal (recorded)."""
        now = utcnow()
        tracking_id = new_tracking_id(who.agency, now)
        part: Path | None = None
        sha256 = size = None
        try:
            check_room(self.cfg, content_length or 0)
            if content_length is not None and content_length > self.cfg.max_upload_bytes:
                raise self._too_large(content_length)
            if content_length == 0:
                raise _refuse("EMPTY_UPLOAD", "上傳內容為空 / the request carried no envelope")
            part, size, sha256 = self._stream_to_disk(stream)
            data = part.read_bytes()
            release = self.opener().check_release(data, agency=who.agency)
            del data
            ready = self.cfg.upload_tmp / f"{tracking_id}{READY_SUFFIX}"
            part = publish(part, ready)
            self._commit_accepted(tracking_id, now, who, size, sha256, release)
            part = None  # from here on the file belongs to the accepted upload (recovery finishes it)
        except Refusal as refusal:
            refusal.detail.setdefault("tracking_id", tracking_id)
            self._record_refusal(tracking_id, now, who, size, sha256, refusal)
            raise
        finally:
            if part is not None:
                part.unlink(missing_ok=True)
        self.publish(tracking_id, sha256)
        return {"tracking_id": tracking_id, "sha256": sha256, "received_at": now.isoformat(), "size": size,
                "agency": who.agency, "release_digest": release.release_digest,
                "releaser": release.releaser.subject}

    def _too_large(self, size: int | None) -> Refusal:
        got = f"{size} bytes" if size is not None else "more"
        return _refuse("UPLOAD_TOO_LARGE", f"上傳內容超過上限 {self.cfg.max_upload_bytes} 位元組 / {got} sent, the "
                                           f"limit is {self.cfg.max_upload_bytes} bytes")

    def _stream_to_disk(self, stream: BinaryIO) -> tuple[Path, int, str]:
        part = self.cfg.upload_tmp / f"{secrets.token_hex(12)}{PART_SUFFIX}"
        digest = hashlib.sha256()
        size = 0
        limit = self.cfg.max_upload_bytes
        try:
            with durable_file(part) as fh:
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large(None)
                    digest.update(chunk)
                    fh.write(chunk)
        except Refusal:
            part.unlink(missing_ok=True)
            raise
        except OSError as exc:
            part.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _refuse("DISK_FULL", "系統儲存空間不足，請稍後再試 / the gateway's disk is full; try again "
                                           "later") from None
            raise
        if size == 0:
            part.unlink(missing_ok=True)
            raise _refuse("EMPTY_UPLOAD", "上傳內容為空 / the request carried no envelope")
        return part, size, digest.hexdigest()

    def _replay(self, seen: ReleaseSeen) -> Refusal:
        return _refuse("REPLAY", f"此信封已於 {seen.at:%Y-%m-%d %H:%M:%S} UTC 收件（追蹤編號 {seen.tracking_id}）/ this "
                                 f"release was already received at {seen.at:%Y-%m-%d %H:%M:%S} UTC as "
                                 f"{seen.tracking_id}")

    def _commit_accepted(self, tracking_id: str, now: datetime, who: Uploader, size: int, sha256: str,
                         release) -> None:
        digest = release.release_digest
        try:
            with transaction(self.engine) as s:
                seen = s.get(ReleaseSeen, digest)
                if seen is not None:
                    raise self._replay(seen)
                s.add(ReleaseSeen(release_digest=digest, tracking_id=tracking_id, agency=who.agency, at=now))
                s.add(Upload(tracking_id=tracking_id, agency=who.agency, user_id=who.user_id, username=who.username,
                             via=who.via, client_ip=who.ip, received_at=now, size=size, sha256=sha256,
                             release_digest=digest, state="accepted", releaser=release.releaser.subject[:512],
                             releaser_fingerprint=release.releaser.fingerprint))
                self.provenance.record("received", HOP, sha256=sha256, tracking_id=tracking_id, session=s, at=now,
                                       agency=who.agency, user=who.username, via=who.via, size=size,
                                       release_digest=digest, releaser=release.releaser.fingerprint)
                audit.record(s, "upload_accepted", actor=who.username, agency=who.agency, ip=who.ip,
                             target=tracking_id, sha256=sha256, size=size, via=who.via)
        except IntegrityError:
            # Another worker committed the same release between our look-up and our insert.
            with transaction(self.engine) as s:
                seen = s.get(ReleaseSeen, digest)
            raise self._replay(seen) from None

    def _record_refusal(self, tracking_id: str, now: datetime, who: Uploader, size: int | None, sha256: str | None,
                        refusal: Refusal) -> None:
        with transaction(self.engine) as s:
            s.add(Upload(tracking_id=tracking_id, agency=who.agency, user_id=who.user_id, username=who.username,
                         via=who.via, client_ip=who.ip, received_at=now, size=size, sha256=sha256,
                         state="refused", reason=refusal.code, message=refusal.message[:1000]))
            self.provenance.record("refused", HOP, sha256=sha256, tracking_id=tracking_id, reason=refusal.code,
                                   session=s, at=now, agency=who.agency, user=who.username, via=who.via,
                                   layer=str(refusal.layer))
            audit.record(s, "upload_refused", actor=who.username, agency=who.agency, ip=who.ip, target=tracking_id,
                         outcome="refused", reason=refusal.code, sha256=sha256, size=size, via=who.via)

    # --- publishing and recovery
    def publish(self, tracking_id: str, sha256: str | None, *, recovered: bool = False) -> bool:
        """Move an accepted file into the outbound spool and record "spooled" exactly once."""
        name = f"{tracking_id}{READY_SUFFIX}"
        ready = self.cfg.upload_tmp / name
        try:
            publish(ready, self.cfg.outbound / name)
        except FileNotFoundError:
            # Only this code removes a ready file, by moving it: someone else already did.
            pass
        except OSError:
            log.exception("could not move an accepted upload into the outbound spool; the sweep retries",
                          extra={"tracking_id": tracking_id})
            return False
        with transaction(self.engine) as s:
            done = s.execute(update(Upload).where(Upload.tracking_id == tracking_id, Upload.spooled_at.is_(None))
                             .values(spooled_at=utcnow())).rowcount
            if done:
                detail = {"recovered": True} if recovered else {}
                self.provenance.record("spooled", HOP, sha256=sha256, tracking_id=tracking_id, session=s,
                                       file=name, **detail)
        return True

    def sweep(self, *, at_startup: bool = False) -> dict[str, int]:
        """Finish interrupted publications and delete leftovers of uploads that died.

        At start-up (no request in flight) everything is judged at once; a running worker
        leaves recent files alone, since another worker may be in the middle of them.
        """
        now = utcnow()
        stale_accepted = now if at_startup else now - STALE_ACCEPTED
        counts = {"republished": 0, "parts_removed": 0, "orphans_removed": 0}
        with transaction(self.engine) as s:
            pending = s.execute(select(Upload.tracking_id, Upload.sha256).where(
                Upload.state == "accepted", Upload.spooled_at.is_(None), Upload.received_at <= stale_accepted)).all()
        for tracking_id, sha256 in pending:
            if self.publish(tracking_id, sha256, recovered=True):
                counts["republished"] += 1
                log.warning("finished an interrupted upload", extra={"tracking_id": tracking_id})
        part_cut = now.timestamp() - (0 if at_startup else STALE_PART.total_seconds())
        ready_cut = now.timestamp() - (0 if at_startup else STALE_ACCEPTED.total_seconds())
        for entry in _files(self.cfg.upload_tmp):
            mtime = entry.stat().st_mtime
            if entry.name.endswith(PART_SUFFIX) and mtime <= part_cut:
                Path(entry.path).unlink(missing_ok=True)
                counts["parts_removed"] += 1
            elif entry.name.endswith(READY_SUFFIX) and mtime <= ready_cut:
                tracking_id = entry.name[: -len(READY_SUFFIX)]
                with transaction(self.engine) as s:
                    row = s.execute(select(Upload.state, Upload.sha256)
                                    .where(Upload.tracking_id == tracking_id)).first()
                if row is None:  # passed the check, never committed: the agency got no 202
                    Path(entry.path).unlink(missing_ok=True)
                    counts["orphans_removed"] += 1
                elif row.state == "accepted":
                    counts["republished"] += int(self.publish(tracking_id, row.sha256, recovered=True))
        return counts


def _files(folder: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(folder) if e.is_file()]
    except FileNotFoundError:
        return []
