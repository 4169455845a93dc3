"""The portal's Flask app factory: its blueprints, and what it tells the shared skeleton.

The skeleton (tgw_common/web/skeleton.py) sets cookies, request hooks, security headers,
CSRF and the error handlers alike for the console; what is the portal's own is here: who
may pass (a session and the agency's allow-list; the API authenticates per request), the
answers as JSON or pages, body limits per endpoint, HSTS always.
"""

from __future__ import annotations

import logging
import tempfile

from flask import Flask, g, jsonify, render_template, request
from flask.wrappers import Request
from flask_babel import gettext as _
from werkzeug.exceptions import InternalServerError

from tgw_common.config import Config
from tgw_common.reasons import Refusal
from tgw_common.web.redirects import to_login
from tgw_common.web.skeleton import ErrorPages, Gate, finish_app, web_app

from .. import audit
from ..netaccess import ip_allowed
from ..portal import Portal
from ..status import certificate_warnings
from .helpers import FILTERS, portal, refusal_json, refusal_page, refuse, wants_json

log = logging.getLogger("outer_zone.access")

# The portal is on the internet: HSTS always (the console's depends on its cookie setting).
HSTS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}
# Reachable without a session. Everything else needs one (the API authenticates per request).
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.login_post", "openapi.openapi_json"}
FORM_BYTES = 256 * 1024  # any form but the upload: small
CERT_FORM_BYTES = 192 * 1024


class OuterRequest(Request):
    """Multipart file parts go to upload_tmp (the spool's disk), not to /tmp or memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        from flask import current_app

        folder = current_app.extensions["tgw_outer"].cfg.upload_tmp
        return tempfile.TemporaryFile(dir=folder)


def create_app(config: Config, *, portal_obj: Portal | None = None, background: bool = False) -> Flask:
    the_portal = portal_obj or Portal(config)
    gate = Gate(user_attr="who", public=PUBLIC_ENDPOINTS, resume=lambda key: portal().signin.resume(key, g.ip),
                signed_out=_signed_out, admit=_allowed_address, exempt=lambda: request.blueprint == "api")
    app = web_app(__name__, the_portal.cfg, cookie="tgw-outer", gate=gate, access_log=log, hsts=HSTS,
                  limit_body=_body_limit, filters=FILTERS, MAX_CONTENT_LENGTH=FORM_BYTES,
                  MAX_FORM_MEMORY_SIZE=64 * 1024, MAX_FORM_PARTS=40)
    app.request_class = OuterRequest
    app.extensions["tgw_outer"] = the_portal
    app.context_processor(_page_context)

    from . import api_batches  # noqa: F401 - its routes join the API blueprint
    from .agency_admin import bp as admin_bp
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .batch_views import bp as batches_bp
    from .envelope_views import bp as envelopes_bp
    from .openapi import bp as openapi_bp
    from .portal_views import bp as portal_bp

    for bp in (auth_bp, portal_bp, batches_bp, envelopes_bp, admin_bp, api_bp, openapi_bp):
        app.register_blueprint(bp)
    # The API takes bearer tokens, never cookies: nothing for a forged request to ride on.
    finish_app(app, PAGES, log, csrf_exempt=(api_bp,))
    app.register_error_handler(Refusal, _refused)
    if background:
        the_portal.start_background()
    return app


def _body_limit() -> None:
    if request.endpoint == "api.return_batch":
        request.max_content_length = FORM_BYTES  # a JSON comment, parsed by Flask: small
    elif request.blueprint == "api":
        request.max_content_length = None  # each route reads with its own limit and answers UPLOAD_TOO_LARGE
    elif request.endpoint == "portal.upload":
        is_form = request.mimetype == "multipart/form-data"
        request.max_content_length = portal().cfg.max_upload_bytes + 64 * 1024 if is_form else None
    elif request.endpoint == "portal.certificates_post":
        request.max_content_length = CERT_FORM_BYTES


def _wants_json_answer() -> bool:
    return wants_json() or request.mimetype == "application/octet-stream"


def _signed_out():
    if _wants_json_answer():
        return refusal_json(refuse("UNAUTHENTICATED", _("please sign in")))
    return to_login()


def _allowed_address(who):
    """A live session still counts only from an address on the agency's allow-list."""
    the_portal = portal()
    if ip_allowed(the_portal.engine, who.agency, g.ip):
        return None
    audit.record(the_portal.engine, "ip_refused", actor=who.username, agency=who.agency, ip=g.ip,
                 outcome="refused", reason="IP_NOT_ALLOWED", path=request.path)
    refusal = refuse("IP_NOT_ALLOWED", _("address %(ip)s is not on agency %(agency)s's allow-list",
                                         ip=g.ip, agency=who.agency))
    return refusal_json(refusal) if wants_json() else refusal_page(refusal)


def _page_context() -> dict:
    warnings = []
    if g.get("who") is not None and request.endpoint and not request.endpoint.startswith("api."):
        warnings = certificate_warnings(portal().engine, g.who.agency, portal().cfg.cert_expiry_warning_days)
    return {"cert_warnings": warnings, "warning_days": portal().cfg.cert_expiry_warning_days}


# --- error answers: JSON for the API and for clients that ask for it, pages otherwise
def _refused(refusal: Refusal):
    return refusal_json(refusal) if wants_json() else refusal_page(refusal)


def _csrf_failed(error):
    refusal = refuse("FORBIDDEN", _("the form's CSRF token is missing or invalid (%(why)s); reload the page",
                                    why=error.description))
    who = g.get("who")
    audit.record(portal().engine, "forbidden", actor=who.username if who else "-",
                 agency=who.agency if who else None, ip=g.get("ip", "-"), outcome="refused", reason="FORBIDDEN",
                 target=request.path, cause="csrf")
    return refusal_json(refusal) if _wants_json_answer() else refusal_page(refusal)


def _too_large(error):
    limit = request.max_content_length
    return _refused(refuse("UPLOAD_TOO_LARGE", _("the request is larger than %(limit)s bytes", limit=limit)))


def _json_error(name: str, message: str, code: int | None):
    response = jsonify({"error": name, "message": message, "status": code})
    response.status_code = code or 500
    return response


def _for_api() -> bool:
    return wants_json() or request.path.startswith("/api/")


def _http_error(error):
    if _for_api():
        return _json_error(error.name, error.description, error.code)
    return render_template("error.html", error=error), error.code or 500


def _internal_error():
    if _for_api():
        return _json_error("Internal Server Error", _("internal error"), 500)
    return render_template("error.html", error=InternalServerError()), 500


PAGES = ErrorPages(http_error=_http_error, csrf_failed=_csrf_failed, too_large=_too_large,
                   internal_error=_internal_error)
