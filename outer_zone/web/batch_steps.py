"""The routing steps of a batch on its page: submit, return, the signatures and the release.

Submit and return are plain forms (CSRF token in the form). Signing runs in the browser
(static/batches.js): the page fetches the bytes to sign from here, hands them to the
officer's local signing service, and posts the service's DER result back here with the
CSRF token in a header; the session authenticates every call. Which step a user may take
is the workflow's decision (outer_zone.batches.workflow); a refusal is answered with its
code and message (JSON to the script, the batch page to a form).
"""

from __future__ import annotations

from flask import Response, abort, flash, g, jsonify, redirect, request, url_for
from flask_babel import gettext as _

from tgw_common.reasons import Refusal

from ..batches import BatchNotFound, batch_view
from .batch_views import bp, detail_page
from .helpers import portal, refuse, who

CMS_TYPE = "application/pkcs7-mime"
# These bodies carry the payload or the sealed layer inside them: as large as an upload.
LARGE_BODIES = {"batches.import_file", "batches.add_signature", "batches.release"}


@bp.before_app_request
def _large_bodies() -> None:
    # An app hook (not the blueprint's): it must run before the CSRF check reads the body.
    if request.endpoint in LARGE_BODIES and g.get("who") is not None:
        request.max_content_length = portal().cfg.max_upload_bytes + 64 * 1024


def _step(call, batch_id: int, *args):
    try:
        return call(who(), batch_id, *args)
    except BatchNotFound:
        abort(404)


def _form_step(call, batch_id: int, done, *args):
    """`done(batch_id)`: the flash message once the step is taken, in the page's language."""
    try:
        _step(call, batch_id, *args)
    except Refusal as refusal:
        return detail_page(batch_id, refusal=refusal)
    flash(done(batch_id), "ok")
    return redirect(url_for("batches.detail", batch_id=batch_id))


@bp.post("/<int:batch_id>/submit")
def submit(batch_id: int):
    return _form_step(portal().workflow.submit, batch_id, lambda n: _("batch #%(id)s submitted", id=n))


@bp.post("/<int:batch_id>/return")
def return_batch(batch_id: int):
    comment = request.form.get("comment", "")
    return _form_step(portal().workflow.return_batch, batch_id,
                      lambda n: _("batch #%(id)s returned to the preparer", id=n), comment)


def _der_body(what) -> bytes:
    """The DER body of a signing step; `what` names it, a lazy phrase (_l("signature"))."""
    if request.mimetype != CMS_TYPE:
        raise refuse("WRONG_MEDIA_TYPE", _("send the %(what)s as %(type)s (DER)", what=what, type=CMS_TYPE))
    data = request.get_data(cache=False)
    if not data:
        raise refuse("EMPTY_UPLOAD", _("the request carried no %(what)s", what=what))
    return data


@bp.get("/<int:batch_id>/payload")
def payload(batch_id: int):
    data = _step(portal().workflow.payload, batch_id)
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-payload.zip"'})


@bp.post("/<int:batch_id>/signatures")
def add_signature(batch_id: int):
    summary = _step(portal().workflow.add_signature, batch_id, _der_body(_("signature")))
    view = batch_view(portal().engine, who().agency, batch_id)
    return jsonify({"state": view["state"], "signer": summary.subject, "fingerprint": summary.fingerprint})


@bp.get("/<int:batch_id>/sealed")
def sealed(batch_id: int):
    data = _step(portal().workflow.sealed, batch_id)
    return Response(data, mimetype=CMS_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-sealed.p7m"'})


@bp.post("/<int:batch_id>/release")
def release(batch_id: int):
    answer = _step(portal().workflow.release, batch_id, _der_body(_("release signature")), g.ip)
    status_url = url_for("portal.status", q=answer["tracking_id"])
    return jsonify({**answer, "status_url": status_url}), 202
