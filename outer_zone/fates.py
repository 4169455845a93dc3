"""What became of an upload after it crossed: the receipts the inner zone sent back.

The latest `loaded`, `refused` or `held` receipt of a tracking id gives its fate (a held
envelope's later receipt replaces the held one); `payments` receipts add per-document
results, the latest result of a document winning. An upload sent longer ago than
`outer.receipt_overdue_minutes` without any fate receipt is overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tgw_common.events import EventRow

from .models import StoredReceipt, Upload

FATES = ("loaded", "refused", "held")


@dataclass
class Fate:
    state: str | None = None  # loaded | refused | held, None before any fate receipt
    reason: str | None = None
    layer: str | None = None
    message: str | None = None
    at: str | None = None  # the fate receipt's issued_at
    document_ids: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # document id -> its payment result
    receipts: int = 0

    @property
    def paid(self) -> int:
        return sum(1 for r in self.results.values() if r["result"] == "paid")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results.values() if r["result"] == "failed")

    def take(self, state: str, document: dict[str, Any], issued_at: str) -> None:
        self.receipts += 1
        if state in FATES:
            self.state, self.at = state, issued_at
            self.reason, self.layer, self.message = document.get("reason"), document.get("layer"), document.get("message")
            self.document_ids = list(document.get("document_ids", self.document_ids))
        elif state == "payments":
            for payment in document.get("payments", []):
                self.results[payment["document_id"]] = {**payment, "at": issued_at}


def fates(s: Session, agency: str, tracking_ids: Iterable[str]) -> dict[str, Fate]:
    """The fate of each of the agency's tracking ids that has a receipt (one query)."""
    ids = list(dict.fromkeys(tracking_ids))
    found: dict[str, Fate] = {}
    for start in range(0, len(ids), 500):
        rows = s.execute(select(StoredReceipt.tracking_id, StoredReceipt.state, StoredReceipt.document,
                                StoredReceipt.issued_at)
                         .where(StoredReceipt.agency == agency, StoredReceipt.tracking_id.in_(ids[start:start + 500]))
                         .order_by(StoredReceipt.issued_at, StoredReceipt.id))
        for tracking_id, state, document, issued_at in rows:
            found.setdefault(tracking_id, Fate()).take(state, document or {}, issued_at)
    return found


def latest_receipt(s: Session, agency: str, tracking_id: str) -> bytes | None:
    """The newest receipt of one of the agency's uploads, as signed (DER), or None."""
    return s.scalar(select(StoredReceipt.der)
                    .where(StoredReceipt.agency == agency, StoredReceipt.tracking_id == tracking_id)
                    .order_by(StoredReceipt.issued_at.desc(), StoredReceipt.id.desc()).limit(1))


def document_results(fate: Fate | None) -> list[dict[str, Any]]:
    """Each loaded document with its payment result (`pending` until one arrives)."""
    if fate is None:
        return []
    ids = list(dict.fromkeys([*fate.document_ids, *fate.results]))
    return [fate.results.get(doc, {"document_id": doc, "result": "pending"}) for doc in ids]


def overdue(s: Session, now: datetime, after: timedelta, limit: int = 20) -> tuple[int, list[str]]:
    """Accepted uploads sent longer than `after` ago without a fate receipt: (how many, the
    oldest `limit` tracking ids), for the monitor."""
    first_sent = (select(EventRow.tracking_id, func.min(EventRow.at).label("at"))
                  .where(EventRow.event == "sent").group_by(EventRow.tracking_id).subquery())
    settled = select(StoredReceipt.id).where(StoredReceipt.tracking_id == Upload.tracking_id,
                                             StoredReceipt.state.in_(FATES))
    late = (select(Upload.tracking_id).join(first_sent, first_sent.c.tracking_id == Upload.tracking_id)
            .where(Upload.state == "accepted", first_sent.c.at < now - after, ~settled.exists()))
    count = s.scalar(select(func.count()).select_from(late.subquery())) or 0
    ids = list(s.scalars(late.order_by(first_sent.c.at).limit(limit))) if count else []
    return count, ids
