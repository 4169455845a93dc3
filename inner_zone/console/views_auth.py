"""Signing in and out, changing one's own password, and a health answer for probes."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request

from tgw_common.web.account_views import password_page, sign_out, signed_in
from tgw_common.web.redirects import safe_next

from . import audit
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
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:256]
    try:
        key, who = console().signin.login(username, password, g.ip)
    except SignInRefused as refused:
        return render_template("login.html", username=username, next=safe_next(request.form.get("next")),
                               error=refused.message, error_code=refused.code), 401
    return signed_in(key, who.must_change_password, "main.dashboard")


@bp.post("/logout")
def logout():
    audit.record(console().engine, "logout", actor=me().username, role=me().role, ip=g.ip)
    return sign_out(console().signin)


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    who = me()
    return password_page(console().signin, ConsoleUser, who, min_length=console().cfg.password_min_length,
                         home="main.dashboard",
                         audit_changed=lambda s: audit.record(s, "password_changed", actor=who.username,
                                                              role=who.role, ip=g.ip))
