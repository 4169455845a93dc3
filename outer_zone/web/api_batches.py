"""The batch routes of the agencies' API (docs/api.md, "Batches"): import, change, route, sign, release.

They hang on the API blueprint, so the same authentication runs first (bearer token, the
agency's allow-list, an officer's role) and nothing of a body is read before it. Which step
a user may take is the workflow's decision (outer_zone.batches.workflow), not the route's.
"""

from __future__ import annotations

from datetime import datetime

from flask import Response, g, jsonify, request
from flask_babel import gettext as _

from tgw_common.reasons import Refusal

from ..batches import BatchAuthor, BatchNotFound, FileUnreadable, batch_view, import_documents, list_batches
from ..batches.workflow import PREPARERS
from .api import authenticate, bp
from .helpers import TAIPEI, portal, refuse

# Every officer may read the agency's batches; the workflow decides who may act at each step.
OFFICERS = ("preparer", "reviewer", "accountant", "head", "releaser")
CMS_TYPE = "application/pkcs7-mime"
STATES = ("draft", "returned", "review", "accountant", "head", "releaser", "released")


def _not_found(batch_id: int, agency: str):
    response = jsonify({"error": "Not Found", "message": _("no batch %(id)s for agency %(agency)s", id=batch_id,
                                                                   agency=agency)})
    response.status_code = 404
    return response


@bp.errorhandler(BatchNotFound)
def _no_batch(exc: BatchNotFound):
    return _not_found(exc.args[0], g.who.agency)


def _body(what: str) -> bytes:
    """The request body, at most outer.max_upload_bytes (read only after authentication);
    `what` names it in the answer's language (_("batch file"))."""
    limit = portal().cfg.max_upload_bytes
    too_large = _("the %(what)s is larger than %(limit)s bytes", what=what, limit=limit)
    if request.content_length is not None and request.content_length > limit:
        raise refuse("UPLOAD_TOO_LARGE", too_large)
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise refuse("UPLOAD_TOO_LARGE", too_large)
    if not data:
        raise refuse("EMPTY_UPLOAD", _("the request carried no %(what)s", what=what))
    return data


def _cms_body(what: str) -> bytes:
    if request.mimetype != CMS_TYPE:
        raise refuse("WRONG_MEDIA_TYPE", _("send the %(what)s as %(type)s (DER), not %(given)s", what=what,
                                           type=CMS_TYPE, given=request.mimetype or _("no type")))
    return _body(what)


def _today():
    return datetime.now(TAIPEI).date()


def _view(batch_id: int, status: int = 200):
    response = jsonify(batch_view(portal().engine, g.who.agency, batch_id))
    response.status_code = status
    return response


@bp.post("/batches")
def create_batch():
    who = authenticate(PREPARERS)
    data = _body(_("batch file"))
    author = BatchAuthor(who.username, who.agency, next(r for r in PREPARERS if who.has(r)))
    try:
        result = import_documents(portal().engine, data, request.content_type or "", who=author,
                                  limits=portal().config.documents, today=_today())
    except FileUnreadable as exc:
        return jsonify({"errors": [exc.as_error().as_dict()]}), 422
    if result.errors:  # nothing was stored: the batch's own history starts only with a draft
        return jsonify({"errors": [e.as_dict() for e in result.errors]}), 422
    response = jsonify({"batch_id": result.batch_id, "state": "draft", "errors": []})
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/batches/{result.batch_id}"
    return response


@bp.get("/batches")
def batches():
    who = authenticate(OFFICERS)
    state = request.args.get("state", "")
    if state and state not in STATES:
        return jsonify({"error": "Bad Request", "message": f"state must be one of {', '.join(STATES)}"}), 400
    return jsonify({"batches": list_batches(portal().engine, who.agency, state=state or None)})


@bp.get("/batches/<int:batch_id>")
def batch(batch_id: int):
    who = authenticate(OFFICERS)
    view = batch_view(portal().engine, who.agency, batch_id)
    return _not_found(batch_id, who.agency) if view is None else jsonify(view)


@bp.put("/batches/<int:batch_id>/documents")
def replace_documents(batch_id: int):
    who = authenticate(OFFICERS)
    data = _body(_("batch file"))
    try:
        result = portal().workflow.replace_documents(who, batch_id, data, request.content_type or "", today=_today())
    except FileUnreadable as exc:
        return jsonify({"errors": [exc.as_error().as_dict()]}), 422
    if result.errors:
        return jsonify({"errors": [e.as_dict() for e in result.errors]}), 422
    return _view(batch_id)


@bp.post("/batches/<int:batch_id>/submit")
def submit(batch_id: int):
    who = authenticate(OFFICERS)
    portal().workflow.submit(who, batch_id)
    return _view(batch_id)


@bp.post("/batches/<int:batch_id>/return")
def return_batch(batch_id: int):
    who = authenticate(OFFICERS)
    body = request.get_json(silent=True)
    comment = body.get("comment") if isinstance(body, dict) else None
    if not isinstance(comment, str):
        raise Refusal("RETURN_COMMENT_REQUIRED", "batch", _('a return needs a comment: send JSON {"comment": "..."}'))
    portal().workflow.return_batch(who, batch_id, comment)
    return _view(batch_id)


@bp.get("/batches/<int:batch_id>/payload")
def payload(batch_id: int):
    who = authenticate(OFFICERS)
    data = portal().workflow.payload(who, batch_id)
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-payload.zip"'})


@bp.post("/batches/<int:batch_id>/signatures")
def add_signature(batch_id: int):
    who = authenticate(OFFICERS)
    der = _cms_body(_("signature"))
    portal().workflow.add_signature(who, batch_id, der)
    return _view(batch_id)


@bp.get("/batches/<int:batch_id>/sealed")
def sealed(batch_id: int):
    who = authenticate(OFFICERS)
    data = portal().workflow.sealed(who, batch_id)
    return Response(data, mimetype=CMS_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-sealed.p7m"'})


@bp.post("/batches/<int:batch_id>/release")
def release(batch_id: int):
    who = authenticate(OFFICERS)
    der = _cms_body(_("release-signed envelope"))
    answer = portal().workflow.release(who, batch_id, der, g.ip)
    response = jsonify(answer | {"batch_id": batch_id})
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/envelopes/{answer['tracking_id']}"
    return response
