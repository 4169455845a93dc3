"""Signing in and out, and changing one's own password."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from tgw_common.db import transaction
from tgw_common.reasons import Refusal

from .. import audit
from ..accounts import AccountError, set_password, verify_password
from ..models import Agency, User
from ..netaccess import ip_allowed
from .helpers import portal, refusal_page, refuse, who

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never //host or a scheme (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@bp.get("/login")
def login():
    agency = request.args.get("agency", "").strip()[:16]
    if agency:
        # The agency is known before any password: its allow-list already applies.
        with transaction(portal().engine) as s:
            known = s.get(Agency, agency) is not None
        if known and not ip_allowed(portal().engine, agency, g.ip):
            audit.record(portal().engine, "ip_refused", actor="-", agency=agency, ip=g.ip, outcome="refused",
                         reason="IP_NOT_ALLOWED", path="login")
            return refusal_page(refuse("IP_NOT_ALLOWED", f"來源位址 {g.ip} 不在機關 {agency} 的白名單 / address "
                                                         f"{g.ip} is not on agency {agency}'s allow-list"))
    return render_template("login.html", agency=agency, username="", next=_safe_next(request.args.get("next")))


@bp.post("/login")
def login_post():
    form = request.form
    agency = form.get("agency", "").strip().upper()[:16]
    username = form.get("username", "").strip()[:64]
    password = form.get("password", "")[:256]
    try:
        key, principal = portal().signin.login(agency=agency, username=username, password=password, ip=g.ip)
    except Refusal as refusal:
        page, status, headers = refusal_page(refusal, "login.html", agency=agency, username=username,
                                             next=_safe_next(form.get("next")))
        return page, status, headers
    session.clear()  # a fresh session (and CSRF token) after sign-in: no fixation
    session["k"] = key
    if principal.must_change_password:
        return redirect(url_for("auth.password"))
    return redirect(_safe_next(form.get("next")) or url_for("portal.home"))


@bp.post("/logout")
def logout():
    portal().signin.end(session.get("k"))
    audit.record(portal().engine, "logout", actor=who().username, agency=who().agency, ip=g.ip)
    session.clear()
    flash("已登出 / signed out", "ok")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    me = who()
    if request.method == "GET":
        return render_template("password.html", forced=me.must_change_password)
    current = request.form.get("current", "")[:256]
    new = request.form.get("new", "")[:256]
    confirm = request.form.get("confirm", "")[:256]
    error = None
    the_portal = portal()
    with transaction(the_portal.engine) as s:
        user = s.get(User, me.id)
        if not verify_password(user.password_hash, current):
            error = "目前密碼不正確 / the current password is wrong"
        elif new != confirm:
            error = "兩次輸入的新密碼不同 / the two new passwords differ"
        elif new == current:
            error = "新密碼不可與目前密碼相同 / choose a password different from the current one"
        else:
            try:
                set_password(s, user, new, must_change=False, min_length=the_portal.cfg.password_min_length)
                audit.record(s, "password_changed", actor=me.username, agency=me.agency, ip=g.ip)
            except AccountError as exc:
                error = str(exc)
    if error:
        return render_template("password.html", forced=me.must_change_password, error=error), 400
    the_portal.signin.end_all(me.id, keep=session.get("k"))
    flash("密碼已變更 / password changed", "ok")
    return redirect(url_for("portal.home"))
