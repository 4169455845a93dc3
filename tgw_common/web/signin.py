"""Sign-in bookkeeping both apps keep alike: growing delays after wrong passwords, server-side sessions.

The cookie holds only a random key; the session row is keyed by its SHA-256, so a stolen
database does not hand out live cookies. Idle and maximum age are checked on every request
and everything lives in the database, so delays and timeouts hold across gunicorn workers
and restarts.

A zone's SignIn subclasses SignInBase and names its two tables; it keeps what differs: how
the user is found (the portal also checks the agency and its allow-list), what is audited
(`audit_user`, `_audit_expired`), the texts of its refusals, whether an account may go on
(`_usable`) and what a live session resolves to (`_signed_in_as`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from tgw_common.config import WebServerConfig
from tgw_common.db import transaction, utcnow

from .passwords import hash_password, needs_rehash, verify_password

# Writing last_seen on every click would make each page view a write; this is precise enough.
TOUCH_EVERY = timedelta(seconds=15)
MAX_KEY_LENGTH = 100  # token_urlsafe(32) is 43 characters; anything far longer is not ours


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def login_delay(failures: int, cfg: WebServerConfig) -> timedelta | None:
    """How long an account must wait after its `failures`-th wrong password in a row: nothing
    before `lockout_attempts`, then base x 2^k seconds, capped. A cap, not a lock, so whoever
    knows a user name can hold its owner off for minutes at most."""
    over = failures - cfg.lockout_attempts
    if over < 0:
        return None
    return timedelta(seconds=min(cfg.login_delay_base_seconds * 2 ** min(over, 32), cfg.login_delay_max_seconds))


@dataclass(frozen=True)
class PasswordCheck:
    """What one sign-in attempt came to. `held`: refused unseen, the account's delay had not
    passed; `delayed_for`: this wrong password started (or lengthened) a delay, worth an alert."""

    ok: bool
    held: bool = False
    failures: int = 0
    delayed_for: timedelta | None = None


class SignInBase:
    # Columns used: id, password_hash, active, failed_logins, locked_until, last_login_at.
    user_model: ClassVar[Any]
    # Columns used: key_hash, user_id, ip, created_at, last_seen_at, ended_at.
    session_model: ClassVar[Any]

    def __init__(self, engine: Engine, cfg: WebServerConfig) -> None:
        self.engine = engine
        self.cfg = cfg

    # --- passwords and growing delays
    def _check_password(self, user, password: str, now: datetime) -> PasswordCheck:
        """Judge one attempt; the caller answers a refusal alike whatever it was.

        `user` may be None (unknown): a dummy hash is still verified, so timing does not tell.
        An account still in its delay is refused without looking at the password (a dummy hash
        again, for the timing), and such an attempt does not lengthen the delay: the owner can
        always get in once it has passed.
        """
        if user is not None and user.locked_until is not None and user.locked_until > now:
            verify_password(None, password)
            return PasswordCheck(ok=False, held=True, failures=user.failed_logins or 0)
        ok = verify_password(user.password_hash if user is not None else None, password)
        if ok or user is None:
            return PasswordCheck(ok=ok)
        failures, delay = self._count_failure(user.id, now)
        return PasswordCheck(ok=False, failures=failures, delayed_for=delay)

    def _count_failure(self, user_id: int, now: datetime) -> tuple[int, timedelta | None]:
        """One more wrong password: (failures in a row, the delay it starts, if any)."""
        users = self.user_model
        with transaction(self.engine) as s:
            # An UPDATE ... SET n = n + 1, not read-then-write: two workers may count at once.
            s.execute(update(users).where(users.id == user_id).values(failed_logins=users.failed_logins + 1))
            row = s.get(users, user_id)
            s.refresh(row)
            delay = login_delay(row.failed_logins, self.cfg)
            if delay is not None:
                row.locked_until = now + delay
            return row.failed_logins, delay

    # --- what a zone says about its users
    def audit_user(self, where: Session | Engine, action: str, user, ip: str) -> None:
        """An audit entry of `user` (a user row or what a session resolves to) in the zone's log."""
        raise NotImplementedError

    def _audit_expired(self, s: Session, user, ip: str, cause: str) -> None:
        """The audit entry of a session ended by time or by its account; `user` may be None."""
        raise NotImplementedError

    def _usable(self, s: Session, user) -> bool:
        """Whether the account behind a session may still use it (a zone may check more)."""
        return user is not None and user.active

    def _signed_in_as(self, s: Session, user, now: datetime) -> Any:
        """What a live session resolves to for the pages (the zone's principal or operator)."""
        raise NotImplementedError

    # --- sessions
    def _start_session(self, user_id: int, password: str, ip: str, now: datetime) -> tuple[str, Any]:
        """After a right password on an active account: (key for the cookie, who signed in)."""
        with transaction(self.engine) as s:
            row = s.get(self.user_model, user_id)
            key = self._open_session(s, row, password, ip, now)
            self.audit_user(s, "login", row, ip)
            return key, self._signed_in_as(s, row, now)

    def resume(self, key: str | None, ip: str, *, touch: bool = True) -> Any:
        """Who a live session belongs to, or None (unknown, ended, idle too long, too old,
        account gone or disabled: the session then ends, audited).

        `touch=False` for requests that are not the user's doing (the console's own refreshes):
        a screen left open must still time out.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            row = self._session_row(s, key)
            if row is None:
                return None
            user = s.get(self.user_model, row.user_id)
            cause = self._expiry(row, now)
            if cause is None and not self._usable(s, user):
                cause = "account"
            if cause is not None:
                row.ended_at = now
                self._audit_expired(s, user, ip, cause)
                return None
            if touch:
                self._touch(row, now)
            return self._signed_in_as(s, user, now)

    def _open_session(self, s: Session, row, password: str, ip: str, now: datetime) -> str:
        """After a right password: clear the failure count, upgrade an old hash, and start a
        session; returns the key for the cookie."""
        row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
        if needs_rehash(row.password_hash):
            row.password_hash = hash_password(password)
        key = secrets.token_urlsafe(32)
        s.add(self.session_model(key_hash=key_hash(key), user_id=row.id, ip=ip, created_at=now, last_seen_at=now))
        return key

    def _session_row(self, s: Session, key: str | None):
        """The row of a session that has not ended, or None."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        row = s.get(self.session_model, key_hash(key))
        if row is None or row.ended_at is not None:
            return None
        return row

    def _expiry(self, row, now: datetime) -> str | None:
        """Why the session is over by time ("idle", "max_age"), or None while it is not."""
        if now - row.last_seen_at > timedelta(minutes=self.cfg.session_timeout_minutes):
            return "idle"
        if now - row.created_at > timedelta(hours=self.cfg.session_max_hours):
            return "max_age"
        return None

    @staticmethod
    def _touch(row, now: datetime) -> None:
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now

    def end(self, key: str | None) -> None:
        if not key:
            return
        with transaction(self.engine) as s:
            row = s.get(self.session_model, key_hash(key))
            if row is not None and row.ended_at is None:
                row.ended_at = utcnow()

    def end_all(self, user_id: int, *, keep: str | None = None) -> None:
        """Sign a user out everywhere (password changed or reset, account disabled), optionally
        but the one session that made the change."""
        sessions = self.session_model
        with transaction(self.engine) as s:
            q = update(sessions).where(sessions.user_id == user_id, sessions.ended_at.is_(None))
            if keep:
                q = q.where(sessions.key_hash != key_hash(keep))
            s.execute(q.values(ended_at=utcnow()))
