"""The Flask settings both apps give their session cookie, CSRF tokens and front proxies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tgw_common.config import WebServerConfig

from .clientaddr import parse_networks
from .secretkey import load_secret_key


def session_settings(cfg: WebServerConfig, cookie: str) -> dict[str, Any]:
    """For app.config.update(); `cookie` is the bare cookie name.

    The session itself lives in the database (the cookie holds only its random key), so the
    cookie's lifetime is the idle timeout and a CSRF token lives as long as a session may.
    """
    return {
        "SECRET_KEY": load_secret_key(cfg.secret_key_file),
        # __Host- cookies must be Secure, path=/ and host-only: browsers enforce what we promise.
        "SESSION_COOKIE_NAME": f"__Host-{cookie}" if cfg.cookie_secure else cookie,
        "SESSION_COOKIE_SECURE": cfg.cookie_secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=cfg.session_timeout_minutes),
        "WTF_CSRF_TIME_LIMIT": cfg.session_max_hours * 3600,
        "WTF_CSRF_SSL_STRICT": True,
        "TRUSTED_PROXIES": parse_networks(cfg.trusted_proxies),
    }
