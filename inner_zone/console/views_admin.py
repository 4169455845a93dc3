"""Agencies (mode, e-payment limit, contact), reports with CSV and PDF, the audit log, users."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from tgw_common.db import transaction

from .. import agencies as agency_settings
from ..models import MODES, Envelope
from . import audit, reports
from .accounts import list_users
from .timefmt import today
from .web import console, me, parse_day, record, require

bp = Blueprint("admin", __name__)


# ------------------------------------------------------------------ agencies
@bp.get("/agencies")
def agencies():
    c = console()
    rows = {r.code: r.as_dict() for r in agency_settings.list_agencies(c.engine)}
    seen = {s.agency for s in c.registry.list()}
    with transaction(c.engine) as s:
        seen |= set(s.scalars(select(Envelope.agency).distinct()))
    for code in sorted(seen - set(rows)):
        rows[code] = {"code": code, "mode": None, "epayment_limit": None, "contact": None, "created_at": None,
                      "updated_at": None}
    return render_template("agencies.html", rows=[rows[k] for k in sorted(rows)], modes=MODES,
                           default_mode=c.config.inner.default_agency_mode,
                           default_limit=c.config.documents.epayment_limit)


@bp.post("/agencies")
@require("administrator", _l("change agency settings"))
def set_agency():
    c = console()
    form = request.form
    code = form.get("code", "").strip().upper()[:16]
    mode = form.get("mode") or None
    limit_text = form.get("epayment_limit", "").replace(",", "").strip()
    contact = form.get("contact", "").strip()[:254]
    before = next((r.as_dict() for r in agency_settings.list_agencies(c.engine) if r.code == code), None)
    try:
        limit = None
        if limit_text:
            if not limit_text.isdigit():
                raise agency_settings.AgencyError(_("the limit %(limit)s is not a whole NT$ amount",
                                                    limit=repr(limit_text)))
            limit = int(limit_text)
        row = agency_settings.set_agency(c.engine, code, mode=mode, epayment_limit=limit, clear_limit=not limit_text,
                                         contact=contact, default_mode=c.config.inner.default_agency_mode)
    except agency_settings.AgencyError as exc:
        record("agency_updated", target=code or None, outcome="refused", error=str(exc))
        flash(_("Not changed: %(error)s", error=exc), "error")
        return redirect(url_for("admin.agencies"))
    after = row.as_dict()
    changed = {k: {"from": (before or {}).get(k), "to": after[k]} for k in ("mode", "epayment_limit", "contact")
               if (before or {}).get(k) != after[k]}
    record("agency_updated", target=code, changes=changed, created=before is None)
    limit = _("default limit") if row.epayment_limit is None else f"NT$ {row.epayment_limit:,}"
    flash(_("%(code)s: updated (%(mode)s, %(limit)s)", code=code, mode=row.mode, limit=limit), "ok")
    return redirect(url_for("admin.agencies"))


# ------------------------------------------------------------------ reports
def _range() -> tuple:
    until = parse_day(request.args.get("until")) or today()
    start = parse_day(request.args.get("from")) or until - timedelta(days=6)
    return start, until, request.args.get("agency", "").strip().upper()[:16]


@bp.get("/reports")
def reports_page():
    start, until, agency = _range()
    try:
        rows = reports.totals(console(), start, until, agency)
        rec = reports.reconciliation(console(), start, until)
    except reports.ReportError as exc:
        flash(str(exc), "error")
        start = until
        rows, rec = reports.totals(console(), start, until, agency), reports.reconciliation(console(), start, until)
    sums = {"envelopes": sum(r["envelopes"] for r in rows), "documents": sum(r["documents"] for r in rows),
            "amount": sum(r["amount"] for r in rows)}
    return render_template("reports.html", rows=rows, rec=rec, start=start, until=until, agency=agency, sums=sums)


@bp.get("/reports/export.<fmt>")
def export(fmt: str):
    if fmt not in ("csv", "pdf", "reconciliation.csv"):
        return redirect(url_for("admin.reports_page"))
    start, until, agency = _range()
    try:
        rows = reports.totals(console(), start, until, agency)
        rec = reports.reconciliation(console(), start, until)
    except reports.ReportError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.reports_page"))
    stem = f"tgw-report-{start}-{until}{('-' + agency) if agency else ''}"
    if fmt == "csv":
        body, mime, name = reports.totals_csv(rows), "text/csv; charset=utf-8", f"{stem}.csv"
    elif fmt == "reconciliation.csv":
        body, mime, name = reports.reconciliation_csv(rec), "text/csv; charset=utf-8", f"{stem}-reconciliation.csv"
    else:
        body = reports.pdf(rows, rec, day_from=start, day_until=until, agency=agency, printed_by=me().username)
        mime, name = "application/pdf", f"{stem}.pdf"
    record("report_exported", target=name, format=fmt, start=str(start), until=str(until), agency=agency or None)
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ------------------------------------------------------------------ audit log and users
@bp.get("/audit")
@require("administrator", _l("read the audit log"))
def audit_log():
    args = request.args
    actor, action = args.get("actor", "").strip()[:64], args.get("action", "").strip()[:32]
    page = max(1, int(args.get("page", "1")) if args.get("page", "1").isdigit() else 1)
    since, until = parse_day(args.get("from")), parse_day(args.get("until"))
    from .timefmt import day_bounds

    entries, total = audit.search(console().engine, actor=actor or None, action=action or None,
                                  since=day_bounds(since)[0] if since else None,
                                  until=day_bounds(until)[1] if until else None, limit=100, offset=(page - 1) * 100)
    for entry in entries:
        entry["changes"] = audit.changes(entry["detail"])
        entry["detail"] = {k: v for k, v in entry["detail"].items() if k not in ("before", "after")}
    return render_template("audit.html", entries=entries, total=total, page=page, actor=actor, action=action,
                           actions=sorted(audit.ACTIONS), since=args.get("from", ""), until_=args.get("until", ""))


@bp.get("/users")
@require("administrator", _l("list console users"))
def users():
    return render_template("users.html", users=list_users(console().engine))
