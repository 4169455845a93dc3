"""A request body that stopped arriving: the client's fault, answered 408 and cut off.

gevent_worker.py puts a socket timeout of `body_timeout_seconds` on every read of the body,
so a stalled upload surfaces in the app as TimeoutError. Both apps answer it alike: one
line in the log (not a traceback) and `Connection: close`, each through its own error page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, request
from werkzeug.exceptions import HTTPException, RequestTimeout

log = logging.getLogger(__name__)


def answer_stalled_bodies(app: Flask, http_error: Callable[[HTTPException], object]) -> None:
    """Register the TimeoutError handler; `http_error` is the app's page for an HTTP error."""

    @app.errorhandler(TimeoutError)
    def client_stalled(error):
        log.info("request body stalled; cut off", extra={"path": request.path})
        response = app.make_response(http_error(RequestTimeout()))
        response.headers["Connection"] = "close"
        return response
