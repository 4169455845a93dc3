"""`tgw --help` and the light commands must not import the heavy libraries: every part's
command group is registered at start, so one eager import there costs every `tgw` call.
Checked by what a real `tgw` process has imported, not by timing it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "cryptography", "jsonschema", "flask", "werkzeug", "zmq", "pydantic", "yaml",
         "asn1crypto", "pyhanko_certvalidator", "alembic", "gunicorn", "watchdog", "tgw_common.config",
         "tgw_common.documents", "tgw_common.tpe", "tgw_common.pki", "inner_zone.intake", "inner_zone.models",
         "inner_zone.console.app", "outer_zone.app")

# Runs the real entry point, then reports what it imported (click ends with SystemExit).
PROBE = """
import json, sys
from tgw.cli import main
try:
    main(sys.argv[1:], prog_name="tgw")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("args", [["--help"], ["inner", "--help"], ["inner", "status", "--help"],
                                  ["inner", "quarantine", "--help"], ["demo-data", "--help"],
                                  ["--version"]])
def test_help_imports_no_heavy_module(args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    heavy = [m for m in HEAVY if m in report["modules"]]
    assert heavy == [], f"`tgw {' '.join(args)}` imported {heavy}"
