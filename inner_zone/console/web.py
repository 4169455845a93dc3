"""What the console's blueprints share: the Console of this app, the signed-in operator,
role checks that are audited, form parsing. (The client's address is settled by
tgw_common.web.requestlog, the same way as in the portal.)"""

from __future__ import annotations

from datetime import date
from functools import wraps

from flask import current_app, g, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from . import audit
from .accounts import Operator
from .state import Console


def console() -> Console:
    return current_app.extensions["tgw_console"]


def me() -> Operator:
    return g.me


def record(action: str, *, target: str | None = None, outcome: str = "ok", **detail) -> None:
    """An audit entry for the signed-in operator of this request."""
    who = g.get("me")
    audit.record(console().engine, action, actor=who.username if who else "-", role=who.role if who else None,
                 ip=g.get("ip", "-"), target=target, outcome=outcome, **detail)


# The console's role titles (the `role_title` filter); roles themselves are in models.ROLES.
ROLE_TITLES = {"viewer": _l("viewer"), "operator": _l("operator"), "administrator": _l("administrator")}


def forbidden_page(what: str):
    record("forbidden", target=request.path, outcome="refused", method=request.method)
    return render_template("message.html", title=_("Forbidden"), kind="error",
                           message=_("Your role may not %(what)s.", what=what)), 403


def require(role: str, what: str):
    """A view decorator: the operator's role must be `role` or above; refusals are audited.
    `what` (a lazy string) completes "Your role may not ..."."""

    def deco(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not me().can(role):
                return forbidden_page(what)
            return view(*args, **kwargs)

        return wrapper

    return deco


def parse_day(value: str | None) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
