"""What the console's blueprints share: the Console of this app, the signed-in operator,
role checks that are audited, form parsing. (The client's address is settled by
tgw_common.web.requestlog, the same way as in the portal.)"""

from __future__ import annotations

from datetime import date
from functools import wraps

from flask import current_app, g, render_template, request

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


def forbidden_page(what_zh: str, what_en: str):
    record("forbidden", target=request.path, outcome="refused", method=request.method)
    return render_template("message.html", title="權限不足 Forbidden", kind="error",
                           message=f"您的角色不能{what_zh} / your role may not {what_en}"), 403


def require(role: str, what_zh: str, what_en: str):
    """A view decorator: the operator's role must be `role` or above; refusals are audited."""

    def deco(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not me().can(role):
                return forbidden_page(what_zh, what_en)
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
