"""`tgw inner console`: the console under gunicorn, started in-process (never Flask's dev server).

The master does once what must happen once (the console's tables, the intake tables'
migrations, the cookie key) before any worker exists; each worker then builds its own app,
database pool and heartbeat thread after the fork. Workers are gthread. TLS is the front
proxy's (console.trusted_proxies); gunicorn itself serves plain HTTP on console.bind. Under
systemd (Type=notify) the arbiter sends READY=1 itself once it listens.
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


def prepare(config: Config, *, session_id: str, started_at: datetime) -> None:
    """What the master does once: tables and migrations, the secret key, a first heartbeat."""
    from .state import Console, load_secret_key

    load_secret_key(config.console.secret_key_file)
    console = Console(config, session_id=session_id, started_at=started_at)
    try:
        console.beat()
    finally:
        console.close()
        dispose_engines()


class ConsoleServer(BaseApplication):
    def __init__(self, config: Config, *, session_id: str | None = None) -> None:
        self.tgw_config = config
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = utcnow()
        super().__init__()

    def load_config(self) -> None:
        c = self.tgw_config.console
        settings = {
            "bind": [c.bind],
            "workers": c.workers,
            "worker_class": "gthread",
            "threads": c.threads,
            "timeout": c.timeout_seconds,
            "graceful_timeout": 30,
            "keepalive": 5,
            "proc_name": "tgw-inner-console",
            "logger_class": JsonLogger,
            "accesslog": None,  # the app logs each request as JSON
            "errorlog": "-",
            "forwarded_allow_ips": ",".join(c.trusted_proxies) if c.trusted_proxies else "",
            "limit_request_line": 4094,
            "limit_request_fields": 64,
            "post_fork": _post_fork,
            "preload_app": False,
        }
        # gunicorn >= 25 opens a control socket by default: one more management interface
        # nobody here uses, and one path every instance on the host would fight over.
        if "control_socket_disable" in self.cfg.settings:
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        from .state import Console

        console = Console(self.tgw_config, session_id=self.session_id, started_at=self.started_at)
        return create_app(self.tgw_config, console_obj=console, background=True)


def serve(config: Config) -> None:
    server = ConsoleServer(config)
    prepare(config, session_id=server.session_id, started_at=server.started_at)
    server.run()
