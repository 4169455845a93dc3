"""Signing in and out, changing one's own password, and a health answer for probes."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request

from tgw_common.web.account_views import add_account_routes, login_form, signed_in
from tgw_common.web.redirects import safe_next

from .models import ConsoleUser
from .signin import SignInRefused
from .web import console, me

bp = Blueprint("auth", __name__)


@bp.get("/healthz")
def health():
    return {"status": "ok"}


@bp.get("/login")
def login():
    return render_template("login.html", username="", next=safe_next(request.args.get("next")),
                           expired=request.args.get("expired") == "1")


@bp.post("/login")
def login_post():
    username, password = login_form()
    try:
        key, who = console().signin.login(username, password, g.ip)
    except SignInRefused as refused:
        return render_template("login.html", username=username, next=safe_next(request.form.get("next")),
                               error=refused.message, error_code=refused.code), 401
    return signed_in(key, who.must_change_password, "main.dashboard")


add_account_routes(bp, signin=lambda: console().signin, current_user=me, user_model=ConsoleUser,
                   home="main.dashboard")
