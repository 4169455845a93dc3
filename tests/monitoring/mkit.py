"""Helpers for the monitoring tests: configs, a real SMTP sink, heartbeats at chosen times."""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import yaml
from aiosmtpd.controller import Controller

from tests.kit import free_port, wait_until  # noqa: F401 - re-exported for the tests
from tgw_common.config import Config, load_config
from tgw_common.db import transaction
from tgw_common.events import DaemonStatusRow

TGW = str(Path(sys.executable).with_name("tgw"))

# Host-resource checks look at the real machine (shared, sometimes busy): tests that count
# mails switch them off so only the condition under test can fire (test_monitor_checks covers them).
QUIET_HOST = {"disabled_checks": ["disk", "memory", "cpu"]}


class Sink:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def mails(self, *, kind: str | None = None, group_contains: str | None = None) -> list[EmailMessage]:
        with self.lock:
            found = list(self.messages)
        if kind:
            found = [m for m in found if m["X-TGW-Kind"] == kind]
        if group_contains:
            found = [m for m in found if group_contains in m["X-TGW-Group"]]
        return found


def body(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


class SmtpServer:
    def __init__(self, **controller_kw) -> None:
        self.sink = Sink()
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **controller_kw)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def write_monitor_config(folder: Path, *, smtp_port: int, zone: str = "inner", db_url: str | None = None,
                         extra: dict | None = None, **monitor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    mon = {
        "listen": f"tcp://127.0.0.1:{free_port()}",
        "metrics_bind": None,
        "interval_seconds": 0.2,
        "pending_seconds": 10,
        "group_wait_seconds": 0,
        "group_interval_seconds": 30,
        "repeat_interval_seconds": 4 * 3600,
        "heartbeat_timeout_seconds": 30,
        "schedules": {},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "tgw-monitor@treasury.example.tw",
                 "recipients": ["ops@treasury.example.tw"], "timeout_seconds": 5},
        **QUIET_HOST,
    }
    for key, value in monitor.items():
        if isinstance(value, dict) and isinstance(mon.get(key), dict):
            mon[key] = {**mon[key], **value}
        else:
            mon[key] = value
    data = {"node": {"zone": zone, "host": "mon-host", "data_dir": str(folder / "var")},
            "database": {"url": db_url or f"sqlite:///{folder / 'zone.db'}"},
            "monitor": mon, **(extra or {})}
    path = folder / "monitor.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def load(path: Path) -> Config:
    return load_config(path)


def beat(engine, daemon: str, at: datetime, *, session: str = "s1", started_at: datetime | None = None,
         host: str = "app-host", zone: str = "inner", **state) -> None:
    """A heartbeat row dated `at` (Provenance.heartbeat always stamps the real clock)."""
    with transaction(engine) as s:
        row = s.get(DaemonStatusRow, daemon)
        if row is None:
            row = DaemonStatusRow(daemon=daemon)
            s.add(row)
        row.zone, row.host, row.session = zone, host, session
        row.started_at, row.at, row.state = started_at or at, at, state
