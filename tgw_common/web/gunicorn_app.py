"""gunicorn run in-process for a web app (never Flask's development server).

The skeleton both apps share: gevent workers with header and body deadlines (gevent_worker.py;
gthread on request), JSON logs on stderr, conservative request
limits, a fresh database pool per worker, X-Forwarded-Proto believed only from the trusted
proxies, and no control socket. A subclass names its config section and process name,
adds its own settings (TLS, say) and builds the app in `load()`, which runs in each worker
after the fork.
"""

from __future__ import annotations

import uuid
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from tgw_common.config import Config, WebServerConfig
from tgw_common.db import dispose_engines, utcnow
from tgw_common.logging_setup import JsonFormatter


class JsonLogger(Logger):
    """gunicorn's own messages as JSON lines on stderr, like every other process of the gateway."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


def post_fork(server, worker) -> None:
    # Pools opened by the master must not be shared with a child.
    dispose_engines()


def worker_settings(s: WebServerConfig) -> dict[str, Any]:
    if s.worker_class == "gthread":
        return {"worker_class": "gthread", "threads": s.threads}
    return {"worker_class": "tgw_common.web.gevent_worker.DeadlineGeventWorker",
            "worker_connections": s.worker_connections}


class WebServer(BaseApplication):
    proc_name = "tgw-web"

    def __init__(self, config: Config, *, session_id: str | None = None) -> None:
        # Set before BaseApplication.__init__, which calls load_config().
        self.tgw_config = config
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = utcnow()
        super().__init__()

    def section(self) -> WebServerConfig:
        """The app's config section (bind, workers, worker_class, threads, worker_connections,
        timeout_seconds, header_timeout_seconds, body_timeout_seconds, trusted_proxies)."""
        raise NotImplementedError

    def extra_settings(self) -> dict[str, Any]:
        return {}

    def load_config(self) -> None:
        s = self.section()
        settings = {
            "bind": [s.bind],
            "workers": s.workers,
            **worker_settings(s),
            "timeout": s.timeout_seconds,
            "graceful_timeout": 30,
            "keepalive": 5,
            "proc_name": self.proc_name,
            "logger_class": JsonLogger,
            "accesslog": None,  # the app logs each request as JSON
            "errorlog": "-",
            # X-Forwarded-Proto is believed from the same proxies as X-Forwarded-For, no others.
            "forwarded_allow_ips": ",".join(s.trusted_proxies) if s.trusted_proxies else "",
            "limit_request_line": 4094,
            "limit_request_fields": 64,
            "post_fork": post_fork,
            "preload_app": False,
            **self.extra_settings(),
        }
        # gunicorn >= 25 opens a control socket in $HOME by default: one more management
        # interface nobody here uses, and one path every instance on the host would fight over.
        if "control_socket_disable" in self.cfg.settings:
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)
