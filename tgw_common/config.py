"""One typed, validated configuration model for every process of the gateway.

Each process reads one YAML file (examples in config/). All files share this model:
a process uses the sections it needs and says so with `Config.need("section")`, so a
missing section is reported as a config error naming the file, not a crash later.
Relative paths are resolved against the directory of the YAML file, so a config
directory can be moved as a whole. docs/configuration.md documents every key.
"""

from __future__ import annotations

import socket
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ConfigError(Exception):
    """A config file that cannot be used; the message names file, key and problem."""


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return Path(value).resolve() if base is not None else value


def _must_exist(value: Path, info: ValidationInfo) -> Path:
    value = _resolve(value, info)
    if (info.context or {}).get("check_files", True) and not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


# A path (file or folder) the process creates as needed.
AnyPath = Annotated[Path, AfterValidator(_resolve)]
# A file that must exist when the process starts.
ExistingFile = Annotated[Path, AfterValidator(_must_exist)]
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(Section):
    zone: Literal["outer", "inner"]
    host: str = Field(default_factory=socket.gethostname)
    data_dir: AnyPath = Path("var")


class DatabaseConfig(Section):
    url: str = "sqlite:///var/gateway.db"
    echo: bool = False
    # The streaming standby (docs/deployment.md, "Standby database and three sites").
    standby_url: str | None = None
    require_synchronous_standby: bool = False
    replication_lag_alert_seconds: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("url")
    @classmethod
    def _resolve_sqlite(cls, url: str, info: ValidationInfo) -> str:
        # sqlite:///relative.db is taken relative to the config file, like every other path.
        prefix = "sqlite:///"
        base = (info.context or {}).get("base_dir")
        if url.startswith(prefix) and base is not None:
            rest = url[len(prefix):]
            if rest and rest != ":memory:" and not rest.startswith("/"):
                url = prefix + str((Path(base) / rest).resolve())
        return url


class EventsConfig(Section):
    publish: str | None = None
    keep_days: PositiveInt = 400


class TrustConfig(Section):
    anchors: list[ExistingFile] = Field(min_length=1)
    intermediates: list[ExistingFile] = []
    crl_dir: AnyPath | None = None
    crls: list[ExistingFile] = []
    stale_crl: Literal["refuse", "hold"] = "hold"
    # Certificates on a signer's path, the signer and the anchor included (root > GCA > signer is 3).
    max_chain_depth: Annotated[int, Field(ge=2, le=10)] = 4


class TreasuryConfig(Section):
    certificate: ExistingFile
    private_key: ExistingFile | None = None
    private_key_password_env: str | None = None
    legacy_pkcs1v15: bool = False


class ReceiptsConfig(Section):
    """The treasury's receipts (docs/receipts.md): signed in the inner zone, verified in the outer."""

    # The receipt signing certificate: the inner zone signs with it, the outer zone pins it.
    certificate: ExistingFile
    # Inner zone only; never the envelope key.
    private_key: ExistingFile | None = None
    private_key_password_env: str | None = None
    # Intermediate CA certificates carried in each receipt, so the root alone verifies it.
    chain: list[ExistingFile] = []
    # Inner zone: where receipts are published for the return link's sender.
    outbound: AnyPath = Path("var/inner/receipts")
    # Inner zone: how often the issuer looks for fates without a receipt.
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Inner zone: mail each refusal to the agency's contact through monitor.smtp (if configured).
    mail_refusals: bool = True
    # Outer zone: where the return link's receiver publishes receipts for `tgw outer receipts run`.
    inbound: AnyPath = Path("var/outer/receipts")
    # Outer zone: where a receipt that fails verification is set aside (and counted, and logged).
    dropped_dir: AnyPath = Path("var/outer/receipts-dropped")


DIGESTS = ("sha256", "sha384", "sha512")
SIGNATURES = ("rsassa_pkcs1v15", "rsassa_pss")
CONTENT_CIPHERS = ("aes256_cbc", "aes128_cbc", "aes256_gcm")


def _subset_of(allowed: tuple[str, ...]):
    def check(values: list[str]) -> list[str]:
        extra = [v for v in values if v not in allowed]
        if extra:
            raise ValueError(f"{extra} not allowed by TPE/1; choose from {list(allowed)}")
        if not values:
            raise ValueError("at least one algorithm is needed")
        return values

    return AfterValidator(check)


