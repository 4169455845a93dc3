"""Signing in: passwords with lockout, and server-side sessions with idle and maximum age.

Everything that counts lives in the database, so lockout and timeouts hold across
gunicorn workers and restarts, and disabling a user ends their sessions at once. A miss
on an unknown user costs one Argon2 verification too, so timing does not tell users apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from tgw_common.config import ConsoleConfig
from tgw_common.db import transaction, utcnow

from . import audit
from .accounts import Operator, hash_password, needs_rehash, operator_of, verify_password
from .models import ConsoleSession, ConsoleUser

# Writing last_seen on every click would make each page view a write; this is precise enough.
_TOUCH_EVERY = timedelta(seconds=15)
BAD_CREDENTIALS = "帳號或密碼錯誤 / wrong username or password"


class SignInRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SignIn:
    def __init__(self, engine: Engine, cfg: ConsoleConfig) -> None:
        self.engine = engine
        self.cfg = cfg

    def login(self, username: str, password: str, ip: str) -> tuple[str, Operator]:
        """Returns (session key for the cookie, operator) or raises SignInRefused."""
        now = utcnow()
        with transaction(self.engine) as s:
            user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username)) if username else None
            locked_until = user.locked_until if user is not None else None
        if user is not None and locked_until and locked_until > now:
            audit.record(self.engine, "login_failed", actor=username, ip=ip, outcome="refused", cause="locked")
            raise SignInRefused("ACCOUNT_LOCKED", f"帳號已鎖定至 {locked_until:%Y-%m-%d %H:%M} UTC / the account is "
                                                  f"locked until {locked_until:%Y-%m-%d %H:%M} UTC")
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.active:
            locked = self._count_failure(user.id) if user is not None and not ok else False
            cause = "locked" if locked else "disabled" if user is not None and ok else "password"
            audit.record(self.engine, "login_failed", actor=username or "-", ip=ip, outcome="refused", cause=cause)
            if locked:
                raise SignInRefused("ACCOUNT_LOCKED", f"密碼錯誤次數過多，帳號鎖定 {self.cfg.lockout_minutes} 分鐘 / "
                                                      f"too many wrong passwords: locked for "
                                                      f"{self.cfg.lockout_minutes} minutes")
            raise SignInRefused("UNAUTHENTICATED", BAD_CREDENTIALS)
        key = secrets.token_urlsafe(32)
        with transaction(self.engine) as s:
            row = s.get(ConsoleUser, user.id)
            row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
            if needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            s.add(ConsoleSession(key_hash=_key_hash(key), user_id=row.id, ip=ip, created_at=now, last_seen_at=now))
            audit.record(s, "login", actor=row.username, role=row.role, ip=ip)
            return key, operator_of(row)

    def _count_failure(self, user_id: int) -> bool:
        """One more wrong password; True when this one locks the account."""
        with transaction(self.engine) as s:
            s.execute(update(ConsoleUser).where(ConsoleUser.id == user_id)
                      .values(failed_logins=ConsoleUser.failed_logins + 1))
            row = s.get(ConsoleUser, user_id)
            s.refresh(row)
            if row.failed_logins >= self.cfg.lockout_attempts:
                row.failed_logins = 0
                row.locked_until = utcnow() + timedelta(minutes=self.cfg.lockout_minutes)
                return True
        return False

    def resume(self, key: str | None, ip: str, *, touch: bool = True) -> Operator | None:
        """The operator of a live session, or None (unknown, ended, idle too long, too old, user disabled).

        `touch=False` for the dashboard's own refreshes: a screen left open must still time out.
        """
        if not key or len(key) > 100:
            return None
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(ConsoleSession, _key_hash(key))
            if row is None or row.ended_at is not None:
                return None
            user = s.get(ConsoleUser, row.user_id)
            idle = now - row.last_seen_at > timedelta(minutes=self.cfg.session_timeout_minutes)
            too_old = now - row.created_at > timedelta(hours=self.cfg.session_max_hours)
            if idle or too_old or user is None or not user.active:
                row.ended_at = now
                audit.record(s, "session_expired", actor=user.username if user else "-", ip=ip,
                             cause="idle" if idle else "max_age" if too_old else "account")
                return None
            if touch and now - row.last_seen_at > _TOUCH_EVERY:
                row.last_seen_at = now
            return operator_of(user)

    def end(self, key: str | None) -> None:
        if not key:
            return
        with transaction(self.engine) as s:
            row = s.get(ConsoleSession, _key_hash(key))
            if row is not None and row.ended_at is None:
                row.ended_at = utcnow()

    def end_others(self, user_id: int, keep: str | None) -> None:
        """After a password change: every other session of the user ends."""
        with transaction(self.engine) as s:
            q = update(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
            if keep:
                q = q.where(ConsoleSession.key_hash != _key_hash(keep))
            s.execute(q.values(ended_at=utcnow()))

    def live_sessions(self) -> int:
        cut = utcnow() - timedelta(minutes=self.cfg.session_timeout_minutes)
        with transaction(self.engine) as s:
            return s.scalar(select(func.count()).select_from(ConsoleSession)
                            .where(ConsoleSession.ended_at.is_(None), ConsoleSession.last_seen_at > cut)) or 0
