"""What an agency sees of its uploads: accepted, sent, then loaded, refused or held as the
inner zone's receipts say, or overdue; the failed-transmission query (無法傳輸憑單查詢);
and warnings before its registered certificates expire.

"sent" is not a column: it is the transfer sender's provenance event "sent" for the
tracking id, in the same outer database. Only that event name is relied upon. The fate
comes from the stored receipts (outer_zone/fates.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from tgw_common.db import transaction, utcnow
from tgw_common.events import EventRow
from tgw_common.registry import SignerRegistry

from .fates import Fate, document_results, fates, latest_receipt
from .models import Upload

STATES = ("accepted", "sent", "loaded", "refused", "held", "overdue")
MAX_ROWS = 500


def _sent_at():
    return (select(func.min(EventRow.at))
            .where(EventRow.event == "sent", EventRow.tracking_id == Upload.tracking_id)
            .correlate(Upload).scalar_subquery())


def _view(row: Upload, sent_at: datetime | None, *, unsent_after: timedelta | None = None,
          now: datetime | None = None, fate: Fate | None = None,
          receipt_overdue: timedelta | None = None) -> dict[str, Any]:
    state = "refused" if row.state == "refused" else "sent" if sent_at else "accepted"
    overdue = bool(unsent_after and state == "accepted" and now and now - row.received_at > unsent_after)
    reason, message, layer = row.reason, row.message, "upload" if row.state == "refused" else None
    if state != "refused" and fate is not None and fate.state is not None:
        state, reason, layer, message = fate.state, fate.reason, fate.layer, fate.message
    elif state == "sent" and receipt_overdue and now and now - sent_at > receipt_overdue:
        state = "overdue"
    return {"tracking_id": row.tracking_id, "state": state, "received_at": row.received_at, "sent_at": sent_at,
            "user": row.username, "via": row.via, "client_ip": row.client_ip, "size": row.size,
            "sha256": row.sha256, "reason": reason, "layer": layer, "message": message, "releaser": row.releaser,
            "overdue": overdue, "fate_at": fate.at if fate else None, "paid": fate.paid if fate else 0,
            "failed": fate.failed if fate else 0, "receipts": fate.receipts if fate else 0}


def _views(s, rows, agency: str, **kw) -> list[dict[str, Any]]:
    known = fates(s, agency, [row.tracking_id for row, _at in rows])
    return [_view(row, at, fate=known.get(row.tracking_id), **kw) for row, at in rows]


@dataclass(frozen=True)
class Search:
    text: str = ""  # a tracking id, SHA-256 or user name, or the start of one
    state: str = ""  # "" or one of STATES
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200


def search_uploads(engine: Engine, agency: str, search: Search, *,
                   receipt_overdue: timedelta | None = None) -> list[dict[str, Any]]:
    sent_at = _sent_at().label("sent_at")
    q = select(Upload, sent_at).where(Upload.agency == agency)
    text = search.text.strip()
    if text:
        q = q.where(or_(Upload.tracking_id.startswith(text, autoescape=True),
                        Upload.sha256.startswith(text.lower(), autoescape=True),
                        Upload.username == text))
    # Which upload-level state the wanted state can have; the rest is judged on the views,
    # since loaded, held and overdue come from receipts and clocks, not columns.
    if search.state == "accepted":
        q = q.where(Upload.state == "accepted", _sent_at().is_(None))
    elif search.state in ("sent", "loaded", "held", "overdue"):
        q = q.where(Upload.state == "accepted", _sent_at().is_not(None))
    if search.since:
        q = q.where(Upload.received_at >= search.since)
    if search.until:
        q = q.where(Upload.received_at < search.until)
    limit = min(search.limit, MAX_ROWS)
    q = q.order_by(Upload.received_at.desc(), Upload.id.desc()).limit(MAX_ROWS if search.state else limit)
    with transaction(engine) as s:
        views = _views(s, s.execute(q).all(), agency, now=utcnow(), receipt_overdue=receipt_overdue)
    return [v for v in views if not search.state or v["state"] == search.state][:limit]


def failed_transmissions(engine: Engine, agency: str, *, unsent_after: timedelta, since: datetime | None = None,
                         until: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Refused uploads, and accepted ones the sender has not sent within `unsent_after`."""
    now = utcnow()
    sent_at = _sent_at().label("sent_at")
    late = and_(Upload.state == "accepted", Upload.received_at < now - unsent_after, _sent_at().is_(None))
    q = select(Upload, sent_at).where(Upload.agency == agency, or_(Upload.state == "refused", late))
    if since:
        q = q.where(Upload.received_at >= since)
    if until:
        q = q.where(Upload.received_at < until)
    q = q.order_by(Upload.received_at.desc(), Upload.id.desc()).limit(min(limit, MAX_ROWS))
    with transaction(engine) as s:
        return _views(s, s.execute(q).all(), agency, unsent_after=unsent_after, now=now)


def upload_status(engine: Engine, agency: str, tracking_id: str, *,
                  receipt_overdue: timedelta | None = None) -> dict[str, Any] | None:
    """One upload's view, with its documents' payment results (`documents`)."""
    with transaction(engine) as s:
        row = s.execute(select(Upload, _sent_at().label("sent_at"))
                        .where(Upload.agency == agency, Upload.tracking_id == tracking_id)).first()
        if row is None:
            return None
        fate = fates(s, agency, [tracking_id]).get(tracking_id)
    view = _view(row[0], row[1], now=utcnow(), fate=fate, receipt_overdue=receipt_overdue)
    return {**view, "documents": document_results(fate)}


def upload_receipt(engine: Engine, agency: str, tracking_id: str) -> bytes | None:
    """The newest receipt of one of the agency's uploads (DER), or None."""
    with transaction(engine) as s:
        return latest_receipt(s, agency, tracking_id)


def as_json(view: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in view.items()}


def registered_certificates(engine: Engine, agency: str, warning_days: int) -> list[dict[str, Any]]:
    """The agency's live registrations, each marked expired / expiring within `warning_days`."""
    now = utcnow()
    out = []
    for signer in SignerRegistry(engine).list(agency=agency, include_revoked=False):
        days_left = (signer.not_after - now).total_seconds() / 86400
        out.append({**signer.as_dict(), "not_after_dt": signer.not_after, "days_left": int(days_left),
                    "expired": days_left < 0, "expiring": 0 <= days_left <= warning_days})
    return out


def certificate_warnings(engine: Engine, agency: str, warning_days: int) -> list[dict[str, Any]]:
    """The seed's rule: warn one month (warning_days) before any registered certificate expires."""
    return [c for c in registered_certificates(engine, agency, warning_days) if c["expired"] or c["expiring"]]
