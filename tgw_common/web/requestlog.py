"""A request's start (its time and the client's address) and its one JSON access-log line.

gunicorn's own access log is off in both apps: this line is written by the app, so it can
name the signed-in user and the client address as the app settled it (behind proxies).
"""

from __future__ import annotations

import logging
import time

from flask import Response, current_app, g, request

from .clientaddr import client_address


def begin() -> None:
    """The first thing every request does; the trusted proxies are app.config["TRUSTED_PROXIES"]."""
    g.started = time.monotonic()
    g.ip = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          current_app.config["TRUSTED_PROXIES"])


def log_request(log: logging.Logger, response: Response, user: str | None) -> None:
    elapsed = time.monotonic() - g.get("started", time.monotonic())
    log.info("request", extra={"method": request.method, "path": request.path, "status": response.status_code,
                               "ip": g.get("ip"), "user": user, "ms": round(elapsed * 1000, 1)})
