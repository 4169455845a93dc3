"""docs/monitoring.md names every check, config key, metric and CLI verb the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitoring.catalog import CHECKS
from monitoring.checks import ALL_CHECK_LABELS
from monitoring.cli import monitor
from monitoring.hops import HOPS
from monitoring.model import LABEL_NAMES
from tgw_common.config import DaemonWatch, HopThresholds, MonitorConfig, ScheduleConfig, SmtpConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
CODE = set(re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOC, flags=re.S)))


def _documented(name: str) -> bool:
    return name in CODE or any(name in c.replace(" ", "").split("/") for c in CODE)


@pytest.mark.parametrize("section", [MonitorConfig, SmtpConfig, ScheduleConfig, HopThresholds, DaemonWatch])
def test_every_config_key_is_documented(section):
    missing = [k for k in section.model_fields if not _documented(k)]
    assert missing == []


def test_every_check_label_verb_and_hop_is_documented():
    assert set(CHECKS) == set(ALL_CHECK_LABELS)  # the catalog and the check functions agree
    for name in [*ALL_CHECK_LABELS, *LABEL_NAMES, *(h.name for h in HOPS)]:
        assert name in CODE, name
    for verb in monitor.commands:
        assert f"tgw monitor {verb}" in DOC, verb


def test_every_metric_is_documented():
    from datetime import UTC, datetime

    from monitoring.metrics import render

    now = datetime.now(UTC).isoformat()
    view = {"zone": "inner", "at": now,
            "hops": [{"hop": "inner-runner", "events": {"loaded": 1}, "depth": 1, "oldest_age_seconds": 1,
                      "open_envelopes": 1, "latency_histogram": {"counts": [0] * 9, "sum": 0, "count": 0}}],
            "daemons": [{"daemon": "x", "hop": "x", "host": "h", "up": True, "heartbeat_age_seconds": 1,
                         "starts_last_hour": 1, "process": [{"source": "systemd", "running": True}]}],
            "transfer": {"open_gaps": 0, "udp_drops": 0, "udp_drops_in_window": 0,
                         "transfer-send": {"disk_free_bytes": 1}},
            "resources": {"disks": [{"path": "/", "used_fraction": 0.1}], "memory_fraction": 0.1, "cpu_fraction": 0.1},
            "certificates": [{"kind": "signer", "subject": "s", "fingerprint": "f" * 64, "not_after": now}],
            "crls": [{"issuer": "i", "next_update": now}], "alerts": [], "notifications": {"firing/sent": 1},
            "unavailable": {"pki": "x"}}
    names = set()
    for family in render(view, {"cycles": 1, "cycle_errors": 0, "feed": {"event": 1}}):
        for s in family.samples:
            names.add(re.sub(r"_(bucket|count|sum|created)$", "", s.name) if family.type == "histogram" else s.name)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    missing = sorted(n for n in names if n not in CODE)
    assert missing == []
