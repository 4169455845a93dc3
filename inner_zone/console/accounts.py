"""Console operator accounts: roles, passwords, lockout (no Flask here: the CLI uses it too).

Roles are ordered: a viewer reads everything but the audit log; an operator also fixes
envelopes (quarantine, certificate registration, CRLs); an administrator also revokes
registrations, changes agencies and reads the audit log. docs/console.md has the table.
Password hashing and policy are shared with the portal (tgw_common/web/passwords.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tgw_common.db import transaction, utcnow
from tgw_common.web import passwords
from tgw_common.web.passwords import AccountError, check_password_policy, hash_password
from tgw_common.web.passwords import generate_password as generate_password  # re-exported for the CLI and `tgw up`

from . import audit
from .models import ROLES, ConsoleUser

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Operator:
    """The signed-in user as one request sees it."""

    id: int
    username: str
    display_name: str
    role: str
    must_change_password: bool

    def can(self, role: str) -> bool:
        """True when this user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def operator_of(user: ConsoleUser) -> Operator:
    return Operator(user.id, user.username, user.display_name, user.role, user.must_change_password)


def find_user(session: Session, username: str) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        raise AccountError(_("no console user %(username)s", username=username))
    return user


def add_user(engine: Engine, *, username: str, role: str, password: str, display_name: str = "",
             must_change: bool = True, min_length: int = 12, actor: str, where: str) -> dict:
    if not USERNAME.match(username):
        raise AccountError(_("username %(username)s: letters, digits and . _ @ - (at most 64)", username=repr(username)))
    if role not in ROLES:
        raise AccountError(_("role must be one of %(roles)s, not %(role)s", roles=", ".join(ROLES), role=repr(role)))
    check_password_policy(password, min_length)
    now = utcnow()
    with transaction(engine) as s:
        if s.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)) is not None:
            raise AccountError(_("username %(username)s is taken", username=username))
        user = ConsoleUser(username=username, display_name=display_name.strip()[:200], role=role,
                           password_hash=hash_password(password), active=True, must_change_password=must_change,
                           failed_logins=0, created_at=now, password_changed_at=now)
        s.add(user)
        s.flush()
        after = describe(user)
        audit.record(s, "user_added", actor=actor, ip=where, target=username, new_role=role, before=None, after=after)
        return after


def set_password(session: Session, user: ConsoleUser, password: str, *, must_change: bool, min_length: int) -> None:
    """`session` is the user's, as for every function here that changes a row."""
    passwords.set_password(user, password, must_change=must_change, min_length=min_length)


def reset_password(engine: Engine, username: str, password: str, *, must_change: bool, min_length: int,
                   actor: str, where: str) -> dict:
    with transaction(engine) as s:
        user = find_user(s, username)
        before = describe(user)
        set_password(s, user, password, must_change=must_change, min_length=min_length)
        after = describe(user)
        audit.record(s, "user_password_set", actor=actor, ip=where, target=username, before=before, after=after)
        return after


def set_active(engine: Engine, username: str, active: bool, *, actor: str, where: str) -> dict:
    from .models import ConsoleSession

    with transaction(engine) as s:
        user = find_user(s, username)
        before = describe(user)
        user.active = active
        if not active:  # signed out everywhere at once, not at the next idle timeout
            for row in s.scalars(select(ConsoleSession).where(ConsoleSession.user_id == user.id,
                                                               ConsoleSession.ended_at.is_(None))):
                row.ended_at = utcnow()
        after = describe(user)
        audit.record(s, "user_enabled" if active else "user_disabled", actor=actor, ip=where, target=username,
                     before=before, after=after)
        return after


def unlock(engine: Engine, username: str, *, actor: str, where: str) -> dict:
    with transaction(engine) as s:
        user = find_user(s, username)
        before = describe(user)
        user.failed_logins, user.locked_until = 0, None
        after = describe(user)
        audit.record(s, "user_unlocked", actor=actor, ip=where, target=username, before=before, after=after)
        return after


def describe(user: ConsoleUser) -> dict:
    now = utcnow()
    return {"username": user.username, "display_name": user.display_name, "role": user.role, "active": user.active,
            "locked": bool(user.locked_until and user.locked_until > now),
            "locked_until": user.locked_until.isoformat() if user.locked_until else None,
            "must_change_password": user.must_change_password,
            "created_at": user.created_at.isoformat(),
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None}


def list_users(engine: Engine) -> list[dict]:
    with transaction(engine) as s:
        return [describe(u) for u in s.scalars(select(ConsoleUser).order_by(ConsoleUser.username))]
