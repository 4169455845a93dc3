"""The service under gunicorn (tgw_common/web/gunicorn_app.py), never Flask's dev server.

One worker: the pending requests live in that process's memory, and one officer uses it.
gthread rather than gevent: the PKCS #11 calls block in C, which would stall a gevent hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tgw_common.config import Config, SignerConfig
from tgw_common.web.gunicorn_app import WebServer


@dataclass(frozen=True)
class _Gunicorn:
    """The few settings WebServer.load_config reads, fixed for a single-user local process."""

    bind: str
    workers: int = 1
    worker_class: str = "gthread"
    threads: int = 4
    worker_connections: int = 16
    timeout_seconds: int = 120
    trusted_proxies: list[str] = field(default_factory=list)


class SignerServer(WebServer):
    proc_name = "tgw-agency-signer"

    def __init__(self, config: Config, *, held_pin: str | None = None) -> None:
        self.held_pin = held_pin
        super().__init__(config)

    def section(self) -> _Gunicorn:
        return _Gunicorn(bind=self.signer().listen)

    def signer(self) -> SignerConfig:
        return self.tgw_config.signer

    def load(self):
        from .app import create_app

        return create_app(self.signer(), held_pin=self.held_pin)


def serve(config: Config, *, held_pin: str | None = None) -> None:
    SignerServer(config, held_pin=held_pin).run()
