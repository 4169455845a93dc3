"""The console's Flask app factory: configuration, request hooks, security headers, blueprints.

Hook order matters: the client address and the session are settled before flask-wtf's
CSRF hook runs (CSRFProtect is initialised last), so nobody who is not signed in gets a
request body parsed, except for the small login form itself.
"""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tgw_common.config import Config
from tgw_common.web import headers, requestlog
from tgw_common.web.cookies import session_settings
from tgw_common.web.redirects import forced_password_change, to_login
from tgw_common.web.stalled import answer_stalled_bodies

from . import timefmt
from .state import Console
from .web import console, record, role_title

log = logging.getLogger("inner_zone.console.access")

# HSTS only over HTTPS (cookie_secure); a plain-HTTP test console must stay reachable.
HSTS = {"Strict-Transport-Security": "max-age=31536000"}
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.login_post", "auth.health"}
FORM_BYTES = 64 * 1024
UPLOAD_BYTES = 9 * 1024 * 1024  # a CRL may be a few MiB; certificates and requests are small
UPLOAD_ENDPOINTS = {"registry.upload_crl", "registry.add_signer", "registry.upload_certreq"}
REFRESH_HEADER = "X-Console-Refresh"


def create_app(config: Config, *, console_obj: Console | None = None, background: bool = False) -> Flask:
    the_console = console_obj or Console(config)
    cfg = the_console.cfg
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.json.ensure_ascii = False
    app.config.update(
        **session_settings(cfg, "tgw-console"),
        MAX_CONTENT_LENGTH=FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=FORM_BYTES,
        MAX_FORM_PARTS=200,
    )
    app.extensions["tgw_console"] = the_console
    _filters(app)
    _hooks(app)

    from .views_admin import bp as admin_bp
    from .views_auth import bp as auth_bp
    from .views_main import bp as main_bp
    from .views_quarantine import bp as quarantine_bp
    from .views_registry import bp as registry_bp

    for bp in (auth_bp, main_bp, quarantine_bp, registry_bp, admin_bp):
        app.register_blueprint(bp)
    CSRFProtect().init_app(app)
    _errors(app)
    if background:
        the_console.start_background()
    return app


def _filters(app: Flask) -> None:
    app.jinja_env.filters["local_time"] = timefmt.local
    app.jinja_env.filters["duration"] = timefmt.duration
    app.jinja_env.filters["role_title"] = role_title
    app.jinja_env.filters["money"] = lambda v: "" if v is None else f"{int(v):,}"
    app.jinja_env.filters["size"] = _size


def _size(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


def _hooks(app: Flask) -> None:
    @app.before_request
    def settle_client():
        requestlog.begin()
        g.me = None
        if request.endpoint in UPLOAD_ENDPOINTS:
            request.max_content_length = UPLOAD_BYTES

    @app.before_request
    def require_session():
        if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS:
            return None
        # The dashboard's own refreshes do not count as activity: a screen left open still times out.
        touch = request.headers.get(REFRESH_HEADER) != "1"
        who = console().signin.resume(session.get("k"), g.ip, touch=touch)
        if who is None:
            session.clear()
            return to_login(expired="1" if request.cookies.get(app.config["SESSION_COOKIE_NAME"]) else None)
        g.me = who
        return forced_password_change(who.must_change_password)

    @app.context_processor
    def page_context():
        return {"me": g.get("me"), "refresh_seconds": console().cfg.refresh_seconds}

    @app.after_request
    def secure_headers(response):
        headers.secure(response, HSTS if console().cfg.cookie_secure else None)
        who = g.get("me")
        requestlog.log_request(log, response, who.username if who else None)
        return response


def _errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        record("csrf_refused", target=request.path, outcome="refused", cause=error.description)
        return render_template("message.html", title="表單已失效 Form expired", kind="error",
                               message="表單已過期或來源不明，請重新整理頁面後再試 / the form's CSRF token is missing "
                                       f"or invalid ({error.description}); reload the page and try again"), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        return render_template("message.html", title="檔案過大 Too large", kind="error",
                               message=f"上傳內容超過上限 / the upload is larger than {request.max_content_length:,} "
                                       "bytes"), 413

    @app.errorhandler(HTTPException)
    def http_error(error):
        return render_template("message.html", title=f"{error.code} {error.name}", kind="error",
                               message=error.description), error.code or 500

    answer_stalled_bodies(app, http_error)

    @app.errorhandler(Exception)
    def unexpected(error):
        # The details go to the log; the page tells nothing about the inside.
        log.exception("unhandled error", extra={"path": request.path})
        return render_template("message.html", title="內部錯誤 Internal error", kind="error",
                               message="處理時發生錯誤，已記錄於日誌 / something went wrong; it is in the log"), 500
