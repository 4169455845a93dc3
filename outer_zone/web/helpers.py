"""What the blueprints share: the portal of this app, refusals as HTTP answers, formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tgw_common.reasons import REASONS, Layer, Refusal
from tgw_common.web.i18n import reason_title
from tgw_common.web.skeleton import role_title_filter

from ..accounts import Principal
from ..portal import Portal

TAIPEI = ZoneInfo("Asia/Taipei")

# HTTP status per reason code; any other (release-layer) code is 422.
STATUS = {
    "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "IP_NOT_ALLOWED": 403, "RATE_LIMITED": 429, "ACCOUNT_LOCKED": 423,
    "UPLOAD_TOO_LARGE": 413, "TOO_LARGE": 413, "EMPTY_UPLOAD": 400, "DISK_FULL": 503, "REPLAY": 409,
    "WRONG_MEDIA_TYPE": 415, "BATCH_WRONG_STATE": 409, "BATCH_ALL_PAPER": 409, "BATCH_CANNOT_SEAL": 503,
    "RETURN_COMMENT_REQUIRED": 400,
}
RETRY_AFTER = {"RATE_LIMITED": "60", "DISK_FULL": "300"}

# The web's role titles (outer_zone/models.ROLE_TITLES holds the same in both languages for the CLI).
ROLE_TITLES = {
    "admin": _l("agency administrator"),
    "preparer": _l("preparer"),
    "reviewer": _l("reviewer"),
    "accountant": _l("accountant"),
    "head": _l("head"),
    "releaser": _l("releaser"),
}


def portal() -> Portal:
    return current_app.extensions["tgw_outer"]


def who() -> Principal:
    return g.who


def refuse(code: str, message: str) -> Refusal:
    return Refusal(code, Layer.UPLOAD, message)


def forbidden(what: str) -> Refusal:
    """FORBIDDEN for the signed-in user's role; `what` is a (lazy) translated phrase, e.g. _l("upload envelopes")."""
    return refuse("FORBIDDEN", _("your role may not %(what)s", what=what))


def status_of(refusal: Refusal) -> int:
    return STATUS.get(refusal.code, 422)


def refusal_json(refusal: Refusal) -> Response:
    body = refusal.as_dict()
    info = REASONS.get(refusal.code)
    if info:
        body.setdefault("reason_zh", info.zh)
        body.setdefault("reason_title", reason_title(refusal.code))  # in the request's language
    response = jsonify(body)
    response.status_code = status_of(refusal)
    if refusal.code == "UNAUTHENTICATED":
        response.headers["WWW-Authenticate"] = 'Bearer realm="tgw-outer"'
    if refusal.code in RETRY_AFTER:
        response.headers["Retry-After"] = RETRY_AFTER[refusal.code]
    return response


def refusal_page(refusal: Refusal, template: str = "refused.html", **context: Any) -> tuple[str, int, dict]:
    headers = {"Retry-After": RETRY_AFTER[refusal.code]} if refusal.code in RETRY_AFTER else {}
    return render_template(template, refusal=refusal, info=REASONS.get(refusal.code), **context), \
        status_of(refusal), headers


def wants_json() -> bool:
    if request.blueprint == "api":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def require(role: str, what: str):
    """A view decorator: the signed-in user must hold `role` (own or delegated right now);
    `what` is what the role may not do, a lazy translated phrase (_l("upload envelopes"))."""

    def deco(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not who().has(role):
                from .. import audit

                audit.record(portal().engine, "forbidden", actor=who().username, agency=who().agency, ip=g.ip,
                             outcome="refused", reason="FORBIDDEN", target=request.path)
                refusal = forbidden(what)
                return refusal_json(refusal) if wants_json() else refusal_page(refusal)
            return view(*args, **kwargs)

        return wrapper

    return deco


# --- template filters
def local_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(TAIPEI).strftime("%Y-%m-%d %H:%M:%S")


def size_text(value: int | None) -> str:
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


FILTERS = {"local_time": local_time, "size": size_text, "role_title": role_title_filter(ROLE_TITLES)}
