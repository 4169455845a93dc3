"""The values that flow through the monitor: what a check says, and what the notifier remembers.

A check returns `Alert`s: conditions that hold right now. The notifier turns them into
`AlertState`s (pending, firing, resolved) that outlive one cycle and are kept in the zone
database. An alert's identity is its labels, as in Prometheus Alertmanager: the same labels in
the next cycle are the same alert, whatever its severity or text say.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LABEL_NAMES = ("zone", "hop", "check", "host", "subject")
SEVERITIES = ("warning", "critical")
SEVERITY_RANK = {"warning": 1, "critical": 2}


def fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps({k: labels.get(k, "") for k in LABEL_NAMES}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """A condition a check found true at this moment."""

    zone: str
    hop: str
    check: str
    host: str
    subject: str = ""  # what exactly: a daemon, an envelope, a certificate, a path ("" when the hop says it all)
    severity: str = "warning"
    summary_zh: str = ""
    summary_en: str = ""
    since: datetime | None = None  # when the condition began, when the check can tell
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def labels(self) -> dict[str, str]:
        return {"zone": self.zone, "hop": self.hop, "check": self.check, "host": self.host, "subject": self.subject}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


@dataclass
class AlertState:
    """One alert as the notifier tracks it across cycles (a row of monitor_alerts)."""

    fingerprint: str
    labels: dict[str, str]
    group_key: str
    state: str  # pending | firing | resolved
    severity: str
    summary_zh: str
    summary_en: str
    facts: dict[str, Any]
    since: datetime | None
    active_since: datetime
    firing_since: datetime | None = None
    resolved_at: datetime | None = None
    inhibited_by: str | None = None  # fingerprint of the hop-down alert that silences this one
    muted: bool = False  # its check is outside its operating schedule

    @property
    def check(self) -> str:
        return self.labels["check"]

    @property
    def began(self) -> datetime:
        """Since when the problem exists, as far as anyone can tell."""
        return self.since or self.active_since

    def as_dict(self) -> dict[str, Any]:
        iso = _iso
        return {
            "fingerprint": self.fingerprint, "labels": dict(self.labels), "state": self.state,
            "severity": self.severity, "summary_zh": self.summary_zh, "summary_en": self.summary_en,
            "facts": self.facts, "since": iso(self.since), "active_since": iso(self.active_since),
            "firing_since": iso(self.firing_since), "resolved_at": iso(self.resolved_at),
            "inhibited_by": self.inhibited_by, "muted": self.muted, "group_key": self.group_key,
        }


@dataclass
class GroupEntry:
    """The notification log of one alert group: what its last notice said, and when."""

    key: str
    labels: dict[str, str]
    notified: dict[str, str] = field(default_factory=dict)  # fingerprint -> severity in the last firing notice
    last_sent_at: datetime | None = None
    waiting_since: datetime | None = None  # first firing seen while nothing was notified (group_wait)


@dataclass(frozen=True)
class Notice:
    """One mail the notifier wants sent."""

    group_key: str
    group_labels: dict[str, str]
    kind: str  # firing | resolved
    reason: str  # new | changed | repeat | resolved
    firing: tuple[AlertState, ...]
    resolved: tuple[AlertState, ...]
    at: datetime

    @property
    def fingerprints(self) -> list[str]:
        return [a.fingerprint for a in self.firing] + [a.fingerprint for a in self.resolved]


@dataclass(frozen=True)
class Transition:
    """A change of an alert's state, for the history table."""

    at: datetime
    alert: AlertState
    to_state: str  # pending | firing | resolved | cleared | changed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
