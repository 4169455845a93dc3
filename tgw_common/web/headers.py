"""The security headers on every answer of both web apps.

The policy allows no inline script or style and no third-party origin: every asset is served
by the app itself (the intranet has no internet, and the portal wants none). HSTS is left to
each app: the portal always sends it, the console only when its cookie is Secure.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, request

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin (not no-referrer): flask-wtf checks the Referer of HTTPS form posts.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def secure(response: Response, extra: Mapping[str, str] | None = None) -> Response:
    """Add the headers a view did not set itself; pages (not static files) are never cached,
    so a signed-in page does not outlive the session in a shared browser's cache."""
    for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response