class PolicyConfig(Section):
    clock_skew_seconds: Annotated[int, Field(ge=0)] = 300
    max_signing_age_seconds: PositiveInt = 30 * 86400
    digest_algorithms: Annotated[list[str], _subset_of(DIGESTS)] = list(DIGESTS)
    signature_algorithms: Annotated[list[str], _subset_of(SIGNATURES)] = list(SIGNATURES)
    content_ciphers: Annotated[list[str], _subset_of(CONTENT_CIPHERS)] = list(CONTENT_CIPHERS)


class LimitsConfig(Section):
    max_envelope_bytes: PositiveInt = 256 * 1024 * 1024
    max_entries: PositiveInt = 1000
    max_entry_bytes: PositiveInt = 64 * 1024 * 1024
    max_total_bytes: PositiveInt = 256 * 1024 * 1024
    max_compression_ratio: PositiveInt = 200


class DocumentsConfig(Section):
    """Business rules of the documents layer (docs/documents.md, "Configuration")."""

    # NT$; a voucher total or payee amount above it must go on paper (OVER_EPAYMENT_LIMIT).
    epayment_limit: PositiveInt = 100_000_000
    # Accepted fiscal years: current ROC year - back .. current + ahead (BAD_FISCAL_YEAR).
    fiscal_years_back: Annotated[int, Field(ge=0)] = 1
    fiscal_years_ahead: Annotated[int, Field(ge=0)] = 1
    # Replaces the bundled list of 3-digit financial institution codes (BAD_BANK_CODE).
    bank_codes_file: ExistingFile | None = None


class InnerConfig(Section):
    """The inner runner and its folders; docs/inner.md explains every key."""

    # Where the transfer receiver publishes `<tracking_id>.p7m` (its transfer_receive.inbound).
    inbound: AnyPath = Path("var/inner/inbound")
    # The runner's own folder: its instance lock and held/ (envelopes waiting for a fresh CRL).
    spool_dir: AnyPath = Path("var/inner/spool")
    quarantine_dir: AnyPath = Path("var/inner/quarantine")
    archive_dir: AnyPath = Path("var/inner/archive")
    # Tries before a file that keeps failing (or killing the runner) is quarantined as POISON.
    max_tries: PositiveInt = 3
    # Full rescan of the inbound spool and check of the CRL files' mtimes.
    rescan_seconds: PositiveInt = 30
    heartbeat_seconds: PositiveInt = 5
    # The mode of an agency without its own row (tgw inner agency set).
    default_agency_mode: Literal["live", "parallel-test"] = "live"
    # spool: one runner takes files from `inbound` itself; database: runners on any host share a
    # queue in the database, each envelope under a lease (docs/deployment.md, "Many runners").
    queue: Literal["spool", "database"] = "spool"
    # How long a claimed envelope stays a runner's without renewal; a dead runner's envelopes
    # go to another runner this long after its last renewal.
    lease_seconds: Annotated[int, Field(ge=3, le=3600)] = 30


def _old_lockout_minutes(section: str, data: Any) -> Any:
    """`lockout_minutes` once set a hard lock; an old config file keeps working, its value
    becoming the cap of the delays, and says once that the key is deprecated."""
    if not isinstance(data, dict) or data.get("lockout_minutes") is None:
        return data
    import logging

    logging.getLogger(__name__).warning(
        "%s.lockout_minutes is deprecated: sign-in no longer locks an account; failed attempts get growing "
        "delays up to %s.login_delay_max_seconds (set that instead)", section, section)
    if "login_delay_max_seconds" in data:
        return data
    return {**data, "login_delay_max_seconds": int(data["lockout_minutes"]) * 60}


