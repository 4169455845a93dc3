"""What the sign-in pages of both apps do alike: the sign-in form, after a sign-in, signing
out, changing one's password.

Each app keeps its own sign-in page and templates (`password.html` with `forced` and
`error`); `add_account_routes` puts the signing-out and password routes on its `auth`
blueprint. The caller passes what differs: its SignIn (a tgw_common.web.signin.SignInBase,
which also writes the zone's audit entries), its user table, the signed-in user and where
"home" is. A password change is audited in the same transaction as the change, so both
commit or neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from tgw_common.db import transaction

from .passwords import MAX_LENGTH, change_own_password
from .redirects import safe_next
from .signin import SignInBase


def login_form() -> tuple[str, str]:
    """(username, password) of a posted sign-in form, cut to lengths no real one exceeds."""
    form = request.form
    return form.get("username", "").strip()[:64], form.get("password", "")[:MAX_LENGTH]


def signed_in(key: str, must_change_password: bool, home: str) -> ResponseReturnValue:
    """After a right password: the cookie gets the new session's key, and the browser goes on
    to the password change it owes, or where it was going (the form's `next`), or home."""
    session.clear()  # a fresh session (and CSRF token) after sign-in: no fixation
    session["k"] = key
    if must_change_password:
        return redirect(url_for("auth.password"))
    return redirect(safe_next(request.form.get("next")) or url_for(home))


def sign_out(signin: SignInBase) -> ResponseReturnValue:
    signin.end(session.get("k"))
    session.clear()
    flash(_("signed out"), "ok")
    return redirect(url_for("auth.login"))


def password_page(signin: SignInBase, user_model: Any, who: Any, *, min_length: int, home: str,
                  audit_changed: Callable[[Session], None]) -> ResponseReturnValue:
    """GET: the form; POST: the change. `who` is the signed-in user (id, must_change_password).

    After a change every other session of the user ends: whoever else was signed in with the
    old password is out.
    """
    if request.method == "GET":
        return render_template("password.html", forced=who.must_change_password)
    form = request.form
    with transaction(signin.engine) as s:
        error = change_own_password(s.get(user_model, who.id), current=form.get("current", "")[:MAX_LENGTH],
                                    new=form.get("new", "")[:MAX_LENGTH], confirm=form.get("confirm", "")[:MAX_LENGTH],
                                    min_length=min_length)
        if error is None:
            audit_changed(s)
    if error:
        return render_template("password.html", forced=who.must_change_password, error=error), 400
    signin.end_all(who.id, keep=session.get("k"))
    flash(_("password changed"), "ok")
    return redirect(url_for(home))


def add_account_routes(bp: Blueprint, *, signin: Callable[[], SignInBase], current_user: Callable[[], Any],
                       user_model: Any, home: str) -> None:
    """`POST /logout` and `/account/password` (endpoints `logout`, `password`) on the app's
    `auth` blueprint; both are audited through the zone's SignIn."""

    @bp.post("/logout")
    def logout():
        signin().audit_user(signin().engine, "logout", current_user(), g.ip)
        return sign_out(signin())

    @bp.route("/account/password", methods=["GET", "POST"])
    def password():
        who = current_user()
        return password_page(signin(), user_model, who, min_length=signin().cfg.password_min_length, home=home,
                             audit_changed=lambda s: signin().audit_user(s, "password_changed", who, g.ip))
