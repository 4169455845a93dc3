"""A refused envelope is mailed to its agency's contact (the one `tgw inner agency set
--contact` and the console keep), zh-TW first, English second: the tracking id, the reason
code, its layer and the message, and what to do.

Each refused receipt is mailed at most once: `intake_receipts.mailed_at` is set when the
server took the mail, or when the agency has no contact (then `mailed_to` is ""). A server
that refuses or cannot be reached leaves the rows for a later pass.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import Engine, select

from tgw_common.config import SmtpConfig
from tgw_common.db import transaction, utcnow
from tgw_common.mail import MailError, send
from tgw_common.reasons import REASONS
from tgw_common.receipts import Receipt, content_of

from .models import Agency, IssuedReceipt

log = logging.getLogger(__name__)
PER_PASS = 50


def refusal_message(row: IssuedReceipt, receipt: Receipt, contact: str, smtp: SmtpConfig) -> EmailMessage:
    document = {"reason": receipt.reason or "", "layer": receipt.layer or "", "message": receipt.message or ""}
    info = REASONS.get(document.get("reason", ""))
    title_zh, title_en = (info.zh, info.en) if info else (document.get("reason", ""), document.get("reason", ""))
    msg = EmailMessage()
    msg["Subject"] = (f"{smtp.subject_prefix} 信封被拒收 Envelope refused: {row.tracking_id} "
                      f"{document.get('reason', '')}")
    msg["From"] = smtp.sender
    msg["To"] = contact
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or "localhost")
    msg["X-TGW-Tracking-Id"] = row.tracking_id
    msg["X-TGW-Reason"] = document.get("reason", "")
    body = [
        f"機關 {row.agency} 上傳的信封未被國庫署受理。",
        f"追蹤編號：{row.tracking_id}",
        f"原因代碼：{document.get('reason', '')}（{title_zh}），層：{document.get('layer', '')}",
        f"說明：{document.get('message', '')}",
        "請修正後重新製作、簽章並上傳；收據可於入口網站下載。",
        "",
        f"The envelope agency {row.agency} uploaded was refused by the treasury.",
        f"Tracking id: {row.tracking_id}",
        f"Reason code: {document.get('reason', '')} ({title_en}), layer: {document.get('layer', '')}",
        f"Detail: {document.get('message', '')}",
        "Correct it, build, sign and upload it again; the signed receipt can be downloaded in the portal.",
        "",
        f"SHA-256: {row.sha256}",
        f"Receipt issued at {row.issued_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    msg.set_content("\n".join(body), charset="utf-8")
    return msg


def mail_refusals(engine: Engine, smtp: SmtpConfig) -> tuple[int, bool]:
    """Mail every refused receipt not mailed yet, one commit per mail (a crash re-mails at most
    one). Returns how many were settled (mailed, or found to have no contact) and whether the
    server failed (the rest waits for a later pass)."""
    with transaction(engine) as s:
        ids = s.scalars(select(IssuedReceipt.id).where(IssuedReceipt.state == "refused",
                                                       IssuedReceipt.mailed_at.is_(None))
                        .order_by(IssuedReceipt.id).limit(PER_PASS)).all()
    done = 0
    for receipt_id in ids:
        with transaction(engine) as s:
            row = s.get(IssuedReceipt, receipt_id)
            contact = s.scalar(select(Agency.contact).where(Agency.code == row.agency))
            if contact:
                try:
                    send(refusal_message(row, content_of(row.der), contact, smtp), smtp)
                except MailError as exc:
                    log.error("refusal mail not sent; trying again later",
                              extra={"tracking_id": row.tracking_id, "error": str(exc)})
                    return done, True
                log.info("refusal mailed", extra={"tracking_id": row.tracking_id, "to": contact})
            row.mailed_at, row.mailed_to = utcnow(), contact or ""
        done += 1
    return done, False
