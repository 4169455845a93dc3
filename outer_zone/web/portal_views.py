"""The agency's pages: upload, status and search, failed transmissions, certificates."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from tgw_common.reasons import Refusal

from ..intake import Uploader
from ..registration import RegistrationError, list_requests, submit
from ..status import STATES, Search, failed_transmissions, registered_certificates, search_uploads
from .helpers import TAIPEI, portal, refusal_json, require, status_of, who

bp = Blueprint("portal", __name__)


@bp.get("/")
def home():
    return redirect(url_for("portal.upload" if who().has("releaser") else "portal.status"))


@bp.get("/upload")
@require("releaser", "上傳信封", "upload envelopes")
def upload():
    return render_template("upload.html", max_bytes=portal().cfg.max_upload_bytes)


@bp.post("/upload")
@require("releaser", "上傳信封", "upload envelopes")
def upload_post():
    me = who()
    uploader = Uploader(me.id, me.username, me.agency, g.ip, "web")
    # The page's script posts the file itself as the body (like the API); without
    # script the browser sends a multipart form, parsed into upload_tmp by werkzeug.
    raw = request.mimetype != "multipart/form-data"
    try:
        if raw:
            result = portal().intake.receive(request.stream, content_length=request.content_length, who=uploader)
        else:
            part = request.files.get("envelope")
            stream = part.stream if part is not None and part.filename else io.BytesIO()
            result = portal().intake.receive(stream, content_length=None, who=uploader)
    except Refusal as refusal:
        if raw:
            return refusal_json(refusal)
        return render_template("upload.html", max_bytes=portal().cfg.max_upload_bytes, refusal=refusal), \
            status_of(refusal)
    if raw:
        return jsonify(result), 202
    return render_template("upload.html", max_bytes=portal().cfg.max_upload_bytes, result=result), 202


def _day(text: str | None, *, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD in Taipei time as a UTC bound (an end date includes its whole day)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        flash(f"日期格式應為 YYYY-MM-DD / dates are YYYY-MM-DD, not {text[:20]!r}", "error")
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=TAIPEI)
    return (start + timedelta(days=1) if end else start).astimezone(UTC)


@bp.get("/status")
def status():
    args = request.args
    state = args.get("state", "")
    search = Search(text=args.get("q", "")[:100], state=state if state in STATES else "",
                    since=_day(args.get("since")), until=_day(args.get("until"), end=True))
    rows = search_uploads(portal().engine, who().agency, search)
    return render_template("status.html", rows=rows, search=search, args=args, states=STATES)


@bp.get("/failed")
def failed():
    args = request.args
    minutes = portal().cfg.unsent_after_minutes
    since = _day(args.get("since")) or datetime.now(UTC) - timedelta(days=30)
    rows = failed_transmissions(portal().engine, who().agency, unsent_after=timedelta(minutes=minutes), since=since,
                                until=_day(args.get("until"), end=True))
    return render_template("failed.html", rows=rows, args=args, minutes=minutes, since=since)


def _certificates_page(error: str | None = None, status_code: int = 200):
    the_portal = portal()
    agency = who().agency
    certs = registered_certificates(the_portal.engine, agency, the_portal.cfg.cert_expiry_warning_days)
    requests_ = list_requests(the_portal.engine, status=None, agency=agency)
    return render_template("certificates.html", certs=certs, requests=requests_, error=error), status_code


@bp.get("/certificates")
def certificates():
    return _certificates_page()


def _local_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RegistrationError(f"時間格式錯誤 / not a date and time: {text[:30]!r}") from None
    return (value if value.tzinfo else value.replace(tzinfo=TAIPEI)).astimezone(UTC)


@bp.post("/certificates")
@require("admin", "申請憑證註冊", "request certificate registrations")
def certificates_post():
    me = who()
    form = request.form
    part = request.files.get("certificate")
    try:
        data = part.read(256 * 1024) if part is not None else b""
        row = submit(portal().engine, portal().opener().trust, agency=me.agency, role=form.get("role", ""),
                     cert_data=data, requested_by=me.username, ip=g.ip, delegate=form.get("delegate") == "on",
                     window_from=_local_datetime(form.get("window_from")),
                     window_until=_local_datetime(form.get("window_until")))
    except RegistrationError as exc:
        return _certificates_page(str(exc), 400)
    flash(f"已送出註冊申請 #{row.id}，待國庫署審核 / registration request #{row.id} sent for the treasury's "
          "approval", "ok")
    return redirect(url_for("portal.certificates"))
