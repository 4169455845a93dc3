"""The portal's batch pages: the agency's batches, entry by form or file, a batch with
its documents and history, and its print view.

Entry goes through outer_zone.batches.import_documents exactly like the API's, so a form
is judged by the inner zone's validators and answered with every error at its input;
nothing is stored until the whole batch passes.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tgw_common.db import transaction
from tgw_common.documents import KINDS, document_amount
from tgw_common.reasons import Layer, Refusal
from tgw_common.web.headers import CSP

from ..batches import (
    STEP_ROLE,
    BatchAuthor,
    BatchNotFound,
    FileUnreadable,
    batch_documents,
    batch_view,
    import_documents,
    list_batches,
)
from ..batches.store import CSV_TYPE, JSON_TYPE
from ..batches.workflow import EDITABLE, PREPARERS
from ..models import Agency
from . import batch_form
from .helpers import TAIPEI, portal, require, status_of, who

bp = Blueprint("batches", __name__, url_prefix="/batches")

# The batch page talks to the officer's local signing service (docs/agency-workflow.md) from
# the browser: only that page may connect to a loopback address, any port.
SIGNING_CSP = CSP.replace("connect-src 'self'", "connect-src 'self' http://127.0.0.1:* http://localhost:*")
# Who may create a batch, in the order the history names the role (the workflow's own list).
PREPARE_ROLES = PREPARERS
STATE_NAMES = {
    "draft": _l("draft"), "returned": _l("returned"), "review": _l("to review"),
    "accountant": _l("to the accountant"), "head": _l("to the head"),
    "releaser": _l("to the releaser"), "released": _l("released"),
}
ACTION_NAMES = {
    "imported": _l("imported"), "entered": _l("entered"), "changed": _l("changed"), "submitted": _l("submitted"),
    "reviewed": _l("reviewed"), "returned": _l("returned"), "signed": _l("signed"),
    "signatures_discarded": _l("signatures discarded"), "sealed": _l("sealed"), "released": _l("released"),
    "purged": _l("purged"),
}
# The paper voucher's signature lines, in signing order.
PAPER_SIGNERS = (_l("preparer"), _l("reviewer"), _l("chief accountant"), _l("agency head"))


@bp.app_template_filter("ntd")
def ntd(value: Any) -> str:
    """An amount as NT$ digits with thousands separators (digit strings too)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def may_prepare(view):
    """helpers.require for whichever of the preparing roles the user holds."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        role = next((r for r in PREPARE_ROLES if who().has(r)), PREPARE_ROLES[0])
        return require(role, _l("create batches"))(view)(*args, **kwargs)

    return wrapper


def _today():
    return datetime.now(TAIPEI).date()


def _author(action: str = "imported") -> BatchAuthor:
    me = who()
    return BatchAuthor(me.username, me.agency, next(r for r in PREPARE_ROLES if me.has(r)), action)


def _page_context() -> dict[str, Any]:
    return {"state_names": STATE_NAMES, "action_names": ACTION_NAMES, "kinds": KINDS,
            "kind_name": batch_form.kind_name, "fields": batch_form.kind_fields,
            "choice_names": batch_form.CHOICE_NAMES, "paper_signers": PAPER_SIGNERS,
            "may_prepare": any(who().has(r) for r in PREPARE_ROLES)}


# --- the agency's batches
@bp.get("")
def index():
    rows = list_batches(portal().engine, who().agency, limit=500)
    for row in rows:
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return render_template("batches/index.html", rows=rows, **_page_context())


# --- entry by form or file
def _new_page(states: list[batch_form.DocState], *, status: int = 200, general: list[str] | None = None,
              file_errors: list[dict[str, Any]] | None = None, edit: dict[str, Any] | None = None):
    action = url_for("batches.edit_post", batch_id=edit["batch_id"]) if edit else url_for("batches.new_post")
    return render_template("batches/new.html", states=states, general=general or [], file_errors=file_errors,
                           form_kinds=batch_form.form_kinds(), edit=edit, form_action=action,
                           **_page_context()), status


@bp.get("/new")
@may_prepare
def new():
    kind = request.args.get("kind", "payment_voucher")
    kind = kind if kind in KINDS else "payment_voucher"
    return _new_page([_blank(kind)])


def _blank(kind: str) -> batch_form.DocState:
    return batch_form.blank(kind, agency=who().agency, fiscal_year=_today().year - 1911)


def _apply_op(states: list[batch_form.DocState], op: str) -> bool:
    """A button of the form that changes the form itself (without script); True if it was one."""
    name, _, arg = op.partition(":")
    parts = arg.split(":")
    try:
        if name == "add-doc":
            kind = request.form.get("add_kind", "")
            if kind in KINDS and len(states) < batch_form.MAX_DOCUMENTS:
                states.append(_blank(kind))
        elif name == "remove-doc":
            del states[int(parts[0])]
        elif name == "add-row":
            batch_form.add_row(states[int(parts[0])], parts[1])
        elif name == "remove-row":
            batch_form.remove_row(states[int(parts[0])], parts[1], int(parts[2]))
        else:
            return False
    except (IndexError, ValueError):
        pass  # a forged or stale button: the form comes back as it was
    return True


def _read_entry(edit: dict[str, Any] | None = None):
    """The posted form: (states, the documents as the JSON array to import, None), or
    (states, None, the page to answer at once) for a change of the form or an empty batch."""
    states = batch_form.read_form(request.form)
    if _apply_op(states, request.form.get("op", "save")):
        return states, None, _new_page(states, edit=edit)
    for state in states:
        batch_form.drop_blank_rows(state)
    if not states:
        general = [_("a batch needs at least one document")]
        return states, None, _new_page(states, status=422, edit=edit, general=general)
    return states, json.dumps([batch_form.to_document(s) for s in states], ensure_ascii=False).encode(), None


@bp.post("/new")
@may_prepare
def new_post():
    states, body, answer = _read_entry()
    if answer is not None:
        return answer
    try:
        result = import_documents(portal().engine, body, JSON_TYPE, who=_author("entered"),
                                  limits=portal().config.documents, today=_today())
    except FileUnreadable as exc:
        return _new_page(states, status=422, general=[str(exc)])
    if result.errors:
        return _new_page(states, status=422, general=batch_form.attach_errors(states, result.errors))
    flash(_("draft batch #%(id)s created (%(n)s documents)", id=result.batch_id, n=len(states)), "ok")
    return redirect(url_for("batches.detail", batch_id=result.batch_id))


def _file_type(part) -> str:
    name = (part.filename or "").lower()
    if name.endswith(".csv"):
        return CSV_TYPE
    if name.endswith(".json"):
        return JSON_TYPE
    return part.mimetype or ""


@bp.post("/import")
@may_prepare
def import_file():
    part = request.files.get("file")
    default = [_blank("payment_voucher")]
    if part is None or not part.filename:
        return _new_page(default, status=422, file_errors=[
            {"document": None, "field": "", "code": "EMPTY_UPLOAD", "message": _("choose a file")}])
    try:
        result = import_documents(portal().engine, part.read(), _file_type(part), who=_author(),
                                  limits=portal().config.documents, today=_today())
    except FileUnreadable as exc:
        return _new_page(default, status=422, file_errors=[exc.as_error().as_dict()])
    if result.errors:
        return _new_page(default, status=422, file_errors=[e.as_dict() for e in result.errors])
    flash(_("draft batch #%(id)s imported from %(file)s", id=result.batch_id, file=part.filename), "ok")
    return redirect(url_for("batches.detail", batch_id=result.batch_id))


# --- one batch
def _documents(batch_id: int) -> list[dict[str, Any]]:
    docs = batch_documents(portal().engine, who().agency, batch_id)
    if docs is None:
        abort(404)
    for doc in docs:
        doc["key"] = key_fields(doc["kind"], doc["document"])
    return docs


def key_fields(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What the documents table shows of a document: its number, date, counterpart and amount."""
    spec = KINDS[kind]
    date = next((doc.get(f.key) for f in batch_form.kind_fields(kind) if f.widget == "date" and doc.get(f.key)), "")
    lines = doc.get(spec.payees_field) if spec.payees_field else None
    if isinstance(lines, list):
        first = lines[0].get("name", "") if lines else ""
        whom = _("%(name)s and others (%(n)s lines)", name=first, n=len(lines)) if len(lines) > 1 else first
    elif isinstance(lines, dict):
        whom = lines.get("name", "")
    else:
        whom = doc.get("payer_name") or doc.get("payee_name") or doc.get("original_voucher_no") or ""
    try:
        amount = document_amount(kind, doc)
    except (KeyError, ValueError):
        amount = None
    return {"number": doc.get(spec.number_field, ""), "date": date, "whom": whom, "amount": amount}


