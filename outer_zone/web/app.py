"""The Flask app factory: configuration, request hooks, security headers, blueprints.

Hook order matters and is fixed here: the client address and the session are settled
before flask-wtf's CSRF hook runs (it is registered last), because that hook reads the
form; so no request body is parsed for anyone who is not signed in, except the small
login form itself.
"""

from __future__ import annotations

import logging
import tempfile

from flask import Flask, g, request, session
from flask.wrappers import Request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tgw_common.config import Config
from tgw_common.reasons import Refusal
from tgw_common.web import headers, requestlog
from tgw_common.web.cookies import session_settings
from tgw_common.web.redirects import forced_password_change, to_login
from tgw_common.web.stalled import answer_stalled_bodies

from .. import audit
from ..netaccess import ip_allowed
from ..portal import Portal
from ..status import certificate_warnings
from .helpers import portal, refusal_json, refusal_page, refuse, register_filters, wants_json

log = logging.getLogger("outer_zone.access")

# The portal is on the internet: HSTS always (the console's depends on its cookie setting).
HSTS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}
# Reachable without a session. Everything else needs one (the API authenticates per request).
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.login_post"}
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
    cfg = the_portal.cfg
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.request_class = OuterRequest
    app.json.ensure_ascii = False
    app.config.update(
        **session_settings(cfg, "tgw-outer"),
        MAX_CONTENT_LENGTH=FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        MAX_FORM_PARTS=40,
    )
    app.extensions["tgw_outer"] = the_portal
    register_filters(app)
    _register_hooks(app)

    from .agency_admin import bp as admin_bp
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .portal_views import bp as portal_bp

    for bp in (auth_bp, portal_bp, admin_bp, api_bp):
        app.register_blueprint(bp)
    csrf = CSRFProtect()
    csrf.exempt(api_bp)  # bearer tokens, never cookies: nothing for a forged request to ride on
    csrf.init_app(app)
    _register_errors(app)
    if background:
        the_portal.start_background()
    return app


def _body_limit() -> None:
    if request.endpoint in ("api.upload",):
        request.max_content_length = None  # the intake streams with its own limit and answers UPLOAD_TOO_LARGE
    elif request.endpoint == "portal.upload":
        is_form = request.mimetype == "multipart/form-data"
        request.max_content_length = portal().cfg.max_upload_bytes + 64 * 1024 if is_form else None
    elif request.endpoint == "portal.certificates":
        request.max_content_length = CERT_FORM_BYTES


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def settle_client():
        requestlog.begin()
        g.who = None
        _body_limit()

    @app.before_request
    def require_session():
        if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or request.blueprint == "api":
            return None
        the_portal = portal()
        who = the_portal.signin.resume(session.get("k"), g.ip)
        if who is None:
            session.clear()
            refusal = refuse("UNAUTHENTICATED", "請先登入 / please sign in")
            if wants_json() or request.mimetype == "application/octet-stream":
                return refusal_json(refusal)
            return to_login()
        if not ip_allowed(the_portal.engine, who.agency, g.ip):
            audit.record(the_portal.engine, "ip_refused", actor=who.username, agency=who.agency, ip=g.ip,
                         outcome="refused", reason="IP_NOT_ALLOWED", path=request.path)
            refusal = refuse("IP_NOT_ALLOWED", f"來源位址 {g.ip} 不在機關 {who.agency} 的白名單 / address {g.ip} "
                                               f"is not on agency {who.agency}'s allow-list")
            return refusal_json(refusal) if wants_json() else refusal_page(refusal)
        g.who = who
        return forced_password_change(who.must_change_password)

    @app.context_processor
    def page_context():
        warnings = []
        if g.get("who") is not None and request.endpoint and not request.endpoint.startswith("api."):
            warnings = certificate_warnings(portal().engine, g.who.agency, portal().cfg.cert_expiry_warning_days)
        return {"cert_warnings": warnings, "warning_days": portal().cfg.cert_expiry_warning_days}

    @app.after_request
    def secure_headers(response):
        headers.secure(response, HSTS)
        who = g.get("who")
        requestlog.log_request(log, response, who.username if who else None)
        return response


def _register_errors(app: Flask) -> None:
    @app.errorhandler(Refusal)
    def refused(refusal):
        return refusal_json(refusal) if wants_json() else refusal_page(refusal)

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        refusal = refuse("FORBIDDEN", f"表單已過期或來源不明，請重新整理頁面 / the form's CSRF token is missing or "
                                      f"invalid ({error.description}); reload the page")
        who = g.get("who")
        audit.record(portal().engine, "forbidden", actor=who.username if who else "-",
                     agency=who.agency if who else None, ip=g.get("ip", "-"), outcome="refused", reason="FORBIDDEN",
                     target=request.path, cause="csrf")
        return refusal_json(refusal) if wants_json() or request.mimetype == "application/octet-stream" \
            else refusal_page(refusal)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = request.max_content_length
        refusal = refuse("UPLOAD_TOO_LARGE", f"內容超過上限 / the request is larger than {limit} bytes")
        return refusal_json(refusal) if wants_json() else refusal_page(refusal)

    @app.errorhandler(HTTPException)
    def http_error(error):
        if wants_json() or request.path.startswith("/api/"):
            from flask import jsonify

            response = jsonify({"error": error.name, "message": error.description, "status": error.code})
            response.status_code = error.code or 500
            return response
        from flask import render_template

        return render_template("error.html", error=error), error.code or 500

    answer_stalled_bodies(app, http_error)

    @app.errorhandler(Exception)
    def unexpected(error):
        # The details go to the log; the client learns nothing about the inside.
        log.exception("unhandled error", extra={"path": request.path})
        if wants_json() or request.path.startswith("/api/"):
            from flask import jsonify

            response = jsonify({"error": "Internal Server Error", "message": "內部錯誤 / internal error",
                                "status": 500})
            response.status_code = 500
            return response
        from flask import render_template
        from werkzeug.exceptions import InternalServerError

        return render_template("error.html", error=InternalServerError()), 500
