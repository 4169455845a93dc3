"""Importing a batch file: read, check every document, and store a draft in one transaction
only when nothing is wrong (a file with errors leaves no trace but the answer)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tgw_common.config import DocumentsConfig
from tgw_common.db import transaction, utcnow
from tgw_common.documents import JsonProblem, parse_json_bytes

from ..models import Batch, BatchDocument, BatchEnvelope, BatchEvent
from .checking import Checked, check_documents
from .csvfile import read_csv
from .errors import FieldError, FileUnreadable

JSON_TYPE, CSV_TYPE = "application/json", "text/csv"


@dataclass(frozen=True)
class BatchAuthor:
    username: str
    agency: str
    role: str  # the role the history records for the import
    action: str = "imported"  # or "entered": typed into the portal's form


@dataclass
class BatchImport:
    """The answer to an import: the new draft's id, or the errors (then nothing was stored)."""

    batch_id: int | None = None
    errors: list[FieldError] = field(default_factory=list)


def import_documents(engine: Engine, data: bytes, content_type: str, *, who: BatchAuthor, limits: DocumentsConfig,
                     today: dt.date) -> BatchImport:
    """Import a JSON array of documents or a CSV file of vouchers as a draft batch of `who.agency`.

    Raises FileUnreadable for an unsupported type, an encoding other than UTF-8 or a layout
    that cannot be read; field problems come back as `errors`, all of them at once.
    """
    passed, errors = read_documents(data, content_type, agency=who.agency, limits=limits, today=today)
    if errors:
        return BatchImport(errors=errors)
    return BatchImport(batch_id=_store(engine, who, passed))


def read_documents(data: bytes, content_type: str, *, agency: str, limits: DocumentsConfig,
                   today: dt.date) -> tuple[list[Checked], list[FieldError]]:
    """The documents of a batch file, each checked; every error found, located in the file."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        docs, locate, errors = _read_json(data), None, []
    elif media == CSV_TYPE:
        read, errors = read_csv(data)
        docs, locate = [d.data for d in read], read
    else:
        raise FileUnreadable(f"不支援的檔案類型 / unsupported type {media[:60]!r}; send {JSON_TYPE} or {CSV_TYPE}")
    passed, found = check_documents(docs, agency=agency, limits=limits, today=today)
    if locate is not None:
        found = [FieldError(e.document, locate[e.document].locate(e.field), e.code, e.message, e.field)
                 for e in found]
    errors = sorted(errors + found, key=lambda e: (e.document if e.document is not None else -1))
    return passed, errors


def _read_json(data: bytes) -> list[Any]:
    try:
        docs = parse_json_bytes(data)
    except JsonProblem as exc:
        raise FileUnreadable(f"JSON 無法讀取 / {exc}") from None
    if not isinstance(docs, list) or not docs:
        raise FileUnreadable("檔案須為文件的 JSON 陣列 / the file must be a non-empty JSON array of documents")
    return docs


def _store(engine: Engine, who: BatchAuthor, passed: list[Checked]) -> int:
    now = utcnow()
    with transaction(engine) as s:
        batch = Batch(agency=who.agency, created_by=who.username, state="draft", created_at=now,
                      document_count=len(passed), total_amount=sum(c.document.amount for c in passed), errors=[])
        s.add(batch)
        s.flush()
        add_documents(s, batch, passed)
        s.add(BatchEvent(batch_id=batch.id, actor=who.username, role=who.role, at=now, action=who.action,
                         comment=f"{len(passed)} documents"))
        return batch.id


def add_documents(s: Session, batch: Batch, passed: list[Checked]) -> None:
    """`passed` as the batch's documents, in order, and its counts and total to match."""
    for position, checked in enumerate(passed):
        s.add(BatchDocument(batch_id=batch.id, position=position, kind=checked.document.kind,
                            document=checked.document.data, paper=checked.paper))
    batch.document_count = len(passed)
    batch.total_amount = sum(c.document.amount for c in passed)


def batch_view(engine: Engine, agency: str, batch_id: int) -> dict[str, Any] | None:
    """A batch of `agency` as the API shows it; None when there is none (or it is another agency's)."""
    with transaction(engine) as s:
        batch = s.get(Batch, batch_id)
        if batch is None or batch.agency != agency:
            return None
        docs = s.scalars(select(BatchDocument).where(BatchDocument.batch_id == batch_id)
                         .order_by(BatchDocument.position)).all()
        events = s.scalars(select(BatchEvent).where(BatchEvent.batch_id == batch_id).order_by(BatchEvent.id)).all()
        return _summary(batch, docs, s.get(BatchEnvelope, batch_id)) | {
            "documents": [{"position": d.position, "kind": d.kind, "paper": d.paper} for d in docs],
            "history": [{"actor": e.actor, "role": e.role, "at": e.at.isoformat(), "action": e.action,
                         "comment": e.comment} for e in events],
        }


def _summary(batch: Batch, docs: list[BatchDocument], env: BatchEnvelope | None) -> dict[str, Any]:
    return {
        "batch_id": batch.id, "agency": batch.agency, "state": batch.state, "created_by": batch.created_by,
        "created_at": batch.created_at.isoformat(), "document_count": batch.document_count,
        "paper_count": sum(1 for d in docs if d.paper), "total_amount": batch.total_amount,
        "envelope": None if env is None else {
            "envelope_id": env.envelope_id, "payload_sha256": env.payload_sha256,
            "document_count": env.document_count, "total_amount": env.total_amount,
            "signatures": [{k: x[k] for k in ("role", "subject", "fingerprint", "delegate", "signing_time")}
                           for x in env.signers],
            "sealed_sha256": env.sealed_sha256, "released_at": env.released_at.isoformat() if env.released_at else None,
            "plaintext_purged": env.purged_at is not None,
        },
        "tracking_id": env.tracking_id if env is not None else None,
    }


def list_batches(engine: Engine, agency: str, *, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The agency's batches, newest first, as summaries (no documents, no history)."""
    with transaction(engine) as s:
        query = select(Batch).where(Batch.agency == agency)
        if state:
            query = query.where(Batch.state == state)
        batches = s.scalars(query.order_by(Batch.id.desc()).limit(limit)).all()
        ids = [b.id for b in batches]
        docs: dict[int, list[BatchDocument]] = {i: [] for i in ids}
        for d in s.scalars(select(BatchDocument).where(BatchDocument.batch_id.in_(ids))):
            docs[d.batch_id].append(d)
        envs = {e.batch_id: e for e in s.scalars(select(BatchEnvelope).where(BatchEnvelope.batch_id.in_(ids)))}
        return [_summary(b, docs[b.id], envs.get(b.id)) for b in batches]


def batch_documents(engine: Engine, agency: str, batch_id: int) -> list[dict[str, Any]] | None:
    """The batch's documents themselves (for the print view and editing); None if not the agency's.
    After the plaintext purge each `document` is empty."""
    with transaction(engine) as s:
        batch = s.get(Batch, batch_id)
        if batch is None or batch.agency != agency:
            return None
        return [{"position": d.position, "kind": d.kind, "paper": d.paper, "document": d.document}
                for d in s.scalars(select(BatchDocument).where(BatchDocument.batch_id == batch_id)
                                   .order_by(BatchDocument.position))]
