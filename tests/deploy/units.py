"""What the deployment tests know about systemd/: the daemon inventory and small parsers.

The inventory is the contract of docs/deployment.md: one unit per daemon per host, the
documented `tgw` verb and config file, the daemon's user, and how it talks to systemd
("runner": tgw_common.runner sends READY=1 and WATCHDOG=1; "gunicorn": the arbiter sends
READY=1 only, so the unit has no watchdog).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
ZONES = ("outer", "inner")
TGW = "/opt/tgw/bin/tgw"
MAX_EXPOSURE = 2.0


@dataclass(frozen=True)
class Daemon:
    zone: str
    unit: str
    verb: str
    config: str
    user: str
    kind: str  # "runner" or "gunicorn"

    @property
    def path(self) -> Path:
        return SYSTEMD / self.zone / self.unit

    @property
    def exec_start(self) -> str:
        return f"{TGW} {self.verb} --config {self.config}"


DAEMONS = (
    Daemon("outer", "tgw-outer-web.service", "outer serve", "/etc/tgw/outer.yaml", "tgw-web", "gunicorn"),
    Daemon("outer", "tgw-transfer-send.service", "transfer send", "/etc/tgw/transfer-send.yaml", "tgw-send", "runner"),
    Daemon("outer", "tgw-monitor.service", "monitor run", "/etc/tgw/monitor-outer.yaml", "tgw-monitor", "runner"),
    Daemon("inner", "tgw-transfer-receive.service", "transfer receive", "/etc/tgw/transfer-receive.yaml", "tgw-recv",
           "runner"),
    Daemon("inner", "tgw-inner-runner.service", "inner run", "/etc/tgw/inner.yaml", "tgw-inner", "runner"),
    Daemon("inner", "tgw-inner-console.service", "inner console", "/etc/tgw/console.yaml", "tgw-console", "gunicorn"),
    Daemon("inner", "tgw-monitor.service", "monitor run", "/etc/tgw/monitor-inner.yaml", "tgw-monitor", "runner"),
)


def all_services() -> list[Path]:
    """Every service unit shipped, daemons and helpers (not the example drop-ins)."""
    return sorted(p for p in SYSTEMD.glob("*/*.service"))


def example_dropins() -> list[tuple[Path, Path]]:
    """(unit file, drop-in) for every example drop-in under systemd/<zone>/examples/<unit>.d/."""
    pairs = []
    for conf in sorted(SYSTEMD.glob("*/examples/*.d/*.conf")):
        unit = conf.parent.name[: -len(".d")]
        pairs.append((conf.parents[2] / unit, conf))
    return pairs


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists: systemd allows repeated keys,
    and an empty assignment resets a list, so configparser would lose meaning."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path}: {raw!r} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str | None:
    found = values(unit, section, key)
    return found[-1] if found else None


def sysusers(zone: str) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """(users, groups, memberships user -> groups) declared in systemd/<zone>/sysusers.conf."""
    users, groups, members = set(), set(), {}
    for raw in (SYSTEMD / zone / "sysusers.conf").read_text().splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "u":
            users.add(fields[1])
            groups.add(fields[1])
        elif fields[0] == "g":
            groups.add(fields[1])
        elif fields[0] == "m":
            members.setdefault(fields[1], set()).add(fields[2])
    return users, groups, members


def tmpfiles(zone: str) -> dict[str, tuple[str, str, str, str]]:
    """path -> (type, mode, user, group) from systemd/<zone>/tmpfiles.conf."""
    entries = {}
    for raw in (SYSTEMD / zone / "tmpfiles.conf").read_text().splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        kind, path, mode, user, group = fields[:5]
        entries[path] = (kind, mode, user, group)
    return entries


def systemd_tool(name: str) -> str:
    """Path of a systemd tool; skipped when absent, except in CI (CI=true), where the
    deployment checks must run and a missing tool is a failure."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} not found: install Debian package systemd (CI must run the deployment checks)")
    pytest.skip(f"{name} not installed")
