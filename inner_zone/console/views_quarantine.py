"""Quarantine: refused and held envelopes, with retry and reject for one or several at once.

The actions are the inner zone's own (`retry_entry` / `reject_entry` in inner_zone/quarantine_ops.py,
with the `retried` / `rejected` provenance events, the functions `tgw inner quarantine` calls),
by "console:<username>"; each one is audited, including those that could not be done.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tgw_common.reasons import REASONS
from tgw_common.web.redirects import safe_next

from ..intake import HOP
from ..quarantine import ACTIVE, STATUSES, QuarantineError
from ..quarantine_ops import reject_entry, retry_entry
from .envelopes import fix_for, release_agency
from .web import console, me, record, require

bp = Blueprint("quarantine", __name__, url_prefix="/quarantine")
MAX_IDS = 200


@bp.get("")
def index():
    show_all = request.args.get("all") == "1"
    entries = console().quarantine.list(statuses=STATUSES if show_all else ACTIVE)
    entries.reverse()  # newest first
    for e in entries:
        e["fix"] = fix_for(e.get("reason"))
        e["agency"] = release_agency(console(), e)
    return render_template("quarantine.html", entries=entries, show_all=show_all, reasons=REASONS)


@bp.get("/<qid>")
def entry(qid: str):
    try:
        e = console().quarantine.get(qid)
    except QuarantineError as exc:
        return render_template("message.html", title=_("Not found"), kind="error", message=str(exc)), 404
    e["fix"] = fix_for(e.get("reason"))
    return render_template("quarantine_entry.html", e=e, reasons=REASONS)


def _ids() -> list[str]:
    ids = [i.strip() for i in request.form.getlist("ids") if i.strip()][:MAX_IDS]
    return list(dict.fromkeys(ids))


def _back():
    return redirect(safe_next(request.form.get("back")) or url_for("quarantine.index"))


def _act(ids: list[str], action: str, do, note: str | None, done_text: str, failed_text: str):
    """Apply `do(qid)` to each entry; every one is audited, done or not, and the page says which."""
    done, failed = [], []
    for qid in ids:
        try:
            e = do(qid)
        except QuarantineError as exc:
            failed.append(str(exc))
            record(action, target=qid, outcome="failed", note=note, error=str(exc))
            continue
        record(action, target=qid, note=note, sha256=e["sha256"], reason=e.get("reason"), agency=e.get("agency"))
        done.append(qid)
    if done:
        flash(_("%(what)s: %(ids)s", what=done_text, ids=", ".join(done)), "ok")
    for msg in failed:
        flash(_("%(what)s: %(error)s", what=failed_text, error=msg), "error")
    return _back()


@bp.post("/retry")
@require("operator", _l("retry quarantined envelopes"))
def retry():
    ids, note = _ids(), request.form.get("note", "").strip()[:500] or None
    if not ids:
        flash(_("Tick the envelopes to retry."), "error")
        return _back()
    c, by = console(), f"console:{me().username}"
    return _act(ids, "quarantine_retried", lambda qid: retry_entry(c.inner, qid, note=note, by=by, hop=HOP), note,
                _("Put back into the inbound queue"), _("Not retried"))


@bp.post("/reject")
@require("operator", _l("reject quarantined envelopes"))
def reject():
    ids, note = _ids(), request.form.get("note", "").strip()[:500]
    if not ids:
        flash(_("Tick the envelopes to reject."), "error")
        return _back()
    if not note:
        flash(_("A rejection needs a note saying why."), "error")
        return _back()
    c, by = console(), f"console:{me().username}"
    return _act(ids, "quarantine_rejected", lambda qid: reject_entry(c.inner, qid, note=note, by=by, hop=HOP), note,
                _("Rejected"), _("Not rejected"))
