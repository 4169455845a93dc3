"""`tgw pki demo --softhsm DIR`: one demo card per officer, with its PIN in pins.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SOFTHSM


@pytest.mark.skipif(not Path(SOFTHSM).is_file(), reason="needs softhsm2")
def test_pki_demo_puts_the_officers_on_tokens(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tgw", "pki", "demo", "--out", str(tmp_path / "pki"),
                           "--agencies", "1", "--softhsm", str(tmp_path / "cards")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pins = json.loads((tmp_path / "cards" / "pins.json").read_text())
    assert sorted(pins["tokens"]) == ["A10001-accountant", "A10001-head", "A10001-releaser"]
    assert (tmp_path / "cards" / "pins.json").stat().st_mode & 0o077 == 0
    assert (tmp_path / "pki" / "agencies" / "A10001" / "head.key").is_file()  # the key files stay
    listed = subprocess.run(["softhsm2-util", "--show-slots"], capture_output=True, text=True,
                            env={"SOFTHSM2_CONF": pins["softhsm2_conf"], "PATH": "/usr/bin:/bin"})
    assert all(label in listed.stdout for label in pins["tokens"])
    again = subprocess.run([sys.executable, "-m", "tgw", "pki", "demo", "--out", str(tmp_path / "other"),
                            "--softhsm", str(tmp_path / "cards")], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr and not (tmp_path / "other").exists()
