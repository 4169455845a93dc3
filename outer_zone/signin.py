"""Signing in: passwords with growing delays, bearer tokens, rate limits, server-side web sessions.

Everything that counts lives in the database, so the limits hold across gunicorn workers
and restarts. Order of the checks on a login: the address's rate limit, the agency's
allow-list, the account's delay, and only then the (costly) password hash. A miss on an
unknown user, or on an account still in its delay, costs one Argon2 verification too, and
every refusal of a password reads alike, so neither answer nor timing tells users apart.
Delays and session bookkeeping are the console's too (tgw_common/web/signin.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, func, select

from tgw_common.db import transaction, utcnow
from tgw_common.reasons import Layer, Refusal
from tgw_common.web.signin import PasswordCheck, SignInBase

from . import audit
from .accounts import Principal, principal, user_for_token
from .models import Agency, AuthFailure, User, WebSession
from .netaccess import ip_allowed

log = logging.getLogger(__name__)


def _refuse(code: str, message: str) -> Refusal:
    return Refusal(code, Layer.UPLOAD, message)


BAD_CREDENTIALS = "機關代號、帳號或密碼錯誤 / wrong agency code, username or password"


class SignIn(SignInBase):
    user_model = User
    session_model = WebSession

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
        check = self._check_password(user, password, now)
        if not check.ok or user is None or not user.active:
            self._refuse_login(check, user, agency=agency, username=username, ip=ip)
        return self._start_session(user.id, password, ip, now)

    def _refuse_login(self, check: PasswordCheck, user: User | None, *, agency: str, username: str, ip: str):
        """One answer for every refusal (unknown user, wrong password, an account still in its
        delay), so neither a user name's existence nor its delay can be read from outside;
        what really happened goes to the audit log, and a new delay alerts the agency's admin."""
        self._note_failure(ip, "login", username)
        audit.record(self.engine, "login_failed", actor=username or "-", agency=agency or None, ip=ip,
                     outcome="refused", reason="ACCOUNT_LOCKED" if check.held else "UNAUTHENTICATED")
        if check.delayed_for is not None and user is not None:
            seconds = int(check.delayed_for.total_seconds())
            audit.record(self.engine, "login_throttled", actor=username, agency=user.agency, ip=ip, target=username,
                         outcome="refused", reason="ACCOUNT_LOCKED", failures=check.failures, delay_seconds=seconds)
            log.warning("sign-in delayed after repeated wrong passwords",
                        extra={"event": "login_throttled", "agency": user.agency, "username": username, "ip": ip,
                               "failures": check.failures, "delay_seconds": seconds})
        raise _refuse("UNAUTHENTICATED", BAD_CREDENTIALS)

    # --- web sessions (SignInBase.resume)
    def audit_user(self, where, action: str, user, ip: str) -> None:
        audit.record(where, action, actor=user.username, agency=user.agency, ip=ip)

    def _audit_expired(self, s, user: User | None, ip: str, cause: str) -> None:
        audit.record(s, "session_expired", actor=user.username if user else "-",
                     agency=user.agency if user else None, ip=ip, cause=cause)

    def _usable(self, s, user: User | None) -> bool:
        """The user and the user's agency must both still be active."""
        agency = s.get(Agency, user.agency) if user else None
        return user is not None and user.active and agency is not None and agency.active

    def _signed_in_as(self, s, user: User, now) -> Principal:
        return principal(s, user, now)

    # --- bearer tokens
    def bearer(self, header: str | None, ip: str) -> Principal:
        """The token is judged first: a valid one is never rate-limited, so one bad client
        behind an agency's NAT cannot lock its colleagues out. Only a failure counts, and
        only a failing request is refused for the address's earlier failures."""
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
            self._check_rate(ip, "api", None)
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
