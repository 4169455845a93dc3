"""Where the browser is sent: back to a `next` or `back` path, to sign in, to change a password.

Both apps name their sign-in blueprint `auth` with the endpoints `login`, `logout` and
`password`.
"""

from __future__ import annotations

from flask import redirect, request, url_for
from werkzeug.wrappers import Response


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never //host, a scheme, or a backslash that a browser may
    read as a slash (each would be an open redirect); None for anything else."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
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
