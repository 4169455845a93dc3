"""Helpers of the end-to-end tests: the `tgw` command as a process, free ports, an appliance."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def tgw(*args: str | Path, check: int | None = 0, timeout: float = 300, cwd: Path | None = None
        ) -> subprocess.CompletedProcess:
    """`tgw ARGS` as the README runs it, in a process of its own."""
    result = subprocess.run([sys.executable, "-m", "tgw", *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, check=False, cwd=cwd or REPO)
    if check is not None:
        assert result.returncode == check, (f"tgw {' '.join(map(str, args))} -> {result.returncode}\n"
                                            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def free_port_base() -> int:
    """A port base whose every appliance port is free now (other tests run on this machine too)."""
    from tgw.appliance.control import busy_ports

    rng = random.Random()
    for _ in range(100):
        # Below the kernel's ephemeral range (32768 and up), where any outgoing connection
        # could take one of our ports between this check and the daemon's bind.
        base = rng.randrange(19, 31) * 1000 + rng.randrange(0, 10) * 10
        if not busy_ports(base, loss=True, console=True):
            return base
    raise RuntimeError("no free port base found")


@pytest.fixture
def appliance_dir(tmp_path, request):
    """A folder for one appliance; `tgw down` at the end whatever happened, logs kept on failure."""
    from tgw.appliance.control import supervisor_pid
    from tgw.appliance.layout import Layout

    folder = tmp_path / "app"
    yield folder
    if supervisor_pid(Layout.at(folder)) is not None:
        tgw("down", "--dir", folder, check=None, timeout=660)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and (folder / "log").is_dir():
        dest = ARTIFACTS / f"e2e-{request.node.name}"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(folder / "log", dest / "log")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
