"""Signing in: passwords with lockout, bearer tokens, rate limits, server-side web sessions.

Everything that counts lives in the database, so the limits hold across gunicorn workers
and restarts. Order of the checks on a login: the address's rate limit, the agency's
allow-list, the account's lockout, and only then the (costly) password hash. A miss on an
unknown user costs one Argon2 verification too, so timing does not tell users apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Engine, delete, func, select, update

from tgw_common.config import OuterConfig
from tgw_common.db import transaction, utcnow
from tgw_common.reasons import Layer, Refusal

from . import audit
from .accounts import Principal, hash_password, needs_rehash, principal, user_for_token, verify_password
from .models import Agency, AuthFailure, User, WebSession
from .netaccess import ip_allowed

# Writing last_seen on every click would make each page view a write; this is precise enough.
_TOUCH_EVERY = timedelta(seconds=15)


def _refuse(code: str, message: str) -> Refusal:
    return Refusal(code, Layer.UPLOAD, message)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


BAD_CREDENTIALS = "機關代號、帳號或密碼錯誤 / wrong agency code, username or password"


class SignIn:
    def __init__(self, engine: Engine, cfg: OuterConfig) -> None:
        self.engine = engine
        self.cfg = cfg

    # --- rate limits
    def failures_last_minute(self, ip: str) -> int:
        since = utcnow() - timedelta(minutes=1)
        with transaction(self.engine) as s:
            return s.scalar(select(func.count()).select_from(AuthFailure)
                            .where(AuthFailure.ip == ip, AuthFailure.at > since)) or 0

    def _check_rate(self, ip: str, kind: str, username: str | None) -> None:
        if self.failures_last_minute(ip) >= self.cfg.login_rate_per_minute:
            audit.record(self.engine, "login_failed" if kind == "login" else "api_auth_failed", actor=username or "-",
                         ip=ip, outcome="refused", reason="RATE_LIMITED")
            raise _refuse("RATE_LIMITED", f"此位址嘗試次數過多，請一分鐘後再試 / too many failed attempts from {ip}; "
                                          "wait a minute")

    def _note_failure(self, ip: str, kind: str, username: str | None) -> None:
        with transaction(self.engine) as s:
            s.add(AuthFailure(at=utcnow(), ip=ip, kind=kind, username=(username or "")[:64] or None))

    # --- passwords
    def login(self, *, agency: str, username: str, password: str, ip: str) -> tuple[str, Principal]:
        """Returns (session key for the cookie, principal) or raises a Refusal."""
        self._check_rate(ip, "login", username)
        now = utcnow()
        with transaction(self.engine) as s:
            agency_row = s.get(Agency, agency) if agency else None
            user = s.scalar(select(User).where(User.username == username)) if username else None
            known_agency = agency_row is not None and agency_row.active
        if known_agency and not ip_allowed(self.engine, agency, ip):
            self._note_failure(ip, "login", username)
            audit.record(self.engine, "ip_refused", actor=username or "-", agency=agency, ip=ip, outcome="refused",
                         reason="IP_NOT_ALLOWED", path="login")
            raise _refuse("IP_NOT_ALLOWED", f"來源位址 {ip} 不在機關 {agency} 的白名單 / address {ip} is not on "
                                            f"agency {agency}'s allow-list")
        if user is not None and (not known_agency or user.agency != agency):
            user = None
        if user is not None and user.locked_until and user.locked_until > now:
            self._note_failure(ip, "login", username)
            audit.record(self.engine, "login_failed", actor=username, agency=agency, ip=ip, outcome="refused",
                         reason="ACCOUNT_LOCKED")
            raise _refuse("ACCOUNT_LOCKED", f"帳號已鎖定至 {user.locked_until:%Y-%m-%d %H:%M} UTC / the account is "
                                            f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC")
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.active:
            self._note_failure(ip, "login", username)
            locked = self._count_failure(user.id) if user is not None and not ok else False
            audit.record(self.engine, "login_failed", actor=username or "-", agency=agency or None, ip=ip,
                         outcome="refused", reason="ACCOUNT_LOCKED" if locked else "UNAUTHENTICATED")
            if locked:
                raise _refuse("ACCOUNT_LOCKED", f"密碼錯誤次數過多，帳號鎖定 {self.cfg.lockout_minutes} 分鐘 / too many "
                                                f"wrong passwords: locked for {self.cfg.lockout_minutes} minutes")
            raise _refuse("UNAUTHENTICATED", BAD_CREDENTIALS)
        key = secrets.token_urlsafe(32)
        with transaction(self.engine) as s:
            row = s.get(User, user.id)
            row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
            if needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            s.add(WebSession(key_hash=_key_hash(key), user_id=row.id, ip=ip, created_at=now, last_seen_at=now))
            audit.record(s, "login", actor=row.username, agency=row.agency, ip=ip)
            who = principal(s, row, now)
        return key, who

    def _count_failure(self, user_id: int) -> bool:
        """One more wrong password; True when this one locks the account."""
        with transaction(self.engine) as s:
            s.execute(update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1))
            row = s.get(User, user_id)
            s.refresh(row)
            if row.failed_logins >= self.cfg.lockout_attempts:
                row.failed_logins = 0
                row.locked_until = utcnow() + timedelta(minutes=self.cfg.lockout_minutes)
                return True
        return False

    # --- web sessions
    def resume(self, key: str | None, ip: str) -> Principal | None:
        """The principal of a live session, or None (unknown, ended, idle too long, too old, user gone)."""
        if not key or len(key) > 100:
            return None
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(WebSession, _key_hash(key))
            if row is None or row.ended_at is not None:
                return None
            user = s.get(User, row.user_id)
            agency = s.get(Agency, user.agency) if user else None
            idle = now - row.last_seen_at > timedelta(minutes=self.cfg.session_timeout_minutes)
            too_old = now - row.created_at > timedelta(hours=self.cfg.session_max_hours)
            if idle or too_old or user is None or not user.active or agency is None or not agency.active:
                row.ended_at = now
                audit.record(s, "session_expired", actor=user.username if user else "-",
                             agency=user.agency if user else None, ip=ip,
                             cause="idle" if idle else "max_age" if too_old else "account")
                return None
            if now - row.last_seen_at > _TOUCH_EVERY:
                row.last_seen_at = now
            return principal(s, user, now)

    def end(self, key: str | None) -> None:
        if not key:
            return
        with transaction(self.engine) as s:
            row = s.get(WebSession, _key_hash(key))
            if row is not None and row.ended_at is None:
                row.ended_at = utcnow()

    def end_all(self, user_id: int, *, keep: str | None = None) -> None:
        """Sign a user out everywhere (password reset, disabled account), optionally but one session."""
        with transaction(self.engine) as s:
            q = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
            if keep:
                q = q.where(WebSession.key_hash != _key_hash(keep))
            s.execute(q.values(ended_at=utcnow()))

    # --- bearer tokens
    def bearer(self, header: str | None, ip: str) -> Principal:
        self._check_rate(ip, "api", None)
        scheme, _, value = (header or "").partition(" ")
        presented = value.strip() if scheme.lower() == "bearer" else None
        found = None
        if presented:
            with transaction(self.engine) as s:
                found = user_for_token(s, presented)
                if found is not None:
                    user, tok = found
                    now = utcnow()
                    if tok.last_used_at is None or now - tok.last_used_at > timedelta(minutes=1):
                        tok.last_used_at = now
                    who = principal(s, user, now)
        if found is None:
            self._note_failure(ip, "api", None)
            audit.record(self.engine, "api_auth_failed", actor="-", ip=ip, outcome="refused", reason="UNAUTHENTICATED",
                         presented="bearer" if presented else "none")
            raise _refuse("UNAUTHENTICATED", "需要有效的存取權杖（Authorization: Bearer …）/ a valid bearer token is "
                                             "required (Authorization: Bearer …)")
        return who

    # --- housekeeping
    def purge(self, *, keep_days: int = 30) -> None:
        cut = utcnow() - timedelta(days=keep_days)
        with transaction(self.engine) as s:
            s.execute(delete(AuthFailure).where(AuthFailure.at < utcnow() - timedelta(days=1)))
            s.execute(delete(WebSession).where(WebSession.last_seen_at < cut))
