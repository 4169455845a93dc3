"""A local SMTP server that keeps every mail as a .eml file: the appliance's alert mailbox.

The monitors mail their alerts to it like to any relay (plain SMTP on 127.0.0.1), so the
whole path (compose, SMTP dialogue, delivery) is the production one; only the far end is a
folder. Each message is written atomically under a name that sorts by arrival time, with
the SMTP envelope (sender, recipients) added as X-Sink-* headers in front of the message.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from pathlib import Path

from tgw_common.spool import write_atomic

log = logging.getLogger(__name__)


class MailFolder:
    """aiosmtpd handler: accept every message and keep it in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        head = (f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
                f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
                f"X-Sink-Peer: {session.peer[0] if session.peer else '-'}\r\n").encode()
        # Blocking I/O in the event loop is fine here: one local client, small mails.
        write_atomic(self.folder / name, head + envelope.original_content)
        log.info("mail kept", extra={"file": name, "rcpt": envelope.rcpt_tos, "bytes": len(envelope.original_content)})
        return "250 Message accepted for delivery"


def serve(host: str, port: int, folder: Path) -> None:
    """Run until SIGTERM or SIGINT."""
    from aiosmtpd.controller import Controller

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller = Controller(MailFolder(folder), hostname=host, port=port, decode_data=False)
    controller.start()
    log.info("smtp sink listening", extra={"listen": f"{host}:{port}", "folder": str(folder)})
    try:
        stop.wait()
    finally:
        controller.stop()
