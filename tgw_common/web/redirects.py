"""Where the browser is sent: back to a `next` or `back` path, to sign in, to change a password.

Both apps name their sign-in blueprint `auth` with the endpoints `login`, `logout` and
`password`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, request, url_for
from werkzeug.wrappers import Response


def safe_next(target: str | None) -> str | None:
    r"""Only a path on this site, else None (the caller falls back to its default page).

    Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so
    `/\t/evil.com` becomes `//evil.com`: any control character, whitespace or backslash is
    refused outright, and what is left is judged by `urlsplit` (no scheme, no host, one '/')."""
    if not target or any(not ch.isprintable() or ch.isspace() or ch == "\\" for ch in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def to_login(**extra: str | None) -> Response:
    """To the sign-in page, which comes back here afterwards (a GET only: a form post cannot be
    replayed after signing in, so it returns to the default page)."""
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None, **extra))


def forced_password_change(must_change: bool) -> Response | None:
    """A user who must change their password may reach nothing else but signing out."""
    if must_change and request.endpoint not in ("auth.password", "auth.logout"):
        return redirect(url_for("auth.password"))
    return None
