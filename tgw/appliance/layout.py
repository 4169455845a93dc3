"""Where everything of a one-box appliance lives, and which ports it uses.

Everything is under one folder (default var/appliance), so a second appliance in another
folder with another --port-base runs beside the first, and `rm -rf` of the folder (after
`tgw down`) removes every trace. The settings chosen at the first `tgw up` are kept in
appliance.json and reused, so the portal stays at the same address across restarts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tgw_common.spool import write_atomic

DEFAULT_DIR = Path("var/appliance")
DEFAULT_PORT_BASE = 18000
DEFAULT_REPEAT_SCHEDULE = (0.0, 5.0, 60.0, 300.0)
# A UNIX socket's path must fit sockaddr_un.sun_path (108 bytes with the NUL on Linux).
MAX_SOCKET_PATH = 107

# Offsets from the port base; docs/appliance.md prints the table for the default base.
PORT_OFFSETS = {
    "web": 80,  # outer portal and API (HTTP, TCP)
    "console": 81,  # inner operator console, if `tgw inner console` exists (TCP)
    "smtp": 25,  # the SMTP sink the monitors mail to (TCP)
    "relay": 700,  # the lossy relay's listening port (UDP), with --loss
    "receive": 701,  # the transfer receiver (UDP)
    "return_receive": 702,  # the return link's receiver on the outer side (UDP): receipts only
    "return_relay": 703,  # the return link's lossy relay (UDP), with --loss
    "metrics_outer": 601,  # outer monitor's /metrics (TCP)
    "metrics_inner": 602,  # inner monitor's /metrics (TCP)
}
UDP_PORTS = ("relay", "receive", "return_receive", "return_relay")
# The officers' signers (`tgw agency signer`, run by hand, never by supervisord) listen on
# port base + SIGNER_PORT_OFFSET + 3 x agency index + role index: 200-226 for 9 agencies.
SIGNER_PORT_OFFSET = 200


@dataclass
class Settings:
    """What appliance.json keeps between runs."""

    port_base: int = DEFAULT_PORT_BASE
    agencies: int = 3
    created_at: str = ""
    # Of the current (or last) run: a relay in the link with this loss, or None for none.
    loss: float | None = None
    relay_seed: int = 1
    # Both links' carousel (transfer_send.repeat_schedule_seconds): each copy's offset after the first.
    repeat_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_REPEAT_SCHEDULE))


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, folder: Path) -> Layout:
        return cls(Path(folder).expanduser().resolve())

    # --- files and folders
    @property
    def settings_file(self) -> Path:
        return self.root / "appliance.json"

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def outer_config(self) -> Path:
        return self.config_dir / "outer.yaml"

    @property
    def inner_config(self) -> Path:
        return self.config_dir / "inner.yaml"

    @property
    def cards(self) -> Path:
        """The demo IC cards: SoftHSM2 tokens, their softhsm2.conf and pins.json."""
        return self.root / "cards"

    def signer_config(self, agency: str, role: str) -> Path:
        return self.config_dir / f"signer-{agency}-{role}.yaml"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def feed(self, zone: str) -> str:
        """The zone monitor's ZeroMQ feed: an ipc socket in the folder, so it needs no TCP port."""
        return f"ipc://{self.root / f'{zone}-feed.sock'}"

    @property
    def supervisor_url(self) -> str:
        return f"unix://{self.socket}"

    def socket_problems(self) -> list[str]:
        long = [p for p in (self.socket, self.root / "outer-feed.sock", self.root / "inner-feed.sock")
                if len(str(p).encode()) > MAX_SOCKET_PATH]
        return [f"{p}: a UNIX socket path may have at most {MAX_SOCKET_PATH} bytes; choose a shorter --dir"
                for p in long]

    # --- settings
    def read_settings(self) -> Settings | None:
        try:
            data = json.loads(self.settings_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        known = {k: v for k, v in data.items() if k in Settings.__dataclass_fields__}
        return Settings(**known)

    def write_settings(self, settings: Settings) -> None:
        write_atomic(self.settings_file, (json.dumps(asdict(settings), indent=2) + "\n").encode())


def ports(port_base: int) -> dict[str, int]:
    return {name: port_base + offset for name, offset in PORT_OFFSETS.items()}


def signer_port(port_base: int, agency_index: int, role_index: int) -> int:
    return port_base + SIGNER_PORT_OFFSET + 3 * agency_index + role_index
