"""`tgw inner console`: the console under gunicorn, started in-process (never Flask's dev server).

The master does once what must happen once (the console's tables, the intake tables'
migrations, the cookie key) before any worker exists; each worker then builds its own app,
database pool and heartbeat thread after the fork. Workers are gevent by default, as the portal's. TLS is the front
proxy's (console.trusted_proxies); gunicorn itself serves plain HTTP on console.bind. Under
systemd (Type=notify) the arbiter sends READY=1 itself once it listens.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tgw_common.config import Config, ConsoleConfig
from tgw_common.db import dispose_engines
from tgw_common.web.gunicorn_app import WebServer
from tgw_common.web.secretkey import load_secret_key

log = logging.getLogger(__name__)


def prepare(config: Config, *, session_id: str, started_at: datetime) -> None:
    """What the master does once: tables and migrations, the secret key, a first heartbeat."""
    from .state import Console

    load_secret_key(config.console.secret_key_file)
    console = Console(config, session_id=session_id, started_at=started_at)
    try:
        console.beat()
    finally:
        console.close()
        dispose_engines()


class ConsoleServer(WebServer):
    proc_name = "tgw-inner-console"

    def section(self) -> ConsoleConfig:
        return self.tgw_config.console

    def load(self):
        from .app import create_app
        from .state import Console

        console = Console(self.tgw_config, session_id=self.session_id, started_at=self.started_at)
        return create_app(self.tgw_config, console_obj=console, background=True)


def serve(config: Config) -> None:
    server = ConsoleServer(config)
    prepare(config, session_id=server.session_id, started_at=server.started_at)
    server.run()
