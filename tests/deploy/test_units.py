"""The systemd units: one per daemon with the documented verb, their security score, and
`systemd-analyze verify` (docs/deployment.md).

`systemd-analyze security --offline=yes PATH` reads a unit file by path (no --root or
--image needed; drop-ins in PATH.d/ beside it are applied too) and prints
"→ Overall exposure level for NAME: N.N ...". Every shipped service, and every shipped
example drop-in applied to its unit, must score at most 2.0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from tests.deploy.units import (
    DAEMONS,
    MAX_EXPOSURE,
    SYSTEMD,
    ZONES,
    all_services,
    example_dropins,
    one,
    parse_unit,
    systemd_tool,
    sysusers,
    tmpfiles,
    values,
)

EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")


def exposure(unit_path: Path) -> tuple[float, str]:
    """The unit's overall exposure and what systemd-analyze said on stderr (parse warnings)."""
    done = subprocess.run([systemd_tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(unit_path)],
                          capture_output=True, text=True, timeout=60)
    found = EXPOSURE.search(done.stdout)
    assert found, f"no exposure line for {unit_path}:\n{done.stdout[-2000:]}\n{done.stderr}"
    assert found.group(1) == unit_path.name
    return float(found.group(2)), done.stderr.strip()


# --- inventory: every daemon has its unit, and the unit runs the documented verb


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: f"{d.zone}/{d.unit}")
def test_every_daemon_has_a_unit_running_the_documented_verb(daemon):
    assert daemon.path.is_file(), f"missing unit {daemon.path}"
    unit = parse_unit(daemon.path)
    assert values(unit, "Service", "ExecStart") == [daemon.exec_start]
    assert one(unit, "Service", "User") == daemon.user
    assert one(unit, "Service", "Type") == "notify"
    # The main process is the one that notifies: the Runner base, or the gunicorn arbiter
    # running inside `tgw outer serve` (see test_notify.py).
    assert one(unit, "Service", "NotifyAccess") == "main"
    # Killed any number of times, it comes back: systemd restarts whatever ended it, never gives up
    # (no start limit; systemd 252 has no RestartSteps, so the pause is fixed).
    assert one(unit, "Service", "Restart") == "always"
    assert int(one(unit, "Service", "RestartSec") or 0) >= 1
    assert one(unit, "Service", "RestartPreventExitStatus") == "2", "a config error (exit 2) must not restart"
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0"
    assert one(unit, "Unit", "StartLimitBurst") is None
    watchdog = one(unit, "Service", "WatchdogSec")
    if daemon.kind == "runner":
        assert watchdog and int(watchdog) >= 30, "Runner daemons send WATCHDOG=1 from their loop"
    else:
        assert watchdog is None, "gunicorn's arbiter never sends WATCHDOG=1: a watchdog would kill it"


@pytest.mark.parametrize("zone", ZONES)
def test_no_unit_without_a_row_in_the_inventory(zone):
    known = {d.unit for d in DAEMONS if d.zone == zone}
    shipped = {p.name for p in (SYSTEMD / zone).glob("*.service")}
    assert shipped == known


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: f"{d.zone}/{d.unit}")
def test_the_verb_exists_in_the_cli(daemon):
    from tgw.cli import main

    ctx = click.Context(main)
    command = main
    for word in daemon.verb.split():
        command = command.get_command(ctx, word) if isinstance(command, click.Group) else None
        if command is None:
            pytest.fail(f"`tgw {daemon.verb}` does not exist")
    assert "config_path" in {p.name for p in command.params}, f"`tgw {daemon.verb}` takes no --config"


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: f"{d.zone}/{d.unit}")
def test_each_daemon_belongs_to_its_hosts_target(daemon):
    assert (SYSTEMD / daemon.zone / f"tgw-{daemon.zone}.target").is_file()
    unit = parse_unit(daemon.path)
    assert one(unit, "Unit", "PartOf") == f"tgw-{daemon.zone}.target"
    assert one(unit, "Install", "WantedBy") == f"tgw-{daemon.zone}.target"