def _batch_or_404(batch_id: int) -> dict[str, Any]:
    view = batch_view(portal().engine, who().agency, batch_id)
    if view is None:
        abort(404)
    view["created_at"] = datetime.fromisoformat(view["created_at"])
    for event in view["history"]:
        event["at"] = datetime.fromisoformat(event["at"])
    view["signatures"] = [{**x, "signed_at": _moment(x.get("signing_time"))}
                          for x in (view.get("envelope") or {}).get("signatures", [])]
    return view


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def actions_for(view: dict[str, Any]) -> dict[str, Any]:
    """What the signed-in user may do with the batch at its step (the workflow decides again)."""
    me, state = who(), view["state"]
    preparer = any(me.has(r) for r in PREPARE_ROLES)
    step_role = STEP_ROLE.get(state)
    return {
        "submit": (state in ("draft", "returned") and preparer) or (state == "review" and me.has("reviewer")),
        "return": step_role is not None and me.has(step_role),
        "sign": state if state in ("accountant", "head") and me.has(state) else None,
        "release": state == "releaser" and me.has("releaser"),
        "edit": state in EDITABLE and preparer,
    }


def detail_page(batch_id: int, *, refusal: Refusal | None = None):
    view = _batch_or_404(batch_id)
    docs = _documents(batch_id)
    page = render_template("batches/detail.html", batch=view, docs=docs, actions=actions_for(view), refusal=refusal,
                           **_page_context())
    return page, status_of(refusal) if refusal else 200, {"Content-Security-Policy": SIGNING_CSP}


