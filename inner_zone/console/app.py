"""The console's Flask app factory: its blueprints, and what it tells the shared skeleton.

The skeleton (tgw_common/web/skeleton.py) sets cookies, request hooks, security headers,
CSRF and the error handlers alike for the portal; what is the console's own is here: its
upload limits, sessions that the dashboard's own refreshes do not keep alive, its message
pages, HSTS only over HTTPS.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, render_template, request
from flask_babel import gettext as _

from tgw_common.config import Config
from tgw_common.web.redirects import to_login
from tgw_common.web.skeleton import ErrorPages, Gate, finish_app, role_title_filter, web_app

from . import timefmt
from .state import Console
from .web import ROLE_TITLES, console, record

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
    gate = Gate(user_attr="me", public=PUBLIC_ENDPOINTS, resume=_resume, signed_out=_signed_out)
    app = web_app(__name__, cfg, cookie="tgw-console", gate=gate, access_log=log,
                  hsts=HSTS if cfg.cookie_secure else None, limit_body=_upload_limit, filters=FILTERS,
                  MAX_CONTENT_LENGTH=FORM_BYTES, MAX_FORM_MEMORY_SIZE=FORM_BYTES, MAX_FORM_PARTS=200)
    app.extensions["tgw_console"] = the_console
    app.context_processor(_page_context)

    from .views_admin import bp as admin_bp
    from .views_auth import bp as auth_bp
    from .views_main import bp as main_bp
    from .views_quarantine import bp as quarantine_bp
    from .views_registry import bp as registry_bp

    for bp in (auth_bp, main_bp, quarantine_bp, registry_bp, admin_bp):
        app.register_blueprint(bp)
    finish_app(app, PAGES, log)
    if background:
        the_console.start_background()
    return app


def _size(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


FILTERS = {
    "local_time": timefmt.local,
    "duration": timefmt.duration,
    "role_title": role_title_filter(ROLE_TITLES),
    "money": lambda v: "" if v is None else f"{int(v):,}",
    "size": _size,
}


def _upload_limit() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = UPLOAD_BYTES


def _resume(key: str | None):
    # The dashboard's own refreshes do not count as activity: a screen left open still times out.
    touch = request.headers.get(REFRESH_HEADER) != "1"
    return console().signin.resume(key, g.ip, touch=touch)


def _signed_out():
    expired = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    return to_login(expired="1" if expired else None)


def _page_context() -> dict:
    return {"me": g.get("me"), "refresh_seconds": console().cfg.refresh_seconds}


# --- error pages
def _message(title: str, message: str, status: int):
    return render_template("message.html", title=title, kind="error", message=message), status


def _csrf_failed(error):
    record("csrf_refused", target=request.path, outcome="refused", cause=error.description)
    return _message(_("Form expired"), _("The form's security token is missing or invalid (%(cause)s); reload the page "
                                          "and try again.", cause=error.description), 400)


def _too_large(error):
    return _message(_("Too large"), _("The upload is larger than %(limit)s bytes.",
                                       limit=format(request.max_content_length, ",")), 413)


def _http_error(error):
    return _message(f"{error.code} {error.name}", error.description, error.code or 500)


def _internal_error():
    return _message(_("Internal error"), _("Something went wrong; it is in the log."), 500)


PAGES = ErrorPages(http_error=_http_error, csrf_failed=_csrf_failed, too_large=_too_large,
                   internal_error=_internal_error)
