"""The outer end of the return link: verify each receipt, store it once, drop anything else.

A file the receiver publishes into `receipts.inbound` is judged in this order: its size,
its signature by the pinned receipt certificate, that certificate's path and revocation
now, the document's schema (tgw_common.receipts), and last that it speaks of an upload of
this portal: the tracking id exists, the agency is the uploader's and the envelope hash is
the one uploaded (so a receipt replayed for another agency or envelope is dropped).
Stored receipts are keyed by the SHA-256 of their bytes: a second delivery is a duplicate.
A dropped file is set aside in `receipts.dropped_dir`, with its reason logged and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from tgw_common.db import transaction, utcnow
from tgw_common.pki.trust import TrustStore
from tgw_common.receipts import MAX_RECEIPT_BYTES, Receipt, ReceiptRejected, read_receipt
from tgw_common.spool import publish

from .models import StoredReceipt, Upload

log = logging.getLogger(__name__)

STORED, DUPLICATE = "stored", "duplicate"
# Drop labels beyond tgw_common.receipts' own (docs/receipts.md lists them all).
UNKNOWN_ENVELOPE, WRONG_AGENCY, WRONG_ENVELOPE = "unknown_envelope", "wrong_agency", "wrong_envelope"


@dataclass
class ReceiptIntake:
    engine: Engine
    signer: x509.Certificate
    trust: TrustStore
    dropped_dir: Path
    counts: dict[str, int] = field(default_factory=dict)

    def take(self, path: Path) -> str:
        """Judge and file one published receipt; returns `stored`, `duplicate` or the drop label."""
        size = path.stat().st_size
        if size > MAX_RECEIPT_BYTES:
            return self._drop(path, "too_large", f"{size} bytes")
        der = path.read_bytes()
        try:
            receipt = read_receipt(der, signer=self.signer, trust=self.trust, moment=datetime.now(UTC))
            outcome = self._store(der, receipt)
        except ReceiptRejected as rejected:
            return self._drop(path, rejected.why, rejected.detail)
        path.unlink()
        self._count(outcome)
        log.info("receipt " + outcome, extra={"file": path.name, "tracking_id": receipt.tracking_id,
                                              "state": receipt.state})
        return outcome

    def _store(self, der: bytes, receipt: Receipt) -> str:
        digest = hashlib.sha256(der).hexdigest()
        with transaction(self.engine) as s:
            upload = s.scalar(select(Upload).where(Upload.tracking_id == receipt.tracking_id))
            if upload is None:
                raise ReceiptRejected(UNKNOWN_ENVELOPE, f"no upload has tracking id {receipt.tracking_id}")
            if upload.agency != receipt.agency:
                raise ReceiptRejected(WRONG_AGENCY, f"{receipt.tracking_id} belongs to {upload.agency}, "
                                                    f"the receipt names {receipt.agency}")
            if upload.sha256 != receipt.envelope_sha256:
                raise ReceiptRejected(WRONG_ENVELOPE, f"{receipt.tracking_id} was uploaded with another hash")
            if s.scalar(select(StoredReceipt.id).where(StoredReceipt.der_sha256 == digest)) is not None:
                return DUPLICATE
            s.add(StoredReceipt(der_sha256=digest, tracking_id=receipt.tracking_id, agency=receipt.agency,
                                state=receipt.state, issued_at=receipt.issued_at, stored_at=utcnow(),
                                document=receipt_document(receipt), der=der))
        return STORED

    def take_safely(self, path: Path) -> str:
        """`take`, where two intakes racing on one receipt store it once."""
        try:
            return self.take(path)
        except IntegrityError:
            path.unlink(missing_ok=True)
            self._count(DUPLICATE)
            return DUPLICATE

    def _drop(self, path: Path, why: str, detail: str) -> str:
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        publish(path, self.dropped_dir / f"{stamp}-{why}-{path.name}")
        self._count(why)
        log.warning("receipt dropped", extra={"file": path.name, "why": why, "detail": detail[:500]})
        return why

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def receipt_document(receipt: Receipt) -> dict:
    """The receipt's statement as stored for the status pages and API (the signed JSON, parsed)."""
    return json.loads(receipt.to_json())
