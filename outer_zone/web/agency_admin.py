"""The agency administrator's pages (權限管理者): the agency's users and delegations (代理設定).

Everything here is confined to the administrator's own agency; agencies themselves, their
allow-lists and tokens are treasury business and exist only in the CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from tgw_common.db import transaction, utcnow

from .. import audit
from ..accounts import (
    AccountError,
    add_delegation,
    add_user,
    any_admin_left,
    generate_password,
    list_delegations,
    list_users,
    own_roles,
    set_password,
    set_roles,
    users_of,
)
from ..models import ROLES, Delegation, User
from .helpers import TAIPEI, portal, require, who

bp = Blueprint("agency_admin", __name__, url_prefix="/admin")

MANAGE = ("admin", _l("manage users and delegations"))


def _user_of_my_agency(s, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None or user.agency != who().agency:
        abort(404)
    return user


def _users_page(error: str | None = None, created: dict | None = None, status_code: int = 200):
    users = list_users(portal().engine, who().agency)
    # Repeated wrong passwords on the agency's accounts: the admin is the one to ask the user
    # (or to notice somebody guessing), since the sign-in page itself never tells.
    throttled = audit.recent(portal().engine, limit=20, agency=who().agency, action="login_throttled")
    return render_template("admin_users.html", users=users, roles=ROLES, error=error, created=created,
                           throttled=throttled), status_code


@bp.get("/users")
@require(*MANAGE)
def users():
    return _users_page()


@bp.post("/users")
@require(*MANAGE)
def users_post():
    me = who()
    form = request.form
    roles = [r for r in form.getlist("roles") if r in ROLES]
    password = generate_password()
    try:
        with transaction(portal().engine) as s:
            user = add_user(s, agency=me.agency, username=form.get("username", "").strip(), roles=roles,
                            password=password, display_name=form.get("display_name", ""), must_change=True,
                            min_length=min(portal().cfg.password_min_length, len(password)))
            audit.record(s, "user_created", actor=me.username, agency=me.agency, ip=g.ip, target=user.username,
                         roles=roles)
            username = user.username
    except AccountError as exc:
        return _users_page(str(exc), status_code=400)
    # Shown once in this answer and never stored in a cookie or flash message.
    return _users_page(created={"username": username, "password": password})


@bp.get("/users/<int:user_id>")
@require(*MANAGE)
def user_edit(user_id: int):
    with transaction(portal().engine) as s:
        user = _user_of_my_agency(s, user_id)
        roles = own_roles(s, user.id)
    return render_template("admin_user.html", user=user, user_roles=roles, roles=ROLES)


@bp.post("/users/<int:user_id>")
@require(*MANAGE)
def user_update(user_id: int):
    me = who()
    form = request.form
    roles = [r for r in form.getlist("roles") if r in ROLES]
    active = form.get("active") == "on"
    the_portal = portal()
    try:
        with transaction(the_portal.engine) as s:
            user = _user_of_my_agency(s, user_id)
            losing_admin = "admin" in own_roles(s, user.id) and ("admin" not in roles or not active)
            if losing_admin and not any_admin_left(s, me.agency, excluding=user.id):
                raise AccountError(_("the agency needs at least one active administrator"))
            set_roles(s, user, roles)
            user.display_name = form.get("display_name", user.display_name).strip()[:200]
            was_active, user.active = user.active, active
            audit.record(s, "user_updated", actor=me.username, agency=me.agency, ip=g.ip, target=user.username,
                         roles=sorted(set(roles)), active=active)
    except AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("agency_admin.user_edit", user_id=user_id))
    if was_active and not active:
        the_portal.signin.end_all(user_id)
    flash(_("saved"), "ok")
    return redirect(url_for("agency_admin.users"))


@bp.post("/users/<int:user_id>/reset-password")
@require(*MANAGE)
def user_reset(user_id: int):
    me = who()
    password = generate_password()
    with transaction(portal().engine) as s:
        user = _user_of_my_agency(s, user_id)
        set_password(s, user, password, must_change=True, min_length=len(password))
        audit.record(s, "user_password_reset", actor=me.username, agency=me.agency, ip=g.ip, target=user.username)
        username = user.username
    portal().signin.end_all(user_id)
    return _users_page(created={"username": username, "password": password, "reset": True})


def _delegations_page(error: str | None = None, status_code: int = 200):
    with transaction(portal().engine) as s:
        rows = list_delegations(s, who().agency)
        people = [(u.id, u.username, u.display_name) for u in users_of(s, who().agency) if u.active]
    roles = [r for r in ROLES if r != "admin"]
    return render_template("admin_delegations.html", delegations=rows, people=people, roles=roles,
                           error=error), status_code


@bp.get("/delegations")
@require(*MANAGE)
def delegations():
    return _delegations_page()


def _when(text: str | None) -> datetime:
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise AccountError(_("not a date and time: %(text)s", text=repr((text or "")[:30]))) from None
    return (value if value.tzinfo else value.replace(tzinfo=TAIPEI)).astimezone(UTC)


@bp.post("/delegations")
@require(*MANAGE)
def delegations_post():
    me = who()
    form = request.form
    try:
        principal_id = int(form.get("principal", "0"))
        delegate_id = int(form.get("delegate", "0"))
        with transaction(portal().engine) as s:
            row = add_delegation(s, agency=me.agency, principal_id=principal_id, delegate_id=delegate_id,
                                 role=form.get("role", ""), starts_at=_when(form.get("starts_at")),
                                 ends_at=_when(form.get("ends_at")), created_by=me.username)
            names = {uid: name for uid, name in s.execute(
                select(User.id, User.username).where(User.id.in_([principal_id, delegate_id])))}
            audit.record(s, "delegation_added", actor=me.username, agency=me.agency, ip=g.ip, target=str(row.id),
                         principal=names.get(principal_id), delegate=names.get(delegate_id), role=row.role,
                         starts_at=row.starts_at.isoformat(), ends_at=row.ends_at.isoformat())
    except ValueError as exc:  # AccountError, or a user id that is not a number
        return _delegations_page(str(exc), 400)
    flash(_("delegation added"), "ok")
    return redirect(url_for("agency_admin.delegations"))


@bp.post("/delegations/<int:delegation_id>/revoke")
@require(*MANAGE)
def delegation_revoke(delegation_id: int):
    me = who()
    with transaction(portal().engine) as s:
        row = s.get(Delegation, delegation_id)
        if row is None or row.agency != me.agency:
            abort(404)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.record(s, "delegation_revoked", actor=me.username, agency=me.agency, ip=g.ip,
                         target=str(row.id))
    flash(_("delegation revoked"), "ok")
    return redirect(url_for("agency_admin.delegations"))
