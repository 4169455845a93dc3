"""One console process's state: the zone database, quarantine, registry, trust store, heartbeat.

Built once per gunicorn worker (after the fork) and by the master before any worker
exists. A background thread per worker writes the "inner-console" heartbeat; the trust
store is rebuilt whenever a CRL or anchor file changes (an operator may have installed a
fresh CRL through this very console, or the ops team by hand).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path

from tgw_common.config import Config, ConfigError
from tgw_common.db import utcnow
from tgw_common.pki.trust import TrustStore
from tgw_common.registry import SignerRegistry
from tgw_common.web.filemark import files_mark
from tgw_common.web.ticker import Ticker

from ..context import Inner, open_inner
from .models import create_tables
from .signin import SignIn

log = logging.getLogger(__name__)

DAEMON = "inner-console"


def check_config(config: Config) -> Config:
    config.need("console", "inner", "trust")
    if config.node.zone != "inner":
        raise ConfigError(f"{config.source}: node.zone must be 'inner' for the console, not {config.node.zone!r}")
    return config


def trust_files(config: Config) -> list[Path]:
    trust = config.trust
    files = [*trust.anchors, *trust.intermediates, *trust.crls]
    if trust.crl_dir is not None and Path(trust.crl_dir).is_dir():
        files += sorted(p for p in Path(trust.crl_dir).iterdir() if p.is_file() and not p.name.startswith("."))
    return files


class Console:
    def __init__(self, config: Config, *, session_id: str | None = None, started_at: datetime | None = None) -> None:
        self.config = check_config(config)
        self.cfg = config.console
        self.inner: Inner = open_inner(config)
        self.engine = self.inner.engine
        self.provenance = self.inner.provenance
        self.quarantine = self.inner.quarantine
        create_tables(self.engine)
        self.registry = SignerRegistry(self.engine)
        self.signin = SignIn(self.engine, self.cfg)
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = started_at or utcnow()
        self._trust_lock = threading.Lock()
        self._trust: tuple[tuple, TrustStore] | None = None
        self._background = Ticker("inner-console-heartbeat", self.beat, self.cfg.heartbeat_seconds, log=log,
                                  failure="console heartbeat failed; trying again")
        # sha256 -> agency of a quarantined envelope's releaser (a file's content never changes).
        self.release_agencies: dict[str, str | None] = {}
        self.cfg.certreq_import_dir.mkdir(parents=True, exist_ok=True)

    def trust(self) -> TrustStore:
        """The trust store as the files are now (rebuilt only when one changed)."""
        mark = files_mark(trust_files(self.config))
        with self._trust_lock:
            if self._trust is None or self._trust[0] != mark:
                self._trust = (mark, TrustStore.from_config(self.config.trust))
            return self._trust[1]

    # --- heartbeat
    def beat(self) -> dict:
        state = {"pid": os.getpid(), "sessions": self.signin.live_sessions(), "bind": self.cfg.bind}
        return self.provenance.heartbeat(DAEMON, session_id=self.session_id, started_at=self.started_at, **state)

    def start_background(self) -> None:
        self._background.start()

    def close(self) -> None:
        self._background.stop()
        self.provenance.close()
