"""One upload's page: its fate from the inner zone's receipts, each document's payment
result (回饋帳務資訊), and the newest receipt to download and verify."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort, render_template

from ..status import upload_receipt, upload_status
from .helpers import portal, who

bp = Blueprint("envelopes", __name__)


def receipt_overdue() -> timedelta:
    return timedelta(minutes=portal().cfg.receipt_overdue_minutes)


@bp.get("/status/<tracking_id>")
def detail(tracking_id: str):
    view = upload_status(portal().engine, who().agency, tracking_id[:64], receipt_overdue=receipt_overdue())
    if view is None:
        abort(404)
    return render_template("envelope.html", view=view)


@bp.get("/status/<tracking_id>/receipt")
def receipt(tracking_id: str):
    der = upload_receipt(portal().engine, who().agency, tracking_id[:64])
    if der is None:
        abort(404)
    return Response(der, mimetype="application/pkcs7-mime", headers={
        "Content-Disposition": f'attachment; filename="{tracking_id[:64]}.receipt.p7s"'})