class WebServerConfig(Section):
    """What the two web apps (portal and console) configure alike: gunicorn, sessions, sign-in.

    A subclass sets `section_name` (its key in the file, for messages) and overrides the
    defaults that differ between the apps (bind, secret_key_file).
    """

    section_name: ClassVar[str]

    bind: str
    workers: PositiveInt = 2
    # gevent: a connection costs a greenlet, so slow clients cannot use up the workers;
    # gthread (with `threads` per worker) only behind a buffering proxy.
    worker_class: Literal["gevent", "gthread"] = "gevent"
    threads: PositiveInt = 4
    worker_connections: PositiveInt = 1000
    timeout_seconds: PositiveInt = 120
    # The request line and headers must all have arrived this long after the connection
    # opened (or the previous response ended); a body may not stall longer than
    # body_timeout_seconds between two reads.
    header_timeout_seconds: PositiveInt = 10
    body_timeout_seconds: PositiveInt = 30
    session_timeout_minutes: PositiveInt = 30
    session_max_hours: PositiveInt = 12
    # Wrong passwords in a row after which each further attempt must wait a growing delay
    # (login_delay_base_seconds x 2^k, at most login_delay_max_seconds): no hard lock that
    # anyone knowing a user name could impose.
    lockout_attempts: PositiveInt = 5
    login_delay_base_seconds: PositiveInt = 1
    login_delay_max_seconds: PositiveInt = 300
    # Deprecated (the 15-minute hard lock is gone): still accepted, taken as
    # login_delay_max_seconds when that is not set, with a warning.
    lockout_minutes: PositiveInt | None = None
    password_min_length: Annotated[int, Field(ge=8)] = 12
    secret_key_file: AnyPath
    cookie_secure: bool = True
    trusted_proxies: list[str] = []
    heartbeat_seconds: Annotated[float, Field(gt=0)] = 10.0
    cert_expiry_warning_days: PositiveInt = 30

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        return _old_lockout_minutes(cls.section_name, data)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        import ipaddress

        for v in values:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(f"{v!r} is not an IP address or CIDR network") from None
        return values


class ConsoleConfig(WebServerConfig):
    """The operator console (tgw inner console); docs/console.md explains every key."""

    section_name: ClassVar[str] = "console"

    bind: str = "127.0.0.1:8081"
    secret_key_file: AnyPath = Path("var/inner/console-secret")
    refresh_seconds: Annotated[int, Field(ge=5)] = 30
    chart_hours: Annotated[int, Field(ge=1, le=168)] = 24
    certreq_import_dir: AnyPath = Path("var/inner/certreq")


class OuterConfig(WebServerConfig):
    """The outer zone's upload portal and API (tgw outer serve); docs/outer.md explains every key."""

    section_name: ClassVar[str] = "outer"

    bind: str = "127.0.0.1:8080"
    secret_key_file: AnyPath = Path("var/outer/secret")
    outbound: AnyPath = Path("var/outer/outbound")
    upload_tmp: AnyPath = Path("var/outer/incoming")
    max_upload_bytes: PositiveInt = 256 * 1024 * 1024
    min_free_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024 * 1024
    min_free_fraction: Fraction = 0.05
    login_rate_per_minute: PositiveInt = 10
    tls_certificate: ExistingFile | None = None
    tls_private_key: ExistingFile | None = None
    unsent_after_minutes: PositiveInt = 60
    # An upload sent this long ago without a receipt from the inner zone is shown as overdue.
    receipt_overdue_minutes: PositiveInt = 30
    registration_export_dir: AnyPath = Path("var/outer/certreq")
    # How long a released batch's plaintext (payload ZIP, approval layer, documents) stays in
    # the outer database; the sealed envelope, counts, totals and hashes stay (0: at the next sweep).
    batch_plaintext_hours: Annotated[int, Field(ge=0)] = 24

    @model_validator(mode="after")
    def _tls_pair(self) -> OuterConfig:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key go together: set both or neither")
        return self

    def tls_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) when gunicorn itself terminates TLS, else None (plain HTTP or a front proxy)."""
        if self.tls_certificate is None or self.tls_private_key is None:
            return None
        return self.tls_certificate, self.tls_private_key


class SignerConfig(Section):
    """The officer's local signing service (tgw agency signer); docs/agency-workflow.md explains every key."""

    # 127.0.0.1 only: the service signs with the officer's card for whoever can reach it.
    listen: str = "127.0.0.1:61200"
    portal_origin: str
    pkcs11_module: str | None = None
    pkcs11_uri: str | None = None
    token_label: str | None = None
    key_label: str | None = None
    key_id: str | None = None  # CKA_ID in hex
    pin_entry: Literal["page", "prompt", "file"] = "page"
    pin_file: AnyPath | None = None
    request_ttl_seconds: PositiveInt = 600
    max_request_bytes: PositiveInt = 64 * 1024 * 1024

    @field_validator("listen")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: the signer listens on 127.0.0.1:PORT only")
        return value

    @field_validator("portal_origin")
    @classmethod
    def _one_origin(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment or parts.username or "*" in value:
            raise ValueError(f"{value!r}: one origin (scheme://host[:port]), no path, no wildcard")
        return value.rstrip("/")

    @field_validator("key_id")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)
        return value

    @model_validator(mode="after")
    def _card_and_pin(self) -> SignerConfig:
        if self.pkcs11_uri is None and (self.pkcs11_module is None or self.token_label is None):
            raise ValueError("name the card: pkcs11_uri, or pkcs11_module and token_label")
        if self.pin_entry == "file" and self.pin_file is None:
            raise ValueError("pin_entry: file needs pin_file")
        return self


