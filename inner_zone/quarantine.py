"""Quarantine and hold: refused envelopes kept aside with a JSON file that says why.

Each entry is two files with one ID: `<ID>.p7m` (the envelope as it arrived) and
`<ID>.json` (reason, layer, message, provenance events, times, operator actions). Open,
rejected and retried entries live in `inner.quarantine_dir`; envelopes held for a stale
CRL live in `<inner.spool_dir>/held/`, apart, because they are not judged yet: the runner
puts them back into the inbound spool by itself whenever the CRL files change.

The ID is the file's tracking id (its stem), so an agency's or an operator's reference
finds it; when an envelope with other content already owns that ID, `-2`, `-3`, ... is
appended. An envelope that comes back to quarantine (retried, refused again) reuses its
ID, keeping its earlier actions. docs/inner.md lists every field of the JSON file.

Crash safety: the JSON file is written atomically before the envelope is moved next to
it; a crash in between leaves a JSON without its .p7m (shown as file_present: false) and
the envelope still claimed in the spool, which recovery puts back and the next try
files under the same ID.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tgw_common.db import utcnow
from tgw_common.reasons import REASONS
from tgw_common.spool import publish, sync_folders, write_atomic

from .fileops import place_file

OPEN, HELD, RETRIED, REJECTED = "open", "held", "retried", "rejected"
STATUSES = (OPEN, HELD, RETRIED, REJECTED)
ACTIVE = (OPEN, HELD)  # still waiting for something (an operator, a CRL)


class QuarantineError(ValueError):
    """An operator action that cannot be done; the message names the ID and why."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Quarantine:
    def __init__(self, quarantine_dir: Path, held_dir: Path) -> None:
        self.dirs = {"quarantine": Path(quarantine_dir), "held": Path(held_dir)}
        for d in self.dirs.values():
            (d / ".tmp").mkdir(parents=True, exist_ok=True)
        self._status_cache: dict[str, tuple[int, str | None, str | None]] = {}
        # Tracking ids of the open INTERNAL_ERROR entries as of the last counts(): each is a
        # defect of the gateway, which the heartbeat reports and monitoring alerts on.
        self.last_defects: list[str] = []

    # --- where things are
    def _dir_for(self, status: str) -> Path:
        return self.dirs["held" if status == HELD else "quarantine"]

    def _find(self, qid: str) -> tuple[Path, dict[str, Any]] | None:
        if not qid or "/" in qid or qid.startswith("."):
            return None
        for d in self.dirs.values():
            meta = d / f"{qid}.json"
            try:
                return d, json.loads(meta.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
        return None

    def _write(self, folder: Path, entry: dict[str, Any]) -> None:
        data = json.dumps(entry, ensure_ascii=False, indent=2, default=str).encode()
        write_atomic(folder / f"{entry['id']}.json", data, tmp_dir=folder / ".tmp")

    def choose_id(self, stem: str, sha256: str | None) -> str:
        """The entry ID for an envelope: its stem, unless another envelope owns that.

        A file that could not be read has no SHA-256 to recognise it by: it gets a fresh ID.
        """
        candidate, n = stem, 1
        while True:
            found = self._find(candidate)
            if found is None or (sha256 is not None and found[1].get("sha256") == sha256):
                return candidate
            n += 1
            candidate = f"{stem}-{n}"

    # --- the pipeline's side
    def put(self, src: Path, *, name: str, sha256: str, size: int, tracking_id: str, status: str,
            reason: str, layer: str, message: str, detail: dict[str, Any], events: list[dict[str, Any]],
            first_seen_at: datetime, tries: int, envelope_id: str | None = None, agency: str | None = None,
            keep_source: bool = False) -> dict[str, Any]:
        """File a refused envelope under its ID, with the JSON written first."""
        if status not in (OPEN, HELD):
            raise ValueError(f"a refused envelope is filed as open or held, not {status!r}")
        qid = self.choose_id(tracking_id, sha256)
        previous = self._find(qid)
        entry = self._entry(qid, previous[1] if previous else {}, name=name, sha256=sha256, size=size,
                            tracking_id=tracking_id, status=status, reason=reason, layer=layer, message=message,
                            detail=detail, events=events, first_seen_at=first_seen_at, tries=tries,
                            envelope_id=envelope_id, agency=agency)
        folder = self._dir_for(status)
        self._write(folder, entry)
        place_file(src, folder / entry["file"], keep_source=keep_source)
        if previous and previous[0] != folder:
            # The entry moved between quarantine and held: drop the stale copy of its JSON.
            (previous[0] / f"{qid}.json").unlink(missing_ok=True)
            sync_folders(previous[0])
        return entry

    def put_unreadable(self, src: Path, *, name: str, tracking_id: str, message: str, detail: dict[str, Any],
                       events: list[dict[str, Any]], first_seen_at: datetime, tries: int,
                       set_aside: Callable[[], Path]) -> dict[str, Any]:
        """File what cannot be read as an envelope (so it has no SHA-256) as an open POISON entry.

        Only a regular file is kept here, moved by a rename (a copy would have to read it).
        Anything else, whose readers could block (a FIFO) or be sent elsewhere (a link), or a
        file the rename cannot move, is left to `set_aside` (the spool's .bad/), and the
        entry says where it went (`set_aside_path`, `file` null).
        """
        qid = self.choose_id(tracking_id, None)
        try:
            st = os.lstat(src)
        except OSError:
            st = None
        regular = st is not None and stat.S_ISREG(st.st_mode)
        entry = self._entry(qid, {}, name=name, sha256=None, size=st.st_size if regular else None,
                            tracking_id=tracking_id, status=OPEN, reason="POISON", layer="intake", message=message,
                            detail=detail, events=events, first_seen_at=first_seen_at, tries=tries)
        folder = self.dirs["quarantine"]
        if regular:
            self._write(folder, entry)
            try:
                publish(src, folder / entry["file"])
                return entry
            except OSError as exc:
                entry["detail"] = {**detail, "quarantine_move_error": str(exc)}
        entry.update(file=None, set_aside_path=str(set_aside()))
        self._write(folder, entry)
        return entry

    def _entry(self, qid: str, earlier: dict[str, Any], *, name: str, sha256: str | None, size: int | None,
               tracking_id: str, status: str, reason: str, layer: str, message: str, detail: dict[str, Any],
               events: list[dict[str, Any]], first_seen_at: datetime, tries: int, envelope_id: str | None = None,
               agency: str | None = None) -> dict[str, Any]:
        now = utcnow()
        info = REASONS.get(reason)
        return {
            "id": qid,
            "status": status,
            "reason": reason,
            "layer": layer,
            "message": message,
            "reason_zh": info.zh if info else None,
            "reason_en": info.en if info else None,
            "hold": status == HELD,
            "detail": detail,
            "file": f"{qid}.p7m",
            "original_name": name,
            "sha256": sha256,
            "size_bytes": size,
            "tracking_id": tracking_id,
            "envelope_id": envelope_id or earlier.get("envelope_id"),
            "agency": agency or earlier.get("agency"),
            "tries": tries,
            "first_seen_at": earlier.get("first_seen_at") or _iso(first_seen_at),
            "quarantined_at": _iso(now),
            "updated_at": _iso(now),
            "times_quarantined": int(earlier.get("times_quarantined", 0)) + 1,
            "actions": earlier.get("actions", []),
            "events": events,
        }

    # --- the operator's side
    def get(self, qid: str) -> dict[str, Any]:
        found = self._find(qid)
        if found is None:
            raise QuarantineError(f"{qid}: no such quarantine or held entry")
        folder, entry = found
        entry["file_present"] = bool(entry.get("file")) and (folder / entry["file"]).exists()
        entry["folder"] = str(folder)
        return entry

    def list(self, *, statuses: tuple[str, ...] = ACTIVE) -> list[dict[str, Any]]:
        entries = []
        for folder in self.dirs.values():
            for meta in sorted(folder.glob("*.json")):
                try:
                    entry = json.loads(meta.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue  # being rewritten right now, or damaged: `show` reports it
                if entry.get("status") in statuses:
                    entry["file_present"] = bool(entry.get("file")) and (folder / entry["file"]).exists()
                    entries.append(entry)
        entries.sort(key=lambda e: (e.get("quarantined_at") or "", e["id"]))
        return entries

    def counts(self) -> dict[str, int]:
        """Open and held entries, for every heartbeat: a JSON file is parsed again only when it
        changed, so a quarantine full of closed entries costs one directory listing."""
        counts = {OPEN: 0, HELD: 0}
        defects: list[str] = []
        seen: set[str] = set()
        for folder in self.dirs.values():
            for e in os.scandir(folder):
                if not e.name.endswith(".json"):
                    continue
                key = e.path
                seen.add(key)
                stamp = e.stat().st_mtime_ns
                cached = self._status_cache.get(key)
                if cached is None or cached[0] != stamp:
                    try:
                        entry = json.loads(Path(e.path).read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        continue
                    defect = entry.get("tracking_id") or entry.get("id") if entry.get("reason") == "INTERNAL_ERROR" \
                        else None
                    cached = self._status_cache[key] = (stamp, entry.get("status"), defect)
                if cached[1] in counts:
                    counts[cached[1]] += 1
                    if cached[2]:
                        defects.append(cached[2])
        for key in set(self._status_cache) - seen:
            del self._status_cache[key]
        self.last_defects = sorted(defects)
        return counts

    def _active(self, qid: str, done: str) -> tuple[Path, dict[str, Any]]:
        """An entry an operator may still act on (open or held); `done` names the action in the error."""
        found = self._find(qid)
        if found is None:
            raise QuarantineError(f"{qid}: no such quarantine or held entry")
        folder, entry = found
        if entry["status"] not in ACTIVE:
            raise QuarantineError(f"{qid}: is {entry['status']}; only open or held entries can be {done}")
        return folder, entry

    def retry(self, qid: str, inbound: Path, *, note: str | None, by: str, auto: bool = False) -> dict[str, Any]:
        """Put the envelope back into the inbound spool under its original name."""
        folder, entry = self._active(qid, "retried")
        if not entry.get("file"):
            where = entry.get("set_aside_path")
            raise QuarantineError(f"{qid}: no envelope file is kept here" + (f" (it was set aside in {where})"
                                                                              if where else ""))
        src = folder / entry["file"]
        if not src.exists():
            raise QuarantineError(f"{qid}: the envelope file {src} is missing")
        dest = inbound / entry["original_name"]
        if dest.exists():
            raise QuarantineError(f"{qid}: {dest.name} is already waiting in the inbound spool")
        now = utcnow()
        entry["actions"] = [*entry.get("actions", []),
                            {"action": "auto-retry" if auto else "retry", "at": _iso(now), "by": by, "note": note,
                             "from_status": entry["status"]}]
        entry.update(status=RETRIED, updated_at=_iso(now), retried_at=_iso(now), file=None)
        entry.pop("file_present", None)
        # The file first: a crash after it leaves an entry that still says open/held with its
        # file gone (shown as file_present: false) rather than a "retried" that never was.
        publish(src, dest)
        self._write(folder, entry)
        return entry

    def reject(self, qid: str, *, note: str, by: str) -> dict[str, Any]:
        """Close an entry for good; the envelope file stays beside its JSON for audit."""
        folder, entry = self._active(qid, "rejected")
        now = utcnow()
        entry["actions"] = [*entry.get("actions", []),
                            {"action": "reject", "at": _iso(now), "by": by, "note": note,
                             "from_status": entry["status"]}]
        entry.update(status=REJECTED, updated_at=_iso(now), rejected_at=_iso(now))
        entry.pop("file_present", None)
        target = self.dirs["quarantine"]
        if folder != target:
            # A held envelope an operator gives up on becomes an ordinary closed entry.
            self._write(target, entry)
            if entry.get("file") and (folder / entry["file"]).exists():
                publish(folder / entry["file"], target / entry["file"])
            (folder / f"{qid}.json").unlink(missing_ok=True)
            sync_folders(folder)
        else:
            self._write(folder, entry)
        return entry

    def held_ids(self) -> list[str]:
        return [e["id"] for e in self.list(statuses=(HELD,))]

