"""`tgw inner receipts run`: the daemon that signs and publishes a receipt for every fate."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from tgw_common.config import Config
from tgw_common.db import transaction
from tgw_common.instance_lock import InstanceLock
from tgw_common.runner import Runner

from .context import open_inner
from .models import IssuedReceipt
from .receipt_issuer import ReceiptIssuer, ReceiptSigner
from .refusal_mail import mail_refusals

log = logging.getLogger(__name__)
HOP = "inner-receipts"
MAIL_RETRY_SECONDS = 60.0


class ReceiptRunner(Runner):
    name = HOP

    def __init__(self, config: Config) -> None:
        config.need("inner", "receipts")
        self.config = config
        self.inner = open_inner(config)
        super().__init__(self.inner.provenance)
        self.idle_sleep_seconds = config.receipts.poll_seconds
        self.heartbeat_seconds = config.inner.heartbeat_seconds
        self.issuer = ReceiptIssuer(self.inner.engine, ReceiptSigner.from_config(config.receipts),
                                    config.receipts.outbound)
        self._lock: InstanceLock | None = None
        self.counts = {"issued": 0, "published": 0, "mailed": 0}
        self.last_error: str | None = None
        # Refusals are mailed to agencies through the zone's SMTP server (monitor.smtp), if any.
        monitor = config.monitor
        self.smtp = monitor.smtp if monitor is not None and config.receipts.mail_refusals else None
        self._mail_after = 0.0

    def startup(self) -> None:
        self._lock = InstanceLock(self.config.inner.spool_dir / "receipts.lock", holder="receipt issuer").acquire()
        # Receipts a crash left signed but unpublished go out first, byte for byte.
        self.counts["published"] += self.issuer.publish_pending()

    def one_iteration(self) -> int:
        try:
            issued = self.issuer.issue_pending()
            published = self.issuer.publish_pending()
        except (OperationalError, InterfaceError, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("receipts paused", extra={"error": self.last_error})
            self._stop.wait(5.0)
            return 0
        self.counts["issued"] += issued
        self.counts["published"] += published
        return issued + published + self._mail()

    def _mail(self) -> int:
        if self.smtp is None or time.monotonic() < self._mail_after:
            return 0
        mailed, failed = mail_refusals(self.inner.engine, self.smtp)
        if failed:
            self._mail_after = time.monotonic() + MAIL_RETRY_SECONDS
            self.last_error = "refusal mail: the SMTP server did not take it"
        self.counts["mailed"] += mailed
        return mailed

    def health(self) -> dict[str, Any]:
        with transaction(self.inner.engine) as s:
            waiting = s.scalar(select(func.count()).select_from(IssuedReceipt)
                               .where(IssuedReceipt.published_at.is_(None)))
        return {"unpublished": waiting, "processed": dict(self.counts), "last_error": self.last_error}

    def shutdown(self) -> None:
        self.inner.provenance.close()
        if self._lock is not None:
            self._lock.release()
