"""The agencies' API: POST /api/v1/envelopes with the envelope as the body, and status look-ups
(docs/api.md). The batch routes hang on the same blueprint (api_batches.py).

Authentication comes first and reads only the Authorization header: the bearer token of a
releaser. Then the agency's allow-list and the role. Only after all three is one byte of
the body read (and then streamed to disk with a limit before any parsing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, Response, g, jsonify, request
from flask_babel import gettext as _

from tgw_common.reasons import Refusal

from .. import audit
from ..accounts import Principal
from ..intake import Uploader
from ..netaccess import ip_allowed
from ..status import STATES, Search, as_json, search_uploads, upload_receipt, upload_status
from .helpers import ROLE_TITLES, forbidden, portal, refusal_json, refuse

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def authenticate(roles: tuple[str, ...] = ("releaser",)) -> Principal:
    """The bearer token's user, from an allowed address, holding one of `roles`."""
    the_portal = portal()
    who = the_portal.signin.bearer(request.headers.get("Authorization"), g.ip)
    g.who = who
    if not ip_allowed(the_portal.engine, who.agency, g.ip):
        audit.record(the_portal.engine, "ip_refused", actor=who.username, agency=who.agency, ip=g.ip,
                     outcome="refused", reason="IP_NOT_ALLOWED", path=request.path)
        raise refuse("IP_NOT_ALLOWED", _("address %(ip)s is not on agency %(agency)s's allow-list",
                                         ip=g.ip, agency=who.agency))
    if not any(who.has(role) for role in roles):
        audit.record(the_portal.engine, "forbidden", actor=who.username, agency=who.agency, ip=g.ip,
                     outcome="refused", reason="FORBIDDEN", target=request.path)
        raise forbidden(_("use the API (%(roles)s only)", roles=" / ".join(str(ROLE_TITLES[r]) for r in roles)))
    return who


@bp.errorhandler(Refusal)
def _refused(refusal: Refusal):
    return refusal_json(refusal)


@bp.post("/envelopes")
def upload():
    who = authenticate()
    uploader = Uploader(who.id, who.username, who.agency, g.ip, "api")
    result = portal().intake.receive(request.stream, content_length=request.content_length, who=uploader)
    response = jsonify(result)
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/envelopes/{result['tracking_id']}"
    return response


def _overdue() -> timedelta:
    return timedelta(minutes=portal().cfg.receipt_overdue_minutes)


def _no_upload(tracking_id: str, agency: str):
    response = jsonify({"error": "Not Found", "message": _("no upload %(id)s for agency %(agency)s",
                                                           id=tracking_id, agency=agency)})
    response.status_code = 404
    return response


@bp.get("/envelopes/<tracking_id>")
def envelope(tracking_id: str):
    who = authenticate()
    view = upload_status(portal().engine, who.agency, tracking_id[:64], receipt_overdue=_overdue())
    if view is None:
        return _no_upload(tracking_id[:64], who.agency)
    return jsonify(as_json({k: v for k, v in view.items() if k != "documents"}))


@bp.get("/envelopes/<tracking_id>/documents")
def envelope_documents(tracking_id: str):
    """Each loaded document of the envelope with its payment result (pending, paid, failed)."""
    who = authenticate()
    view = upload_status(portal().engine, who.agency, tracking_id[:64], receipt_overdue=_overdue())
    if view is None:
        return _no_upload(tracking_id[:64], who.agency)
    return jsonify({"tracking_id": view["tracking_id"], "state": view["state"], "documents": view["documents"]})


@bp.get("/envelopes/<tracking_id>/receipt")
def envelope_receipt(tracking_id: str):
    """The newest signed receipt (DER CMS), for the agency to keep and verify with openssl."""
    who = authenticate()
    der = upload_receipt(portal().engine, who.agency, tracking_id[:64])
    if der is None:
        response = jsonify({"error": "Not Found", "message": _("no receipt yet for %(id)s", id=tracking_id[:64])})
        response.status_code = 404
        return response
    return Response(der, mimetype="application/pkcs7-mime", headers={
        "Content-Disposition": f'attachment; filename="{tracking_id[:64]}.receipt.p7s"'})


@bp.get("/envelopes")
def envelopes():
    who = authenticate()
    args = request.args
    state = args.get("state", "")
    if state and state not in STATES:
        return jsonify({"error": "Bad Request", "message": _("state must be one of %(states)s", states=", ".join(STATES))}), 400
    try:
        since = datetime.fromisoformat(args["since"]) if args.get("since") else None
        limit = int(args.get("limit", "100"))
    except ValueError:
        return jsonify({"error": "Bad Request", "message": _("since is ISO 8601 with an offset; limit is a number")}), 400
    if since is not None and since.tzinfo is None:
        return jsonify({"error": "Bad Request", "message": _("since needs a UTC offset, e.g. +08:00")}), 400
    rows = search_uploads(portal().engine, who.agency, Search(text=args.get("q", "")[:100], state=state, since=since,
                                                              limit=max(1, min(limit, 500))),
                          receipt_overdue=_overdue())
    return jsonify({"uploads": [as_json(r) for r in rows]})