class TransferSendConfig(Section):
    """The one-way sender (outer zone); docs/transfer.md explains every key."""

    outbound: AnyPath = Path("var/outer/outbound")
    sent_dir: AnyPath = Path("var/outer/sent")
    state_dir: AnyPath = Path("var/outer/transfer")
    target: str = "127.0.0.1:7700"
    payload_size: Annotated[int, Field(ge=256, le=8900)] = 1400
    fec_k: Annotated[int, Field(ge=1, le=255)] = 16
    fec_m: Annotated[int, Field(ge=1, le=256)] = 20
    interleave_blocks: Annotated[int, Field(ge=1, le=256)] = 8
    rate_bps: PositiveInt = 100_000_000
    # The carousel: when each copy of a file goes, in seconds after the first copy went out.
    # A receiver down for less than the last offset still gets every file (docs/transfer.md).
    repeat_schedule_seconds: Annotated[list[Annotated[float, Field(ge=0)]],
                                       Field(min_length=1, max_length=20)] = [0.0, 5.0, 60.0, 300.0]
    heartbeat_seconds: Annotated[float, Field(gt=0)] = 2.0
    ledger_size: PositiveInt = 256
    retention_days: PositiveInt = 14
    rescan_seconds: PositiveInt = 30
    socket_buffer_bytes: PositiveInt = 4 * 1024 * 1024

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        return _old_repeat(data)

    @field_validator("repeat_schedule_seconds")
    @classmethod
    def _schedule(cls, offsets: list[float]) -> list[float]:
        if offsets[0] != 0:
            raise ValueError("the first offset is the first copy itself and must be 0")
        if any(b <= a for a, b in pairwise(offsets)):
            raise ValueError("offsets must be strictly increasing")
        return offsets

    @property
    def window_seconds(self) -> float:
        """How long after its first copy a file's last copy goes: the longest outage that costs nothing."""
        return self.repeat_schedule_seconds[-1]

    @model_validator(mode="after")
    def _fec_shape(self) -> TransferSendConfig:
        if self.fec_m < self.fec_k:
            raise ValueError("fec_m (blocks sent) must be at least fec_k (blocks needed)")
        return self


def _old_repeat(data: Any) -> Any:
    """`repeat` and `repeat_spacing_seconds` once set equal spacing; an old config keeps working,
    its copies becoming an equal-spaced schedule, and says once that the keys are deprecated.
    A spacing of 0 (copies back to back) becomes 1 ms, since the offsets must increase."""
    if not isinstance(data, dict) or ("repeat" not in data and "repeat_spacing_seconds" not in data):
        return data
    import logging

    data = dict(data)
    repeat, spacing = data.pop("repeat", 2), data.pop("repeat_spacing_seconds", 10.0)
    logging.getLogger(__name__).warning(
        "transfer_send.repeat and transfer_send.repeat_spacing_seconds are deprecated: set "
        "transfer_send.repeat_schedule_seconds (offsets from the first copy) instead")
    if "repeat_schedule_seconds" in data:
        return data
    try:
        repeat, step = int(repeat), max(float(spacing), 0.001)
    except (TypeError, ValueError):
        raise ValueError("repeat must be a whole number and repeat_spacing_seconds a number") from None
    if not 1 <= repeat <= 20 or float(spacing) < 0:
        raise ValueError("repeat must be between 1 and 20, and repeat_spacing_seconds at least 0")
    return {**data, "repeat_schedule_seconds": [round(i * step, 3) for i in range(repeat)]}


