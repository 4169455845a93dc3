"""`tgw outer serve`: the portal under gunicorn, started programmatically (never Flask's dev server).

The master prepares what must happen once (tables, the cookie key, finishing uploads a
crash interrupted) before any worker exists; each worker then builds its own app, database
pool, ZeroMQ socket and heartbeat thread after the fork. Workers are gthread: a slow upload
occupies one thread, not a whole process. TLS is gunicorn's when outer.tls_certificate and
its key are set; otherwise a front proxy terminates it (outer.trusted_proxies).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from tgw_common.config import Config
from tgw_common.db import dispose_engines, utcnow
from tgw_common.logging_setup import JsonFormatter

log = logging.getLogger(__name__)


class JsonLogger(Logger):
    """gunicorn's own messages as JSON lines on stderr, like every other process of the gateway."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


def _post_fork(server, worker) -> None:
    # Pools opened by the master must not be shared with a child.
    dispose_engines()


def prepare(config: Config, *, session_id: str, started_at: datetime) -> dict:
    """What the master does once: tables, secret key, recovery of interrupted publications."""
    from .portal import Portal, load_secret_key

    load_secret_key(config.outer.secret_key_file)
    portal = Portal(config, session_id=session_id, started_at=started_at)
    try:
        counts = portal.intake.sweep(at_startup=True)
        portal.beat()
    finally:
        portal.close()
        dispose_engines()
    return counts


class OuterServer(BaseApplication):
    def __init__(self, config: Config, *, session_id: str | None = None) -> None:
        self.tgw_config = config
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = utcnow()
        super().__init__()

    def load_config(self) -> None:
        o = self.tgw_config.outer
        settings = {
            "bind": [o.bind],
            "workers": o.workers,
            "worker_class": "gthread",
            "threads": o.threads,
            "timeout": o.timeout_seconds,
            "graceful_timeout": 30,
            "keepalive": 5,
            "proc_name": "tgw-outer-web",
            "logger_class": JsonLogger,
            "accesslog": None,  # the app logs each request as JSON
            "errorlog": "-",
            # X-Forwarded-Proto is believed from the same proxies as X-Forwarded-For, no others.
            "forwarded_allow_ips": ",".join(o.trusted_proxies) if o.trusted_proxies else "",
            "limit_request_line": 4094,
            "limit_request_fields": 64,
            "post_fork": _post_fork,
            "preload_app": False,
        }
        # gunicorn >= 25 opens a control socket in $HOME by default: one more management
        # interface nobody here uses, and one path every instance on the host would fight over.
        if "control_socket_disable" in self.cfg.settings:
            settings["control_socket_disable"] = True
        tls = o.tls_files()
        if tls is not None:
            settings["certfile"], settings["keyfile"] = (str(p) for p in tls)
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from .portal import Portal
        from .web import create_app

        portal = Portal(self.tgw_config, session_id=self.session_id, started_at=self.started_at)
        return create_app(self.tgw_config, portal_obj=portal, background=True)


def serve(config: Config) -> None:
    server = OuterServer(config)
    counts = prepare(config, session_id=server.session_id, started_at=server.started_at)
    if counts.get("republished") or counts.get("parts_removed") or counts.get("orphans_removed"):
        log.warning("start-up recovery", extra=counts)
    server.run()
