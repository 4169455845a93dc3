"""Signing in and out, changing one's own password, and a health answer for probes."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from tgw_common.db import transaction

from . import audit
from .accounts import AccountError, set_password, verify_password
from .models import ConsoleUser
from .signin import SignInRefused
from .web import console, me

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never //host or a scheme (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@bp.get("/healthz")
def health():
    return {"status": "ok"}


@bp.get("/login")
def login():
    return render_template("login.html", username="", next=_safe_next(request.args.get("next")),
                           expired=request.args.get("expired") == "1")


@bp.post("/login")
def login_post():
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:256]
    try:
        key, who = console().signin.login(username, password, g.ip)
    except SignInRefused as refused:
        return render_template("login.html", username=username, next=_safe_next(request.form.get("next")),
                               error=refused.message, error_code=refused.code), 401
    session.clear()  # a fresh session (and CSRF token) after sign-in: no fixation
    session["k"] = key
    if who.must_change_password:
        return redirect(url_for("auth.password"))
    return redirect(_safe_next(request.form.get("next")) or url_for("main.dashboard"))


@bp.post("/logout")
def logout():
    console().signin.end(session.get("k"))
    audit.record(console().engine, "logout", actor=me().username, role=me().role, ip=g.ip)
    session.clear()
    flash("已登出 / signed out", "ok")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    who = me()
    if request.method == "GET":
        return render_template("password.html", forced=who.must_change_password)
    current = request.form.get("current", "")[:256]
    new = request.form.get("new", "")[:256]
    confirm = request.form.get("confirm", "")[:256]
    error = None
    the_console = console()
    with transaction(the_console.engine) as s:
        user = s.get(ConsoleUser, who.id)
        if not verify_password(user.password_hash, current):
            error = "目前密碼不正確 / the current password is wrong"
        elif new != confirm:
            error = "兩次輸入的新密碼不同 / the two new passwords differ"
        elif new == current:
            error = "新密碼不可與目前密碼相同 / choose a password different from the current one"
        else:
            try:
                set_password(s, user, new, must_change=False, min_length=the_console.cfg.password_min_length)
                audit.record(s, "password_changed", actor=who.username, role=who.role, ip=g.ip)
            except AccountError as exc:
                error = str(exc)
    if error:
        return render_template("password.html", forced=who.must_change_password, error=error), 400
    the_console.signin.end_others(who.id, keep=session.get("k"))
    flash("密碼已變更 / password changed", "ok")
    return redirect(url_for("main.dashboard"))