@bp.get("/<int:batch_id>")
def detail(batch_id: int):
    return detail_page(batch_id)


@bp.get("/<int:batch_id>/print")
def print_view(batch_id: int):
    view = _batch_or_404(batch_id)
    with transaction(portal().engine) as s:
        agency = s.get(Agency, view["agency"])
        agency_name = agency.name if agency else ""
    return render_template("batches/print.html", batch=view, docs=_documents(batch_id), agency_name=agency_name,
                           printed_at=datetime.now(TAIPEI), **_page_context())


# --- editing a batch: the same form, the workflow replaces the documents
@bp.get("/<int:batch_id>/edit")
@may_prepare
def edit(batch_id: int):
    view = _batch_or_404(batch_id)
    if view["state"] not in EDITABLE:
        raise Refusal("BATCH_WRONG_STATE", Layer.BATCH,
                      _("batch %(id)s is released and cannot be changed", id=batch_id))
    states = [batch_form.from_document(d["document"]) for d in _documents(batch_id) if d["document"]]
    return _new_page(states, edit=view)


@bp.post("/<int:batch_id>/edit")
@may_prepare
def edit_post(batch_id: int):
    view = _batch_or_404(batch_id)
    states, body, answer = _read_entry(view)
    if answer is not None:
        return answer
    try:
        result = portal().workflow.replace_documents(who(), batch_id, body, JSON_TYPE, today=_today())
    except FileUnreadable as exc:
        return _new_page(states, status=422, edit=view, general=[str(exc)])
    except BatchNotFound:
        abort(404)
    if result.errors:
        return _new_page(states, status=422, edit=view, general=batch_form.attach_errors(states, result.errors))
    flash(_("batch #%(id)s changed: it is a draft again", id=batch_id), "ok")
    return redirect(url_for("batches.detail", batch_id=batch_id))


from . import batch_steps  # noqa: E402, F401 - the routing steps' routes join this blueprint