class TransferReceiveConfig(Section):
    """The one-way receiver (inner zone); docs/transfer.md explains every key."""

    listen: str = "127.0.0.1:7700"
    inbound: AnyPath = Path("var/inner/inbound")
    staging_dir: AnyPath = Path("var/inner/staging")
    state_dir: AnyPath = Path("var/inner/transfer")
    socket_buffer_bytes: PositiveInt = 64 * 1024 * 1024
    queue_datagrams: PositiveInt = 65536
    memory_bytes: Annotated[int, Field(ge=1024 * 1024)] = 64 * 1024 * 1024
    max_file_bytes: PositiveInt = 4 * 1024 * 1024 * 1024
    incomplete_timeout_seconds: PositiveInt = 600
    heartbeat_timeout_seconds: PositiveInt = 10
    heartbeat_seconds: Annotated[float, Field(gt=0)] = 5.0
    gap_grace_seconds: Annotated[float, Field(ge=0)] = 1.0
    # How often a standby receiver asks for the active lock, and the active one checks it
    # still holds it (docs/transfer.md, "Standby receiver").
    standby_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0


class SmtpConfig(Section):
    """Where the monitor's alert mail goes; docs/monitoring.md explains every key."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 25
    starttls: bool = False
    implicit_tls: bool = False
    ca_file: ExistingFile | None = None
    username: str | None = None
    password_env: str | None = None
    sender: str = "tgw-monitor@localhost"
    recipients: list[str] = Field(default_factory=list)
    timeout_seconds: PositiveInt = 10
    subject_prefix: str = "[TGW]"

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpConfig:
        if self.starttls and self.implicit_tls:
            raise ValueError("choose starttls (port 587) or implicit_tls (port 465), not both")
        if self.username and not self.password_env:
            raise ValueError("username needs password_env (the name of the variable holding the password)")
        return self


class ScheduleConfig(Section):
    """A weekly operating window in one time zone; outside it the check's alerts are muted."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["mon", "tue", "wed", "thu", "fri"]
    start: str = "08:00"
    end: str = "18:00"
    timezone: str = "Asia/Taipei"
    holidays: list[str] = []

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        hh, _, mm = value.partition(":")
        well_formed = hh.isdigit() and mm.isdigit() and len(mm) == 2
        in_day = well_formed and ((int(hh) <= 23 and int(mm) <= 59) or value == "24:00")
        if not in_day:
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (IANA name such as Asia/Taipei)") from None
        return value

    @field_validator("holidays")
    @classmethod
    def _iso_dates(cls, values: list[str]) -> list[str]:
        from datetime import date

        for v in values:
            try:
                date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"holiday {v!r} is not a date YYYY-MM-DD") from None
        return [str(v) for v in values]


class HopThresholds(Section):
    """Backlog, stuck and idle limits of one hop (monitor.hops.<hop>)."""

    warn_depth: PositiveInt = 100
    critical_depth: PositiveInt = 1000
    warn_age_seconds: PositiveInt = 300
    critical_age_seconds: PositiveInt = 1800
    stuck_seconds: PositiveInt = 900
    idle_seconds: PositiveInt | None = None

    @model_validator(mode="after")
    def _ordered(self) -> HopThresholds:
        if self.critical_depth < self.warn_depth:
            raise ValueError("critical_depth must be at least warn_depth")
        if self.critical_age_seconds < self.warn_age_seconds:
            raise ValueError("critical_age_seconds must be at least warn_age_seconds")
        return self


class DaemonWatch(Section):
    """One daemon the monitor expects heartbeats from (monitor.daemons[])."""

    name: str
    heartbeat_timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    supervisor_program: str | None = None
    systemd_unit: str | None = None


