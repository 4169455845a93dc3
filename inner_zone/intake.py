"""The one linear pipeline every envelope goes through: open, validate, load, archive.

    claimed -> decrypted -> verified -> unpacked -> validated -> loaded -> archived
                 \\____________ any refusal: refused -> quarantined (or held) ____________/

The runner and `tgw inner process` both call `Intake.process`; there is no other way
into the payment tables. The TPE/1 library opens every layer in one call (release,
seal, approval, payload); the documents are validated here, with the library's own
`validate_documents`, only because the e-payment limit depends on the agency's row in
the database. The step events are recorded from the result.

Exactly once:
- an envelope whose SHA-256 is already loaded is a duplicate: a "duplicate" event, nothing
  loaded (or, when its archive step never finished, that step is finished now);
- a new envelope reusing a loaded envelope id is refused (REPLAY), a voucher number
  loaded before for the same agency and fiscal year too (DUPLICATE_VOUCHER);
- the load, its events and its load record are one transaction; the unique keys of the
  tables catch the race that the checks before them cannot;
- the original file is archived only after the commit, to a name fixed in the
  transaction, so a crash in between is repaired by the next try of that same file (see
  _already_loaded); a copy under another name is a duplicate even then.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tgw_common.config import Config
from tgw_common.db import transaction, utcnow
from tgw_common.documents import validate_documents
from tgw_common.events import Provenance
from tgw_common.reasons import Layer, Refusal
from tgw_common.spool import sha256_file, sync_folders
from tgw_common.tpe import EnvelopeOpener, OpenedEnvelope
from tgw_common.tpe.opener import internal_error

from .agencies import AgencyPolicy, policy_for
from .fileops import place_file, tracking_id
from .models import LEDGER_LIVE, LEDGER_TEST, Document, Envelope, LoadRecord, Payee
from .quarantine import HELD, OPEN, Quarantine

log = logging.getLogger(__name__)

HOP = "inner-runner"
TAIPEI = ZoneInfo("Asia/Taipei")
STEPS = ("decrypted", "verified", "unpacked", "validated")
# How many of STEPS an envelope passed before a refusal from each layer.
_PASSED = {Layer.RELEASE: 0, Layer.SEAL: 0, Layer.APPROVAL: 1, Layer.PAYLOAD: 2, Layer.DOCUMENTS: 3,
           Layer.INTAKE: 4, Layer.UPLOAD: 0, Layer.TRANSFER: 0}


@dataclass
class Outcome:
    """What became of one envelope; `tgw inner process --json` prints it."""

    status: str  # loaded | duplicate | refused | held | checked (dry run, would load)
    name: str
    sha256: str
    tracking_id: str
    envelope_id: str | None = None
    agency: str | None = None
    reason: str | None = None
    layer: str | None = None
    message: str | None = None
    loaded_documents: int = 0
    mode: str | None = None
    released_for_payment: bool | None = None
    quarantine_id: str | None = None
    archive_path: str | None = None
    recovered: bool = False  # the load was committed earlier; only its archive step was finished now
    dry_run: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status in ("loaded", "duplicate", "checked")

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, **asdict(self)}


@dataclass
class _Job:
    src: Path
    name: str
    tracking_id: str
    sha256: str
    size: int
    tries: int
    claimed_at: datetime
    keep_source: bool
    dry_run: bool
    envelope_id: str | None = None
    agency: str | None = None
    # Called on the transaction's connection just before a load or a refusal commits: the
    # shared queue's lease check (raises LeaseLost), so a runner that lost its envelope
    # to another commits nothing.
    fence: Callable[[Any], None] | None = None


class _DryRunDone(Exception):
    """Leaves the load transaction (rolling it back) once a dry run has judged everything."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


# Keyword names of Provenance.record and of our own event details: a Refusal's detail may not shadow them.
_RESERVED = frozenset({"event", "hop", "sha256", "tracking_id", "envelope_id", "reason", "session", "at", "layer",
                       "message", "quarantine_id", "status", "held"})


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    """Event details go into a JSON column: keep only JSON scalars (stringify the rest)."""
    return {k: v if isinstance(v, str | int | float | bool | type(None)) else str(v) for k, v in detail.items()
            if k not in _RESERVED}


