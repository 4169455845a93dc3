"""One portal process's state: database, opener (release check only), events, services.

Built once per gunicorn worker (the app factory) and by the CLI before the workers start.
A background thread per worker sends the "outer-web" heartbeat, finishes interrupted
publications, purges old rate-limit rows and reloads the trust store when a CRL changes
(CRLs are renewed in place; a stale one must not stay in memory until the next restart).
"""

from __future__ import annotations

import logging
import os
import secrets
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

from . import models  # noqa: F401 - registers the tables before create_tables
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
    cfg = config.outer
    for folder in (cfg.upload_tmp, cfg.outbound):
        folder.mkdir(parents=True, exist_ok=True)
    if os.stat(cfg.upload_tmp).st_dev != os.stat(cfg.outbound).st_dev:
        raise ConfigError(f"{config.source}: outer.upload_tmp ({cfg.upload_tmp}) and outer.outbound "
                          f"({cfg.outbound}) must be on one filesystem, so publishing is an atomic rename")
    return config


def load_secret_key(path: Path) -> bytes:
    """The cookie-signing key: created once (0600) and shared by every worker, read afterwards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(64))
            fh.flush()
            os.fsync(fh.fileno())
    key = path.read_bytes()
    if len(key) < 32:
        raise ConfigError(f"{path}: the secret key file holds {len(key)} bytes; at least 32 are needed "
                          "(delete it to have a new one made)")
    return key


def _crl_mark(config: Config) -> tuple:
    files = list(config.trust.crls)
    crl_dir = config.trust.crl_dir
    if crl_dir is not None and Path(crl_dir).is_dir():
        files += sorted(p for p in Path(crl_dir).iterdir() if p.is_file())
    mark = []
    for p in files:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        mark.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(mark)


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
        self.session_id = session_id or uuid.uuid4().hex
        self.started_at = started_at or utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    # --- the worker's background thread
    def start_background(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="outer-web-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_housekeeping = 0.0
        while not self._stop.is_set():
            try:
                self.beat()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
                    self.housekeeping()
            except Exception:  # the thread must outlive a database hiccup
                log.exception("heartbeat or housekeeping failed; trying again")
            self._stop.wait(self.cfg.heartbeat_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.provenance.close()
