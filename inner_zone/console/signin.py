"""Signing in: passwords with lockout, and server-side sessions with idle and maximum age.

Everything that counts lives in the database, so lockout and timeouts hold across
gunicorn workers and restarts, and disabling a user ends their sessions at once. A miss
on an unknown user costs one Argon2 verification too, so timing does not tell users apart.
Lockout and session bookkeeping are the portal's too (tgw_common/web/signin.py).
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from tgw_common.db import transaction, utcnow
from tgw_common.web.signin import SignInBase

from . import audit
from .accounts import Operator, operator_of
from .models import ConsoleSession, ConsoleUser

BAD_CREDENTIALS = _l("wrong username or password")


class SignInRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignIn(SignInBase):
    user_model = ConsoleUser
    session_model = ConsoleSession

    def login(self, username: str, password: str, ip: str) -> tuple[str, Operator]:
        """Returns (session key for the cookie, operator) or raises SignInRefused."""
        now = utcnow()
        with transaction(self.engine) as s:
            user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username)) if username else None
        check = self._check_password(user, password, now)
        if not check.ok or user is None or not user.active:
            # One answer for every refusal; what really happened is in the audit log only.
            cause = "locked" if check.held else "disabled" if user is not None and check.ok else "password"
            audit.record(self.engine, "login_failed", actor=username or "-", ip=ip, outcome="refused", cause=cause)
            if check.delayed_for is not None:
                audit.record(self.engine, "login_throttled", actor=username, ip=ip, outcome="refused",
                             failures=check.failures, delay_seconds=int(check.delayed_for.total_seconds()))
            raise SignInRefused("UNAUTHENTICATED", BAD_CREDENTIALS)
        return self._start_session(user.id, password, ip, now)

    # --- web sessions (SignInBase.resume)
    def audit_user(self, where, action: str, user, ip: str) -> None:
        audit.record(where, action, actor=user.username, role=user.role, ip=ip)

    def _audit_expired(self, s, user: ConsoleUser | None, ip: str, cause: str) -> None:
        audit.record(s, "session_expired", actor=user.username if user else "-", ip=ip, cause=cause)

    def _signed_in_as(self, s, user: ConsoleUser, now) -> Operator:
        return operator_of(user)

    def live_sessions(self) -> int:
        cut = utcnow() - timedelta(minutes=self.cfg.session_timeout_minutes)
        with transaction(self.engine) as s:
            return s.scalar(select(func.count()).select_from(ConsoleSession)
                            .where(ConsoleSession.ended_at.is_(None), ConsoleSession.last_seen_at > cut)) or 0
