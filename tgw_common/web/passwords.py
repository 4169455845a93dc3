"""Passwords in both web apps: Argon2id hashes, the policy, initial passwords, changing one's own.

Hashes are argon2-cffi's defaults (RFC 9106). A check against an unknown user still costs
one verification (against a dummy hash), so the time an answer takes does not tell which
usernames exist. Texts are zh-TW first, English second, as users of both apps read them.
"""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _

from tgw_common.db import utcnow

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MAX_LENGTH = 256


class AccountError(ValueError):
    """A request on an account that cannot be done; the message says why (zh-TW / English).

    Shared so that a password refused by the policy and any other refusal of a zone's
    account functions are caught by one `except AccountError`.
    """


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def check_password_policy(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise AccountError(_("the password needs at least %(n)d characters", n=min_length))
    if len(password) > MAX_LENGTH:
        raise AccountError(_("the password is longer than %(n)d characters", n=MAX_LENGTH))
    classes = sum(any(c in group for c in password)
                  for group in (string.ascii_lowercase, string.ascii_uppercase, string.digits))
    if classes < 2 and not any(not c.isalnum() for c in password):
        raise AccountError(_("mix letters with digits or symbols"))


def generate_password() -> str:
    """An initial password shown once; the user must change it at the first sign-in."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(14))
    return f"{core[:7]}-{core[7:]}"


def set_password(user, password: str, *, must_change: bool, min_length: int) -> None:
    """A new password on a user row (either app's table: the columns are named alike).

    Setting a password also lifts a lockout: whoever set it knows who the user is.
    """
    check_password_policy(password, min_length)
    user.password_hash = hash_password(password)
    user.must_change_password = must_change
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None


def change_own_password(user, *, current: str, new: str, confirm: str, min_length: int) -> str | None:
    """The signed-in user's own change: None when done, else the error to show on the form."""
    if not verify_password(user.password_hash, current):
        return _("the current password is wrong")
    if new != confirm:
        return _("the two new passwords differ")
    if new == current:
        return _("choose a password different from the current one")
    try:
        set_password(user, new, must_change=False, min_length=min_length)
    except AccountError as exc:
        return str(exc)
    return None
