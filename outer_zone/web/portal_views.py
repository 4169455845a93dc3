"""The agency's pages: upload, status and search, failed transmissions, certificates."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tgw_common.reasons import Refusal
from tgw_common.registry import ROLES as SIGNER_ROLES
from tgw_common.web import headers

from .. import audit
from ..accounts import Principal
from ..intake import Uploader
from ..registration import RegistrationError, list_requests, submit
from ..status import STATES, Search, failed_transmissions, registered_certificates, search_uploads
from .envelope_views import receipt_overdue
from .helpers import TAIPEI, forbidden, portal, refusal_json, refusal_page, refuse, require, status_of, wants_json, who

bp = Blueprint("portal", __name__)


@bp.get("/")
def home():
    return redirect(url_for("portal.upload" if who().has("releaser") else "portal.status"))


@bp.get("/upload")
@require("releaser", _l("upload envelopes"))
def upload():
    return render_template("upload.html", max_bytes=portal().cfg.max_upload_bytes)


@bp.post("/upload")
@require("releaser", _l("upload envelopes"))
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
        flash(_("dates are YYYY-MM-DD, not %(text)s", text=repr(text[:20])), "error")
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=TAIPEI)
    return (start + timedelta(days=1) if end else start).astimezone(UTC)


@bp.get("/status")
def status():
    args = request.args
    state = args.get("state", "")
    search = Search(text=args.get("q", "")[:100], state=state if state in STATES else "",
                    since=_day(args.get("since")), until=_day(args.get("until"), end=True))
    rows = search_uploads(portal().engine, who().agency, search, receipt_overdue=receipt_overdue())
    return render_template("status.html", rows=rows, search=search, args=args, states=STATES)


@bp.get("/failed")
def failed():
    args = request.args
    minutes = portal().cfg.unsent_after_minutes
    since = _day(args.get("since")) or datetime.now(UTC) - timedelta(days=30)
    rows = failed_transmissions(portal().engine, who().agency, unsent_after=timedelta(minutes=minutes), since=since,
                                until=_day(args.get("until"), end=True))
    return render_template("failed.html", rows=rows, args=args, minutes=minutes, since=since)


# The card part of /certificates fetches the certificate from the officer's own signing
# service, which listens on 127.0.0.1 only (any port: the officer may change it).
CARD_CSP = headers.CSP.replace("connect-src 'self'", "connect-src 'self' http://127.0.0.1:*")


def registrable_roles(me: Principal) -> list[str]:
    """The agency administrator registers for any signing role; an officer for their own role
    (or one delegated to them right now) only."""
    return list(SIGNER_ROLES) if me.has("admin") else [r for r in SIGNER_ROLES if me.has(r)]


def _certificates_page(error: str | None = None, status_code: int = 200):
    the_portal = portal()
    me = who()
    certs = registered_certificates(the_portal.engine, me.agency, the_portal.cfg.cert_expiry_warning_days)
    requests_ = list_requests(the_portal.engine, status=None, agency=me.agency)
    page = render_template("certificates.html", certs=certs, requests=requests_, error=error,
                           roles=registrable_roles(me), form=request.form if error else {})
    return page, status_code, {"Content-Security-Policy": CARD_CSP}


@bp.get("/certificates")
def certificates():
    return _certificates_page()


def _local_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RegistrationError(_("not a date and time: %(text)s", text=repr(text[:30]))) from None
    return (value if value.tzinfo else value.replace(tzinfo=TAIPEI)).astimezone(UTC)


def _given_certificate() -> tuple[bytes, str]:
    """The certificate and where it came from: the PEM the page read from the officer's card, or a file."""
    pem = request.form.get("certificate_pem", "").strip()
    part = request.files.get("certificate")
    data = part.read(256 * 1024) if part is not None and part.filename else b""
    if pem and data:
        raise RegistrationError(_("give the card's certificate or a file, not both"))
    return (pem.encode(), "card") if pem else (data, "file")


def _refuse_registration(role: str):
    me = who()
    audit.record(portal().engine, "forbidden", actor=me.username, agency=me.agency, ip=g.ip, outcome="refused",
                 reason="FORBIDDEN", target=request.path, role=role[:16])
    if not registrable_roles(me):
        refusal = forbidden(_l("request certificate registrations"))
    else:
        refusal = refuse("FORBIDDEN", _("you may request registrations for your own role only (%(roles)s)",
                                        roles=", ".join(registrable_roles(me))))
    return refusal_json(refusal) if wants_json() else refusal_page(refusal)


@bp.post("/certificates")
def certificates_post():
    me = who()
    form = request.form
    role = form.get("role", "")
    allowed = registrable_roles(me)
    if not allowed or (role in SIGNER_ROLES and role not in allowed):
        return _refuse_registration(role)
    try:
        data, via = _given_certificate()
        row = submit(portal().engine, portal().opener().trust, agency=me.agency, role=role, cert_data=data,
                     requested_by=me.username, ip=g.ip, delegate=form.get("delegate") == "on",
                     window_from=_local_datetime(form.get("window_from")),
                     window_until=_local_datetime(form.get("window_until")),
                     replacing=form.get("kind") == "replace", replaces=form.get("replaces") or None, via=via)
    except RegistrationError as exc:
        return _certificates_page(str(exc), 400)
    if row.replaces:
        flash(_("replacement registration request #%(id)s sent for the treasury's approval", id=row.id), "ok")
    else:
        flash(_("registration request #%(id)s sent for the treasury's approval", id=row.id), "ok")
    return redirect(url_for("portal.certificates"))
