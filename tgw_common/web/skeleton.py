"""The Flask app both zones build: cookies and limits, request hooks, error pages, the base template.

Hook order matters and is fixed here: the client address and the session are settled
before flask-wtf's CSRF hook runs (CSRFProtect is initialised after every blueprint), because
that hook reads the form; so no request body is parsed for anyone who is not signed in,
except the small login form itself.

A zone describes what differs (its Gate, its ErrorPages, its filters and limits) and keeps
its own blueprints, templates and static files; its `base.html` extends `tgw_base.html`
(templates/ here, served through the `tgw_web` blueprint) and fills the blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, g, request, session
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tgw_common.config import WebServerConfig

from . import headers, i18n, requestlog
from .cookies import session_settings
from .ids import DatabaseId
from .redirects import forced_password_change
from .stalled import answer_stalled_bodies

# The shared templates (tgw_base.html), found after the app's own.
SHARED_TEMPLATES = Blueprint("tgw_web", __name__, template_folder="templates")


def _admit_everyone(who: Any) -> ResponseReturnValue | None:
    return None


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Gate:
    """Who gets in: how a zone finds a request's signed-in user, and what it answers otherwise.

    `user_attr` is the attribute of flask.g the user is kept in (None until signed in);
    `resume(key)` gives the user of the cookie's session key or None; `signed_out()` answers
    a request without a live session; `admit(user)` may still refuse a signed-in user;
    `exempt()` passes a request that authenticates itself (the portal's API).
    """

    user_attr: str
    public: Collection[str]
    resume: Callable[[str | None], Any]
    signed_out: Callable[[], ResponseReturnValue]
    admit: Callable[[Any], ResponseReturnValue | None] = _admit_everyone
    exempt: Callable[[], bool] = _never


@dataclass(frozen=True)
class ErrorPages:
    """The zone's answers to errors; `internal_error` is what an unexpected exception shows
    (its details go to the log only)."""

    http_error: Callable[[HTTPException], ResponseReturnValue]
    csrf_failed: Callable[[CSRFError], ResponseReturnValue]
    too_large: Callable[[RequestEntityTooLarge], ResponseReturnValue]
    internal_error: Callable[[], ResponseReturnValue]


def web_app(import_name: str, cfg: WebServerConfig, *, cookie: str, gate: Gate, access_log: logging.Logger,
            hsts: Mapping[str, str] | None, limit_body: Callable[[], None],
            filters: Mapping[str, Callable[..., str]], **limits: int) -> Flask:
    """The app with its templates and static files (next to `import_name`), the session
    cookie (`cookie` is the bare name), `limits` (MAX_CONTENT_LENGTH and the like), the
    template filters and the request hooks. `limit_body()` may raise the body limit of the
    request's endpoint. Register the blueprints next, then call `finish_app`."""
    app = Flask(import_name, static_folder="static", template_folder="templates")
    app.url_map.converters["int"] = DatabaseId  # before any blueprint's rules are bound
    app.json.ensure_ascii = False
    app.config.update(**session_settings(cfg, cookie), **limits)
    app.jinja_env.filters.update(filters)
    app.register_blueprint(SHARED_TEMPLATES)
    i18n.init_babel(app, negotiate=gate.exempt)
    _guard_requests(app, gate, limit_body)
    _log_and_secure(app, gate.user_attr, hsts, access_log)
    return app


def _guard_requests(app: Flask, gate: Gate, limit_body: Callable[[], None]) -> None:
    @app.before_request
    def settle_client():
        requestlog.begin()
        setattr(g, gate.user_attr, None)
        limit_body()

    @app.before_request
    def require_session():
        if request.endpoint in (None, i18n.LANGUAGE_ENDPOINT) or request.endpoint in gate.public or gate.exempt():
            return None
        who = gate.resume(session.get("k"))
        if who is None:
            session.clear()
            return gate.signed_out()
        refused = gate.admit(who)
        if refused is not None:
            return refused
        setattr(g, gate.user_attr, who)
        return forced_password_change(who.must_change_password)

    @app.context_processor
    def signed_in_user():
        # tgw_base.html shows the menu and the user's name only to a signed-in user.
        return {"viewer": g.get(gate.user_attr)}


def _log_and_secure(app: Flask, user_attr: str, hsts: Mapping[str, str] | None, access_log: logging.Logger) -> None:
    @app.after_request
    def secure_headers(response):
        headers.secure(response, hsts)
        who = g.get(user_attr)
        requestlog.log_request(access_log, response, who.username if who else None)
        return response


def finish_app(app: Flask, pages: ErrorPages, log: logging.Logger, *, csrf_exempt: Iterable[Blueprint] = ()) -> None:
    """After the blueprints: CSRF protection (its hook last) and the error pages."""
    csrf = CSRFProtect()
    for bp in csrf_exempt:
        csrf.exempt(bp)
    csrf.init_app(app)
    app.register_error_handler(CSRFError, pages.csrf_failed)
    app.register_error_handler(RequestEntityTooLarge, pages.too_large)
    app.register_error_handler(HTTPException, pages.http_error)
    answer_stalled_bodies(app, pages.http_error)

    @app.errorhandler(Exception)
    def unexpected(error):
        # The details go to the log; the client learns nothing about the inside.
        log.exception("unhandled error", extra={"path": request.path})
        return pages.internal_error()


def role_title_filter(titles: Mapping[str, Any]) -> Callable[[str], str]:
    """The `role_title` filter over a zone's {role: title} (lazy gettext strings), or the bare role."""

    def role_title(role: str) -> str:
        return str(titles.get(role, role))

    return role_title
