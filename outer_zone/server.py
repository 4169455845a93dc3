"""`tgw outer serve`: the portal under gunicorn, started programmatically (never Flask's dev server).

The master prepares what must happen once (tables, the cookie key, finishing uploads a
crash interrupted) before any worker exists; each worker then builds its own app, database
pool, ZeroMQ socket and heartbeat thread after the fork. Workers are gevent by default
(tgw_common/web/gevent_worker.py): a slow client holds a greenlet, not a thread, and is cut
off at outer.header_timeout_seconds / body_timeout_seconds. TLS is gunicorn's when outer.tls_certificate and
its key are set; otherwise a front proxy terminates it (outer.trusted_proxies).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tgw_common.config import Config, OuterConfig
from tgw_common.db import dispose_engines
from tgw_common.web.gunicorn_app import WebServer
from tgw_common.web.secretkey import load_secret_key

log = logging.getLogger(__name__)


def prepare(config: Config, *, session_id: str, started_at: datetime) -> dict:
    """What the master does once: tables, secret key, recovery of interrupted publications."""
    from .portal import Portal

    load_secret_key(config.outer.secret_key_file)
    portal = Portal(config, session_id=session_id, started_at=started_at)
    try:
        counts = portal.intake.sweep(at_startup=True)
        portal.beat()
    finally:
        portal.close()
        dispose_engines()
    return counts


class OuterServer(WebServer):
    proc_name = "tgw-outer-web"

    def section(self) -> OuterConfig:
        return self.tgw_config.outer

    def extra_settings(self) -> dict[str, Any]:
        tls = self.section().tls_files()
        if tls is None:
            return {}
        certfile, keyfile = (str(p) for p in tls)
        return {"certfile": certfile, "keyfile": keyfile}

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