# --- users, groups and folders agree with the units


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: f"{d.zone}/{d.unit}")
def test_users_groups_and_writable_paths_are_declared(daemon):
    unit = parse_unit(daemon.path)
    users, groups, members = sysusers(daemon.zone)
    assert daemon.user in users
    assert one(unit, "Service", "Group") == daemon.user
    supplementary = set(" ".join(values(unit, "Service", "SupplementaryGroups")).split())
    assert supplementary <= groups
    # sysusers memberships mirror the unit, so `runuser -u USER` sees what the daemon sees.
    assert members.get(daemon.user, set()) == supplementary
    declared = tmpfiles(daemon.zone)
    for path in " ".join(values(unit, "Service", "ReadWritePaths")).split():
        optional = path.startswith("-")
        path = path.lstrip("-")
        assert path in declared, f"{daemon.unit}: ReadWritePaths={path} is not created by tmpfiles.conf"
        if not optional:
            assert declared[path][0] == "d"


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: f"{d.zone}/{d.unit}")
def test_hardening_basics(daemon):
    unit = parse_unit(daemon.path)
    s = "Service"
    assert one(unit, s, "ProtectSystem") == "strict"
    assert values(unit, s, "CapabilityBoundingSet") == [""]
    assert one(unit, s, "NoNewPrivileges") == "yes"
    assert one(unit, s, "DynamicUser") is None, "spools are shared by group: static users"
    assert values(unit, s, "SystemCallFilter")[0] == "@system-service"
    assert one(unit, s, "IPAddressDeny") == "any"
    assert one(unit, s, "MemoryDenyWriteExecute") is None, "not verified with cffi/ctypes users: keep off"
    families = set(one(unit, s, "RestrictAddressFamilies").split())
    if daemon.unit == "tgw-inner-runner.service":
        # Files, a Unix-socket database and the ipc:// feed only.
        assert families == {"AF_UNIX"}
        assert one(unit, s, "PrivateNetwork") == "yes"
        assert "treasury-key:" in (one(unit, s, "LoadCredential") or "")
    else:
        assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
        assert one(unit, s, "LoadCredential") is None, "only the inner runner holds the treasury key"
    assert one(unit, s, "UMask") in ("0077", "0027", "0007")


# --- the score


@pytest.mark.parametrize("unit_path", all_services(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_security_exposure_at_most_2(unit_path):
    score, warnings = exposure(unit_path)
    assert warnings == "", f"systemd-analyze complained about {unit_path.name}: {warnings}"
    assert score <= MAX_EXPOSURE, f"{unit_path.name}: exposure {score} > {MAX_EXPOSURE}"


@pytest.mark.parametrize("pair", example_dropins(), ids=lambda p: f"{p[0].name}+{p[1].name}")
def test_security_exposure_with_each_example_dropin(pair, tmp_path):
    unit, dropin = pair
    shutil.copy(unit, tmp_path / unit.name)
    (tmp_path / f"{unit.name}.d").mkdir()
    shutil.copy(dropin, tmp_path / f"{unit.name}.d" / dropin.name)
    score, warnings = exposure(tmp_path / unit.name)
    assert warnings == ""
    assert score <= MAX_EXPOSURE, f"{unit.name} with {dropin.name}: exposure {score} > {MAX_EXPOSURE}"


def test_a_weak_unit_scores_above_the_limit(tmp_path):
    # The parser and the limit are live: an unhardened unit must fail the same check.
    weak = tmp_path / "weak.service"
    weak.write_text("[Service]\nExecStart=/opt/tgw/bin/tgw transfer send --config /etc/tgw/transfer-send.yaml\n")
    score, _ = exposure(weak)
    assert score > MAX_EXPOSURE


# --- systemd-analyze verify, in a scratch root


def _scratch_root(tmp_path: Path, zone: str) -> Path:
    """A root with the host's system units (for sysinit.target and friends), ours in
    /etc/systemd/system, and stand-ins for the binaries verify checks are executable."""
    root = tmp_path / "root"
    system = Path("/usr/lib/systemd/system")
    if not system.is_dir():
        pytest.skip("no /usr/lib/systemd/system to verify against")
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for path in [*(SYSTEMD / zone).glob("tgw-*"), *(SYSTEMD / "common").glob("tgw-crl-refresh.*")]:
        shutil.copy(path, units / path.name)
    for example in (SYSTEMD / zone / "examples").glob("*.d"):
        shutil.copytree(example, units / example.name)
    for tool in ("opt/tgw/bin/tgw", "opt/tgw/libexec/tgw-crl-refresh"):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).write_text("#!/bin/sh\n")
        (root / tool).chmod(0o755)
    return root


@pytest.mark.parametrize("zone", ZONES)
def test_systemd_analyze_verify(zone, tmp_path):
    root = _scratch_root(tmp_path, zone)
    names = sorted(p.name for p in (root / "etc/systemd/system").iterdir() if p.is_file())
    done = subprocess.run([systemd_tool("systemd-analyze"), "verify", "--man=no", f"--root={root}", *names],
                          capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values (it only warns), so any output is a failure.
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stderr


def test_verify_would_catch_a_bad_key(tmp_path):
    root = _scratch_root(tmp_path, "outer")
    unit = root / "etc/systemd/system/tgw-transfer-send.service"
    unit.write_text(unit.read_text().replace("UMask=0077", "UMask=0077\nRestrictAddressFamilies=AF_NOPE"))
    done = subprocess.run([systemd_tool("systemd-analyze"), "verify", "--man=no", f"--root={root}", unit.name],
                          capture_output=True, text=True, timeout=60)
    assert "AF_NOPE" in done.stderr
