"""`tgw outer receipts run`: the daemon at the outer end of the return link."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from tgw_common.config import Config, ConfigError
from tgw_common.db import create_tables, make_engine, transaction, utcnow
from tgw_common.events import Provenance
from tgw_common.instance_lock import InstanceLock
from tgw_common.pki.certs import load_certificate_file
from tgw_common.pki.trust import TrustStore
from tgw_common.runner import Runner

from . import models  # noqa: F401 - registers the tables before create_tables
from .fates import overdue
from .receipt_intake import ReceiptIntake

log = logging.getLogger(__name__)
HOP = "outer-receipts"
PER_PASS = 200


class OuterReceiptRunner(Runner):
    name = HOP

    def __init__(self, config: Config) -> None:
        config.need("receipts", "trust")
        if config.receipts.private_key is not None:
            raise ConfigError(f"{config.source}: receipts.private_key: the outer zone never holds the receipt key")
        self.config = config
        cfg = config.receipts
        engine = make_engine(config.database.url, echo=config.database.echo)
        create_tables(engine)
        super().__init__(Provenance(engine, zone=config.node.zone, host=config.node.host,
                                    publish=config.events.publish), watch=[cfg.inbound])
        for folder in (cfg.inbound, cfg.dropped_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.intake = ReceiptIntake(engine, load_certificate_file(cfg.certificate),
                                    TrustStore.from_config(config.trust), cfg.dropped_dir)
        minutes = config.outer.receipt_overdue_minutes if config.outer is not None else 30
        self.overdue_after = timedelta(minutes=minutes)
        self._lock: InstanceLock | None = None

    def startup(self) -> None:
        self._lock = InstanceLock(self.config.receipts.inbound / ".intake.lock",
                                  holder="outer receipt intake").acquire()

    def one_iteration(self) -> int:
        names = sorted(p.name for p in self.config.receipts.inbound.iterdir()
                       if p.is_file() and not p.name.startswith("."))[:PER_PASS]
        for name in names:
            self.keep_alive()
            self.intake.take_safely(self.config.receipts.inbound / name)
        return len(names)

    def periodic(self) -> None:
        # New CRLs: judge the receipt certificate against them from now on.
        self.intake.trust = TrustStore.from_config(self.config.trust)

    def health(self) -> dict[str, Any]:
        # Uploads the agency still waits to hear about: the monitor's receipt_overdue check.
        with transaction(self.intake.engine) as s:
            late, ids = overdue(s, utcnow(), self.overdue_after)
        return {"processed": dict(self.intake.counts), "overdue": late, "overdue_ids": ids,
                "overdue_minutes": int(self.overdue_after.total_seconds() // 60)}

    def shutdown(self) -> None:
        self.provenance.close()
        if self._lock is not None:
            self._lock.release()