class MonitorConfig(Section):
    """The zone monitor (tgw monitor run); docs/monitoring.md explains every key."""

    listen: str = "tcp://127.0.0.1:7601"
    metrics_bind: str | None = "127.0.0.1:9601"
    interval_seconds: Annotated[float, Field(gt=0)] = 15.0
    pending_seconds: Annotated[float, Field(ge=0)] = 60.0
    group_by: list[Literal["zone", "hop", "check", "host", "subject"]] = ["zone", "hop"]
    group_wait_seconds: Annotated[float, Field(ge=0)] = 10.0
    group_interval_seconds: Annotated[float, Field(ge=0)] = 300.0
    repeat_interval_seconds: Annotated[float, Field(gt=0)] = 4 * 3600.0
    heartbeat_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    max_restarts_per_hour: PositiveInt = 5
    cert_warning_days: PositiveInt = 30
    cert_critical_days: Annotated[int, Field(ge=0)] = 7
    crl_warning_hours: Annotated[float, Field(ge=0)] = 24.0
    cert_check_seconds: Annotated[float, Field(gt=0)] = 300.0
    disk_paths: list[AnyPath] = []
    disk_warn_fraction: Fraction = 0.85
    disk_critical_fraction: Fraction = 0.95
    memory_warn_fraction: Fraction = 0.90
    memory_critical_fraction: Fraction = 0.97
    cpu_warn_fraction: Fraction = 0.90
    cpu_window_seconds: Annotated[float, Field(gt=0)] = 300.0
    udp_drops_warn: PositiveInt = 1
    udp_drop_window_seconds: Annotated[float, Field(gt=0)] = 300.0
    sender_min_free_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024 * 1024
    # The shared queue's runners (checks/runners.py): envelopes ready this long with no live
    # runner fire runners_idle; a runner row unchanged this long fires runner_down (None:
    # 3 x inner.heartbeat_seconds).
    runners_idle_after_seconds: Annotated[float, Field(gt=0)] = 120.0
    runner_down_after_seconds: Annotated[float, Field(gt=0)] | None = None
    stuck_lookback_hours: PositiveInt = 168
    history_keep_days: PositiveInt = 400
    display_timezone: str = "Asia/Taipei"
    supervisor_url: str | None = None
    systemctl: list[str] = ["systemctl"]
    disabled_checks: list[str] = []
    daemons: list[DaemonWatch] = []
    hops: dict[str, HopThresholds] = {}
    schedules: dict[str, ScheduleConfig] = {"idle": ScheduleConfig()}
    smtp: SmtpConfig = SmtpConfig()

    @field_validator("daemons", mode="before")
    @classmethod
    def _daemon_entries(cls, values: Any) -> Any:
        # A bare name is the common case; the mapping form adds supervisor/systemd names.
        if isinstance(values, list):
            return [{"name": v} if isinstance(v, str) else v for v in values]
        return values

    @model_validator(mode="after")
    def _consistent(self) -> MonitorConfig:
        if self.disk_critical_fraction < self.disk_warn_fraction:
            raise ValueError("disk_critical_fraction must be at least disk_warn_fraction")
        if self.memory_critical_fraction < self.memory_warn_fraction:
            raise ValueError("memory_critical_fraction must be at least memory_warn_fraction")
        names = [d.name for d in self.daemons]
        if len(names) != len(set(names)):
            raise ValueError("daemons: a daemon is listed twice")
        if not self.systemctl:
            raise ValueError("systemctl: give the command, e.g. [systemctl] or [systemctl, --user]")
        ScheduleConfig._known_zone(self.display_timezone)
        return self


# `node` of a file that holds only `signer` (see Config._signer_needs_no_node).
SIGNER_ONLY_NODE = {"zone": "outer"}


class Config(Section):
    """The whole configuration; every section but `node` is optional in a file (and `node` too in
    a file holding only `signer`)."""

    node: NodeConfig
    database: DatabaseConfig = DatabaseConfig()
    events: EventsConfig = EventsConfig()
    trust: TrustConfig | None = None
    treasury: TreasuryConfig | None = None
    receipts: ReceiptsConfig | None = None
    policy: PolicyConfig = PolicyConfig()
    limits: LimitsConfig = LimitsConfig()
    documents: DocumentsConfig = DocumentsConfig()
    inner: InnerConfig | None = None
    console: ConsoleConfig | None = None
    outer: OuterConfig | None = None
    transfer_send: TransferSendConfig | None = None
    transfer_receive: TransferReceiveConfig | None = None
    monitor: MonitorConfig | None = None
    signer: SignerConfig | None = None

    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _signer_needs_no_node(cls, data: Any) -> Any:
        # An officer's signer config holds only `signer`: it runs on the agency's PC, in no
        # zone, and uses nothing of `node`. The stand-in keeps `config.node` always present.
        if isinstance(data, dict) and "node" not in data and set(data) == {"signer"}:
            return {**data, "node": SIGNER_ONLY_NODE}
        return data

    def need(self, *sections: str) -> Config:
        """Fail with a ConfigError unless every named section is present."""
        missing = [s for s in sections if getattr(self, s) is None]
        if missing:
            raise ConfigError(f"{self.source}: missing section(s) {', '.join(missing)}")
        return self


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required key missing"
    return f"{key}: {error['msg']}"


def load_config(path: str | Path, *, check_files: bool = True) -> Config:
    """Read and validate one YAML config file, or raise ConfigError naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of sections, got {type(data).__name__}")
    context = {"base_dir": path.resolve().parent, "check_files": check_files}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    return config.model_copy(update={"source": path.resolve()})
