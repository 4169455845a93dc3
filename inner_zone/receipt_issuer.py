"""The receipts hop: a signed receipt for every envelope fate the intake recorded.

Its queue is the provenance table itself: each `loaded` event, each `quarantined` event
(refused, or held for a CRL) and each `payments` event (results imported for some of an
envelope's documents) is a fate. An event becomes one row of `intake_receipts`
(unique on the event id) holding the signed bytes, committed before anything is published;
then the receipt file is written into `receipts.outbound` and the row marked published.
A crash in between republishes the same bytes under the same name, so the return link sees
at worst the same file twice and the outer end stores it once.

Events are looked for by anti-join over a window of recent ids, not by a high-water mark:
with several runners on PostgreSQL a lower event id can commit after a higher one.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tgw_common.config import ReceiptsConfig
from tgw_common.db import transaction, utcnow
from tgw_common.events import EventRow
from tgw_common.pki.certs import load_certificate_file, load_private_key_file
from tgw_common.receipts import Payment, Receipt, ReceiptRejected, issue_receipt
from tgw_common.spool import write_atomic

from .models import Document, Envelope, IssuedReceipt, PaymentResult

log = logging.getLogger(__name__)

FATE_EVENTS = ("loaded", "quarantined", "payments")
# How far back, in event ids, unreceipted fates are looked for: far more than any burst of
# events committed out of order, and bounded so a pass never scans the whole history.
WINDOW_IDS = 100_000
PER_PASS = 200
NOT_SENT = "not_sent"  # a fate without a tracking id (a local `tgw inner process`): nobody to tell
_AGENCY_IN_TRACKING_ID = re.compile(r"-([A-Z0-9]{2,16})-[0-9a-f]+$")


@dataclass(frozen=True)
class ReceiptSigner:
    cert: x509.Certificate
    key: object
    chain: list[x509.Certificate]

    @classmethod
    def from_config(cls, cfg: ReceiptsConfig) -> ReceiptSigner:
        if cfg.private_key is None:
            raise ValueError("receipts.private_key is needed to sign receipts")
        password = os.environ.get(cfg.private_key_password_env or "", "") or None
        key = load_private_key_file(cfg.private_key, password.encode() if password else None)
        return cls(load_certificate_file(cfg.certificate), key, [load_certificate_file(p) for p in cfg.chain])

    def sign(self, receipt: Receipt) -> bytes:
        return issue_receipt(receipt, self.cert, self.key, self.chain)


def file_name(tracking_id: str, row_id: int) -> str:
    return f"{tracking_id}.{row_id}.p7s"


class ReceiptIssuer:
    def __init__(self, engine: Engine, signer: ReceiptSigner, outbound: Path) -> None:
        self.engine, self.signer, self.outbound = engine, signer, outbound
        outbound.mkdir(parents=True, exist_ok=True)

    def issue_pending(self, limit: int = PER_PASS) -> int:
        """Sign receipts for fates that have none yet; returns how many rows were added."""
        with transaction(self.engine) as s:
            events = self._unreceipted(s, limit)
            for event in events:
                s.add(self._row_for(s, event))
        return len(events)

    def publish_pending(self) -> int:
        """Write every signed but unpublished receipt into the outbound folder."""
        with transaction(self.engine) as s:
            rows = s.scalars(select(IssuedReceipt).where(IssuedReceipt.published_at.is_(None))
                             .order_by(IssuedReceipt.id).limit(PER_PASS)).all()
            for row in rows:
                write_atomic(self.outbound / file_name(row.tracking_id, row.id), row.der)
                row.published_at = utcnow()
                log.info("receipt published", extra={"tracking_id": row.tracking_id, "state": row.state,
                                                     "receipt": row.id})
        return len(rows)

    def _unreceipted(self, s: Session, limit: int) -> list[EventRow]:
        newest = s.scalar(select(func.max(EventRow.id))) or 0
        done = select(IssuedReceipt.event_id).where(IssuedReceipt.event_id == EventRow.id)
        return list(s.scalars(select(EventRow).where(EventRow.id > newest - WINDOW_IDS,
                                                     EventRow.event.in_(FATE_EVENTS), ~done.exists())
                              .order_by(EventRow.id).limit(limit)))

    def _row_for(self, s: Session, event: EventRow) -> IssuedReceipt:
        now = utcnow()
        receipt = self._receipt(s, event, now)
        der = None
        if receipt is not None:
            try:
                der = self.signer.sign(receipt)
            except ReceiptRejected as exc:
                # Nothing the outer end would accept can be said: record it, never retry for ever.
                log.error("no receipt for this fate", extra={"event_id": event.id, "why": exc.detail})
        if der is None:
            return IssuedReceipt(event_id=event.id, tracking_id=(event.tracking_id or "")[:200],
                                 sha256=event.sha256 or "", agency="", state=NOT_SENT, der=b"", issued_at=now,
                                 published_at=now)
        return IssuedReceipt(event_id=event.id, tracking_id=receipt.tracking_id, sha256=receipt.envelope_sha256,
                             agency=receipt.agency, state=receipt.state, der=der, issued_at=now)

    def _receipt(self, s: Session, event: EventRow, now: datetime) -> Receipt | None:
        agency = _agency_of(event)
        if not event.tracking_id or not event.sha256 or agency is None:
            return None
        common = {"tracking_id": event.tracking_id, "envelope_sha256": event.sha256, "agency": agency,
                  "issued_at": now.replace(microsecond=0).isoformat().replace("+00:00", "Z")}
        if event.event == "payments":
            payments = _payments(s, event)
            return Receipt(**common, state="payments", payments=payments) if payments else None
        if event.event == "loaded":
            envelope = s.scalar(select(Envelope).where(Envelope.sha256 == event.sha256))
            if envelope is None:
                return None
            ids = s.scalars(select(Document.document_no).where(Document.envelope_pk == envelope.id)
                            .order_by(Document.seq)).all()
            return Receipt(**common, state="loaded", documents=envelope.document_count,
                           control_total=envelope.total_amount, document_ids=tuple(i for i in ids if i))
        refusal = s.scalar(select(EventRow).where(EventRow.sha256 == event.sha256, EventRow.event == "refused",
                                                  EventRow.id < event.id).order_by(EventRow.id.desc()).limit(1))
        detail = refusal.detail if refusal is not None else {}
        held = bool((event.detail or {}).get("held"))
        return Receipt(**common, state="held" if held else "refused", reason=event.reason or "INTERNAL_ERROR",
                       layer=str(detail.get("layer") or "intake"),
                       message=str(detail.get("message") or event.reason or "")[:2000] or "refused")


def _agency_of(event: EventRow) -> str | None:
    """The agency named by the event, else by the tracking id the portal gave (it ends
    `-<agency>-<hex>`): a refused envelope may never have been opened far enough to say."""
    named = (event.detail or {}).get("agency")
    if isinstance(named, str) and named:
        return named
    found = _AGENCY_IN_TRACKING_ID.search(event.tracking_id or "")
    return found.group(1) if found else None


def _payments(s: Session, event: EventRow) -> tuple[Payment, ...]:
    """The results one import stored for the event's envelope, in document order."""
    rows = s.execute(select(Document.document_no, PaymentResult)
                     .join(PaymentResult, PaymentResult.document_pk == Document.id)
                     .join(Envelope, Envelope.id == PaymentResult.envelope_pk)
                     .where(Envelope.sha256 == event.sha256,
                            PaymentResult.import_id == (event.detail or {}).get("import_id"))
                     .order_by(Document.seq)).all()
    return tuple(Payment(number, r.result, r.value_date, r.bank_reference, r.failure_reason) for number, r in rows)
