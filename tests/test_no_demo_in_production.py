"""Demo material (demo documents, the demo PKI with its unencrypted keys) stays out of the
daemons: only the demo commands under tgw/ import it (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_MODULES = (
    "inner_zone.runner",
    "inner_zone.console.app",
    "inner_zone.console.server",
    "outer_zone.portal",
    "outer_zone.intake",
    "outer_zone.server",
    "transfer.receiver",
    "transfer.sender",
    "monitoring.daemon",
    "agency_signer.app",
)

# A fresh interpreter: this test session has long since imported the demo modules itself.
_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_production_modules_import_no_demo_module():
    out = subprocess.run([sys.executable, "-c", _PROBE, *PRODUCTION_MODULES], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    loaded = json.loads(out)
    assert set(PRODUCTION_MODULES) <= set(loaded)
    demo = [name for name in loaded if "demo" in name]
    assert demo == []
