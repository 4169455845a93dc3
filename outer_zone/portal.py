"""One portal process's state: database, opener (release check only), events, services.

Built once per gunicorn worker (the app factory) and by the CLI before the workers start.
A background thread per worker sends the "outer-web" heartbeat, finishes interrupted
publications, purges old rate-limit rows and reloads the trust store when a CRL changes
(CRLs are renewed in place; a stale one must not stay in memory until the next restart).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from tgw_common.config import Config, ConfigError
from tgw_common.db import create_tables, make_engine, utcnow
from tgw_common.events import Provenance
from tgw_common.tpe.factory import release_opener
from tgw_common.tpe.opener import EnvelopeOpener
from tgw_common.web.filemark import files_mark
from tgw_common.web.ticker import Ticker

from . import models  # noqa: F401 - registers the tables before create_tables
from .batches import Workflow
from .diskguard import disk_state
from .intake import HOP, UploadIntake, outbound_depth
from .signin import SignIn

log = logging.getLogger(__name__)

DAEMON = HOP  # the heartbeat name the monitor expects
HOUSEKEEPING_EVERY = 60.0


def check_config(config: Config) -> Config:
    config.need("outer", "trust")
    if config.node.zone != "outer":
        raise ConfigError(f"{config.source}: node.zone must be 'outer' for the upload portal, not {config.node.zone!r}")
    if config.treasury is not None and config.treasury.private_key is not None:
        raise ConfigError(f"{config.source}: treasury.private_key: the outer zone never holds the envelope key; "
                          "give it treasury.certificate only (to seal batches for the treasury)")
    if config.receipts is not None and config.receipts.private_key is not None:
        raise ConfigError(f"{config.source}: receipts.private_key: the outer zone never holds the receipt key; "
                          "give it receipts.certificate only (to verify receipts)")
    cfg = config.outer
    for folder in (cfg.upload_tmp, cfg.outbound):
        folder.mkdir(parents=True, exist_ok=True)
    if os.stat(cfg.upload_tmp).st_dev != os.stat(cfg.outbound).st_dev:
        raise ConfigError(f"{config.source}: outer.upload_tmp ({cfg.upload_tmp}) and outer.outbound "
                          f"({cfg.outbound}) must be on one filesystem, so publishing is an atomic rename")
    return config


def _crl_mark(config: Config) -> tuple:
    files = list(config.trust.crls)
    crl_dir = config.trust.crl_dir
    if crl_dir is not None and Path(crl_dir).is_dir():
        files += sorted(p for p in Path(crl_dir).iterdir() if p.is_file())
    return files_mark(files)


class Portal:
    def __init__(self, config: Config, *, session_id: str | None = None, started_at: datetime | None = None) -> None:
        self.config = check_config(config)
        self.cfg = config.outer
        self.engine = make_engine(config.database.url, echo=config.database.echo)
        create_tables(self.engine)
        self.provenance = Provenance(self.engine, zone="outer", host=config.node.host, publish=config.events.publish)
        self._opener_lock = threading.Lock()
        self._crl_mark = _crl_mark(config)
        self._opener = release_opener(config)
        self.signin = SignIn(self.engine, self.cfg)
        self.intake = UploadIntake(self.engine, self.cfg, self.provenance, self.opener)
        self.workflow = Workflow(self.engine, config, self.opener, self.intake)
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = started_at or utcnow()
        self._next_housekeeping = 0.0
        self._background = Ticker("outer-web-heartbeat", self._tick, self.cfg.heartbeat_seconds, log=log,
                                  failure="heartbeat or housekeeping failed; trying again")

    def opener(self) -> EnvelopeOpener:
        with self._opener_lock:
            return self._opener

    def refresh_trust(self) -> bool:
        """Rebuild the opener when a CRL file changed; True when it did."""
        mark = _crl_mark(self.config)
        if mark == self._crl_mark:
            return False
        try:
            fresh = release_opener(self.config)
        except (ConfigError, OSError, ValueError):
            log.exception("new CRLs could not be loaded; keeping the previous ones")
            return False
        with self._opener_lock:
            self._opener, self._crl_mark = fresh, mark
        log.info("trust store reloaded after a CRL change")
        return True

    def beat(self) -> dict:
        state = {"outbound_depth": outbound_depth(self.cfg.outbound), "pid": os.getpid()}
        try:
            disk = disk_state(self.cfg.outbound)
            state.update(disk_free_bytes=disk.free, disk_free_fraction=round(disk.free_fraction, 4))
        except OSError:
            pass
        return self.provenance.heartbeat(DAEMON, session_id=self.session_id, started_at=self.started_at, **state)

    def housekeeping(self) -> None:
        self.refresh_trust()
        self.intake.sweep()
        self.signin.purge()
        self.workflow.purge_plaintext()

    # --- the worker's background thread
    def start_background(self) -> None:
        self._background.start()

    def _tick(self) -> None:
        self.beat()
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
            self.housekeeping()

    def close(self) -> None:
        self._background.stop()
        self.provenance.close()