_BY_SHA = (select(Envelope.envelope_id, Envelope.agency, Envelope.tracking_id, LoadRecord.id,
                  LoadRecord.archive_path, LoadRecord.archived_at)
           .join(LoadRecord, LoadRecord.envelope_pk == Envelope.id)
           .where(Envelope.sha256 == bindparam("sha")))


_BY_ENVELOPE_ID = (select(Envelope.sha256, Envelope.tracking_id, Envelope.loaded_at)
                   .where(Envelope.envelope_id == bindparam("eid")))
_VOUCHERS = (select(Document.fiscal_year, Document.voucher_no, Envelope.envelope_id)
             .join(Envelope, Envelope.id == Document.envelope_pk)
             .where(Document.agency == bindparam("agency"), Document.ledger == bindparam("ledger"),
                    Document.voucher_no.in_(bindparam("numbers", expanding=True)))
             .order_by(Document.id))


class Intake:
    def __init__(self, config: Config, *, engine, provenance: Provenance, opener: EnvelopeOpener,
                 quarantine: Quarantine, session_id: str, via: str = "runner", hop: str = HOP) -> None:
        config.need("inner")
        self.config = config
        self.inner = config.inner
        self.engine = engine
        self.provenance = provenance
        self.opener = opener
        self.quarantine = quarantine
        self.session_id = session_id
        self.via = via
        self.hop = hop
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")  # for look-ups alone
        # Archived files whose "archived" mark is not yet committed: (load row id, event),
        # and the folders their renames touched. The runner makes them durable once per
        # batch: the folders synced first, then the marks committed (never the other way round).
        self._unmarked: list[tuple[int, dict[str, Any]]] = []
        self._dirty: set[Path] = set()

    # ------------------------------------------------------------------ entry points
    def process(self, src: Path, *, name: str | None = None, tries: int = 1, claimed_at: datetime | None = None,
                keep_source: bool = False, dry_run: bool = False,
                fence: Callable[[Any], None] | None = None) -> Outcome:
        """Run one envelope file through the whole pipeline; refusals become quarantine entries.

        keep_source: the file is the operator's (tgw inner process): copy it to the archive
        or quarantine instead of moving it. dry_run: judge everything, the database checks
        included, then roll back: nothing is loaded, recorded, archived or quarantined.
        """
        name = name or src.name
        size = src.stat().st_size
        job = _Job(src, name, tracking_id(name), "", size, tries, claimed_at or utcnow(), keep_source, dry_run,
                   fence=fence)
        limit = self.opener.limits.max_envelope_bytes
        if size > limit:
            # Judged before reading, so an oversized file never has to fit in memory.
            job.sha256 = sha256_file(src)
            return self._refuse(job, Refusal("TOO_LARGE", Layer.RELEASE, f"{size} bytes, the limit is {limit}"))
        try:
            return self._process(job)
        except IntegrityError:
            # Another process loaded a row with one of our unique keys between our checks and
            # our commit. Judging again finds that row and answers duplicate/REPLAY/DUPLICATE_VOUCHER.
            log.info("unique key taken concurrently; judging again", extra={"file": name})
            return self._process(job)

    def poison(self, src: Path, *, name: str, tries: int, error: str | None = None,
               fence: Callable[[Any], None] | None = None) -> Outcome:
        """A file that failed `tries` times (crashed its runner, or raised): quarantine as POISON.

        Unless its load had committed before the crash: then only the archive step is left.
        """
        job = _Job(src, name, tracking_id(name), sha256_file(src), src.stat().st_size, tries, utcnow(), False, False,
                   fence=fence)
        done = self._already_loaded(job)
        if done is not None:
            return done
        message = f"processing failed {tries} times" + (f"; last error: {error}" if error else " (the runner died)")
        return self._refuse(job, Refusal("POISON", Layer.INTAKE, message, tries=tries))

    def flush_archived(self) -> int:
        """Commit the "archived" marks of envelopes archived since the last flush."""
        if not self._unmarked:
            return 0
        sync_folders(*sorted(self._dirty))
        self._dirty.clear()
        pending, self._unmarked = self._unmarked, []
        table = LoadRecord.__table__
        try:
            with transaction(self.engine) as s:
                # Only loads still unmarked, and one "archived" event each: a flush retried after
                # a commit whose answer was lost, or `tgw inner process` finishing the same
                # archive step beside a runner, must not mark a load twice.
                fresh = set(s.connection().execute(
                    update(table).where(table.c.id.in_({p[0] for p in pending}), table.c.archived_at.is_(None))
                    .values(archived_at=utcnow()).returning(table.c.id)).scalars())
                marked = 0
                for load_id, event in pending:
                    if load_id in fresh:
                        fresh.discard(load_id)
                        self.provenance.record("archived", self.hop, session=s, **event)
                        marked += 1
        except Exception:
            self._unmarked = pending + self._unmarked
            raise
        return marked

    def repair_archive_marks(self) -> int:
        """At start-up: loads whose file reached the archive but whose mark a crash lost."""
        with transaction(self.engine) as s:
            rows = s.execute(select(LoadRecord.id, LoadRecord.archive_path, LoadRecord.sha256, LoadRecord.tracking_id,
                                    Envelope.envelope_id)
                             .join(Envelope, Envelope.id == LoadRecord.envelope_pk)
                             .where(LoadRecord.archived_at.is_(None))).all()
        for row in rows:
            # A pending mark: start-up's poison check has just finished this archive step itself.
            if Path(row.archive_path).exists() and not self._mark_pending(row.id):
                self._mark(row.id, row.archive_path, row.sha256, row.tracking_id, row.envelope_id, repaired=True)
            # Otherwise the file is still in the spool (recovery put it back) and its next
            # try finishes the archive step.
        return self.flush_archived()

    # ------------------------------------------------------------------ the pipeline
    def _process(self, job: _Job) -> Outcome:
        job.sha256 = sha256_file(job.src)
        done = self._already_loaded(job)
        if done is not None:
            return done
        moment = utcnow()
        try:
            # The path, not the bytes: the opener drops the file's bytes once it has decrypted them.
            opened = self.opener.open(job.src, moment=moment, validate_documents=False)
        except Refusal as refusal:
            return self._refuse(job, refusal)
        except Exception as exc:
            return self._defect(job, exc)
        if opened.sha256 != job.sha256:
            # Only a file changed under us can do this (an operator's file given to `process`).
            raise RuntimeError(f"{job.name} changed while it was being read; try again")
        opened_at = utcnow()
        job.envelope_id, job.agency = opened.envelope_id, opened.agency
        try:
            with transaction(self.engine) as s:
                conn = s.connection()
                policy = policy_for(conn, opened.agency, default_mode=self.inner.default_agency_mode,
                                    default_limit=self.config.documents.epayment_limit)
                limits = self.config.documents
                if policy.epayment_limit != limits.epayment_limit:
                    limits = limits.model_copy(update={"epayment_limit": policy.epayment_limit})
                documents = validate_documents(opened.payload.manifest, None, agency=opened.agency,
                                               limits=limits, today=moment.astimezone(TAIPEI).date(),
                                               manifest_checked=True, parsed=opened.payload.documents)
                validated_at = utcnow()
                ledger = LEDGER_TEST if policy.is_test else LEDGER_LIVE
                self._check_exactly_once(conn, opened, documents, ledger)
                if job.dry_run:
                    raise _DryRunDone(self._outcome(job, "checked", opened, policy, len(documents)))
                load_id, archive_path = self._load(s, job, opened, documents, policy, ledger,
                                                   times=(moment, opened_at, validated_at))
                if job.fence is not None:
                    job.fence(conn)
        except Refusal as refusal:
            return self._refuse(job, refusal)
        except _DryRunDone as done:
            return done.outcome
        outcome = self._outcome(job, "loaded", opened, policy, len(documents))
        outcome.archive_path = archive_path
        self._archive(job, load_id, archive_path)
        return outcome

    def _outcome(self, job: _Job, status: str, opened: OpenedEnvelope, policy: AgencyPolicy, count: int) -> Outcome:
        return Outcome(status, job.name, job.sha256, job.tracking_id, envelope_id=opened.envelope_id,
                       agency=opened.agency, loaded_documents=count if status == "loaded" else 0, mode=policy.mode,
                       released_for_payment=not policy.is_test, dry_run=job.dry_run,
                       detail={"documents": count, "epayment_limit": policy.epayment_limit})

    def _already_loaded(self, job: _Job) -> Outcome | None:
        # A plain autocommit connection, not a session: this runs for every envelope and finds
        # nothing almost always, so it should cost as little as a query can (no BEGIN/ROLLBACK).
        with self._autocommit.connect() as conn:
            row = conn.execute(_BY_SHA, {"sha": job.sha256}).first()
        if row is None:
            return None
        job.envelope_id, job.agency = row.envelope_id, row.agency
        outcome = Outcome("duplicate", job.name, job.sha256, job.tracking_id, envelope_id=row.envelope_id,
                          agency=row.agency, archive_path=row.archive_path, dry_run=job.dry_run,
                          detail={"first_tracking_id": row.tracking_id})
        if job.dry_run:
            return outcome
        # `archived_at` stays NULL for a while after the archive rename: the runner commits a
        # pass's marks together at its end, so a load of this pass is archived with its mark
        # still in memory. Only a NULL with no pending mark means the archive step never ran.
        archived = row.archived_at is not None or self._mark_pending(row.id)
        if not archived and row.tracking_id == job.tracking_id:
            # This very file was loaded and the runner died before archiving it: finish the
            # step quietly; this is the same delivery, not a second one.
            self._archive(job, row.id, row.archive_path)
            outcome.status, outcome.recovered = "loaded", True
            return outcome
        # A second delivery of the same bytes. When the load is not archived yet (its file is
        # back in the spool after a crash) and this copy has another name, it must not stand
        # in for that file: the archive step, its mark and the start-up repair all belong to
        # the file the load record names, which stays in the spool until its next try
        # archives it. Otherwise this copy would vanish with no event under its own tracking
        # id, and the loaded file would later be logged as a duplicate of itself.
        with transaction(self.engine) as s:
            if job.fence is not None:
                job.fence(s.connection())  # a runner that lost this envelope must not speak for it
            self.provenance.record("duplicate", self.hop, session=s, sha256=job.sha256, tracking_id=job.tracking_id,
                                   envelope_id=row.envelope_id, first_tracking_id=row.tracking_id, file=job.name)
        if not job.keep_source:
            job.src.unlink(missing_ok=True)  # byte for byte the loaded original
            sync_folders(job.src.parent)
        return outcome

    def _check_exactly_once(self, conn, opened: OpenedEnvelope, documents, ledger: str) -> None:
        taken = conn.execute(_BY_ENVELOPE_ID, {"eid": opened.envelope_id}).first()
        if taken is not None:
            raise Refusal("REPLAY", Layer.INTAKE,
                          f"envelope id {opened.envelope_id!r} was loaded before (tracking id {taken.tracking_id}, "
                          f"{taken.loaded_at:%Y-%m-%d %H:%M:%S}Z) with other content",
                          first_sha256=taken.sha256, first_tracking_id=taken.tracking_id)
        mine = {(d.fiscal_year, d.voucher_no): d.path for d in documents if d.voucher_no is not None}
        if not mine:
            return
        # Voucher numbers first (the unique index leads with the agency), fiscal years in Python.
        for row in conn.execute(_VOUCHERS, {"agency": opened.agency, "ledger": ledger,
                                            "numbers": sorted({no for _fy, no in mine})}):
            path = mine.get((row.fiscal_year, row.voucher_no))
            if path is not None:
                raise Refusal("DUPLICATE_VOUCHER", Layer.INTAKE,
                              f"{path}: voucher {row.voucher_no!r} of fiscal year {row.fiscal_year} of agency "
                              f"{opened.agency} was loaded before in envelope {row.envelope_id!r}",
                              file=path, voucher_no=row.voucher_no, fiscal_year=row.fiscal_year,
                              first_envelope_id=row.envelope_id)

    def _load(self, s, job: _Job, opened: OpenedEnvelope, documents, policy: AgencyPolicy, ledger: str,
              *, times: tuple[datetime, datetime, datetime]) -> tuple[int, str]:
        """Insert the envelope, its documents, payees, load record and events; returns the load
        record's id and archive path. Core inserts on the session's connection: the ORM's unit
        of work costs more than the database does for rows that are written once and never
        changed (and a large envelope has tens of thousands of payees)."""
        moment, opened_at, validated_at = times
        manifest = opened.payload.manifest
        conn = s.connection()
        now = utcnow()
        total = sum(d.amount for d in documents)
        env_id = conn.execute(insert(Envelope.__table__).returning(Envelope.__table__.c.id), {
            "envelope_id": opened.envelope_id, "sha256": job.sha256, "release_digest": opened.release_digest,
            "tracking_id": job.tracking_id, "agency": opened.agency, "mode": policy.mode, "is_test": policy.is_test,
            "released_for_payment": not policy.is_test, "created_at": manifest.get("created_at"), "loaded_at": now,
            "document_count": len(documents), "total_amount": total, "size_bytes": job.size,
            "releaser": asdict(opened.releaser), "approvals": [asdict(a) for a in opened.approvals],
            "seal": asdict(opened.seal), "manifest": manifest}).scalar_one()
        hashes = {d["path"]: d["sha256"] for d in manifest["documents"]}
        if documents:
            doc_table = Document.__table__
            add_documents = insert(doc_table).returning(doc_table.c.id, sort_by_parameter_order=True)
            ids = []
            # In slices too: each document's JSON is serialized for its statement, and all of a
            # large envelope's at once would be the envelope once more in memory.
            for start in range(0, len(documents), 8):
                ids += conn.execute(add_documents, [
                    {"envelope_pk": env_id, "seq": i, "path": d.path, "kind": d.kind, "sha256": hashes[d.path],
                     "agency": opened.agency, "fiscal_year": d.fiscal_year, "document_no": d.document_no,
                     "voucher_no": d.voucher_no, "ledger": ledger, "amount": d.amount, "data": d.data}
                    for i, d in enumerate(documents[start:start + 8], start)]).scalars().all()
            rows = ({"document_pk": doc_id, "seq": j, "name": p.name, "id_number": p.id_number,
                     "bank_code": p.bank_code, "account_no": p.account_no, "amount": p.amount}
                    for doc_id, d in zip(ids, documents, strict=True) for j, p in enumerate(d.payees))
            # In slices, so a voucher file with a hundred thousand payees never exists twice in memory.
            while chunk := list(itertools.islice(rows, 5000)):
                conn.execute(insert(Payee.__table__), chunk)
        archive_path = str(self._archive_path(job, now))
        load_table = LoadRecord.__table__
        load_id = conn.execute(insert(load_table).returning(load_table.c.id), {
            "envelope_pk": env_id, "sha256": job.sha256, "tracking_id": job.tracking_id, "file_name": job.name,
            "via": self.via, "host": self.config.node.host, "session": self.session_id, "tries": job.tries,
            "claimed_at": job.claimed_at, "loaded_at": now, "archive_path": archive_path}).scalar_one()
        ids_ = {"sha256": job.sha256, "tracking_id": job.tracking_id, "envelope_id": opened.envelope_id}
        record = self.provenance.record
        record("claimed", self.hop, session=s, at=job.claimed_at, file=job.name, tries=job.tries, size=job.size,
               **ids_)
        record("decrypted", self.hop, session=s, at=opened_at, cipher=opened.seal.cipher,
               key_transport=opened.seal.key_transport, **ids_)
        record("verified", self.hop, session=s, at=opened_at, agency=opened.agency,
               releaser=opened.releaser.fingerprint, approvals=[a.fingerprint for a in opened.approvals], **ids_)
        record("unpacked", self.hop, session=s, at=opened_at, documents=len(manifest["documents"]),
               total_amount=total, **ids_)
        record("validated", self.hop, session=s, at=validated_at, documents=len(documents), **ids_)
        record("loaded", self.hop, session=s, at=now, agency=opened.agency, mode=policy.mode,
               released_for_payment=not policy.is_test, documents=len(documents), total_amount=total,
               seconds=round(time.time() - moment.timestamp(), 4), **ids_)
        return load_id, archive_path

    def _archive_path(self, job: _Job, when: datetime) -> Path:
        day = when.astimezone(TAIPEI)
        return self.inner.archive_dir / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{job.tracking_id}-{job.sha256[:16]}.p7m"

    def _archive(self, job: _Job, load_id: int, archive_path: str) -> None:
        dest = Path(archive_path)
        place_file(job.src, dest, keep_source=job.keep_source, sync=False)
        self._dirty.update((dest.parent, job.src.parent))
        self._mark(load_id, archive_path, job.sha256, job.tracking_id, job.envelope_id)

    def _mark_pending(self, load_id: int) -> bool:
        """Archived by this process, its mark not committed yet (at most one pass of them)."""
        return any(pending_id == load_id for pending_id, _event in self._unmarked)

    def _mark(self, load_id: int, archive_path: str, sha: str, tid: str | None, eid: str | None, **extra) -> None:
        self._unmarked.append((load_id, {"at": utcnow(), "sha256": sha, "tracking_id": tid, "envelope_id": eid,
                                         "path": archive_path, **extra}))

    # ------------------------------------------------------------------ refusals
    def _defect(self, job: _Job, exc: Exception) -> Outcome:
        """Opening an envelope is a pure judgement of its bytes: an exception of no known kind
        there is a defect and would raise again on every try. It is quarantined at once as
        INTERNAL_ERROR (monitoring alerts on it) with its traceback logged once, instead of
        a retry loop ending in POISON. The machine's own trouble still goes to the runner."""
        if isinstance(exc, OSError | MemoryError | SQLAlchemyError):
            raise exc
        log.exception("defect: unexpected exception while opening an envelope",
                      extra={"file": job.name, "tracking_id": job.tracking_id, "sha256": job.sha256})
        return self._refuse(job, internal_error(exc))

    def _refuse(self, job: _Job, refusal: Refusal) -> Outcome:
        hold = bool(refusal.detail.get("hold"))
        outcome = Outcome("held" if hold else "refused", job.name, job.sha256, job.tracking_id,
                          envelope_id=job.envelope_id, agency=job.agency, reason=refusal.code,
                          layer=str(refusal.layer), message=refusal.message, dry_run=job.dry_run,
                          detail=_plain(refusal.detail))
        if job.dry_run:
            return outcome
        status = HELD if hold else OPEN
        qid = self.quarantine.choose_id(job.tracking_id, job.sha256)
        ids_ = {"sha256": job.sha256, "tracking_id": job.tracking_id, "envelope_id": job.envelope_id}
        now = utcnow()
        with transaction(self.engine) as s:
            self.provenance.record("claimed", self.hop, session=s, at=job.claimed_at, file=job.name,
                                   tries=job.tries, size=job.size, **ids_)
            passed = 0 if refusal.code == "INTERNAL_ERROR" else _PASSED[refusal.layer]
            for step in STEPS[:passed]:
                self.provenance.record(step, self.hop, session=s, at=now, **ids_)
            self.provenance.record("refused", self.hop, session=s, at=now, reason=refusal.code,
                                   layer=str(refusal.layer), message=refusal.message[:500],
                                   **_plain(refusal.detail), **ids_)
            self.provenance.record("quarantined", self.hop, session=s, at=now, reason=refusal.code,
                                   quarantine_id=qid, status=status, held=hold, **ids_)
            if job.fence is not None:
                job.fence(s.connection())
        events = self.provenance.history(sha256=job.sha256, tracking_id=job.tracking_id)
        entry = self.quarantine.put(job.src, name=job.name, sha256=job.sha256, size=job.size,
                                    tracking_id=job.tracking_id, status=status, reason=refusal.code,
                                    layer=str(refusal.layer), message=refusal.message,
                                    detail=_plain(refusal.detail), events=events, first_seen_at=job.claimed_at,
                                    tries=job.tries, envelope_id=job.envelope_id, agency=job.agency,
                                    keep_source=job.keep_source)
        outcome.quarantine_id = entry["id"]
        return outcome
