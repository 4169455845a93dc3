"""Users, groups and folders as sysusers.d and tmpfiles.d create them, and who may do what.

systemd-sysusers and systemd-tmpfiles run for real against a scratch root (--root), then
the access tables of docs/deployment.md ("Who may read and write what"), read from the
document itself, are checked against the resulting owners and modes with the kernel's
rules for a non-root user (search permission on every parent folder, then owner / group /
other bits).
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.units import DAEMONS, SYSTEMD, ZONES, systemd_tool

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"

# The columns of the access tables in docs/deployment.md, by host.
COLUMNS = {
    "outer": {"incoming": ["/var/lib/tgw/spool/incoming"], "outbound": ["/var/lib/tgw/spool/outbound"],
              "sent, transfer": ["/var/lib/tgw/spool/sent", "/var/lib/tgw/spool/transfer"],
              "outer": ["/var/lib/tgw/outer"], "crl": ["/var/lib/tgw/crl"], "db": ["/var/lib/tgw/db"],
              "feed": ["/run/tgw-feed"]},
    "inner": {"staging": ["/var/lib/tgw/spool/staging"], "inbound": ["/var/lib/tgw/spool/inbound"],
              "transfer": ["/var/lib/tgw/spool/transfer"],
              "inner, quarantine": ["/var/lib/tgw/spool/inner", "/var/lib/tgw/spool/inner/held",
                                    "/var/lib/tgw/spool/inner/held/.tmp", "/var/lib/tgw/spool/quarantine",
                                    "/var/lib/tgw/spool/quarantine/.tmp"],
              "archive": ["/var/lib/tgw/archive"],
              "console": ["/var/lib/tgw/console", "/var/lib/tgw/console/certreq"], "crl": ["/var/lib/tgw/crl"],
              "db": ["/var/lib/tgw/db"],
              "feed": ["/run/tgw-feed"]},
}
# A cell's word -> what the folder's permissions must allow. "connect": enter the folder (the
# socket inside is group-writable); "binds": create the socket.
CELL = {"rw": "rw", "r": "r", "–": "-", "connect": "r", "binds": "rw"}


def documented_access() -> list[tuple[str, str, str, str]]:
    """(zone, user, path, access) from the two tables under "Who may read and write what"."""
    text = DOC.read_text(encoding="utf-8").split("## Who may read and write what", 1)[1].split("\n## ", 1)[0]
    tables = [block for block in text.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2, "expected the outer and the inner access table"
    rows = []
    for zone, table in zip(ZONES, tables, strict=True):
        lines = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
        header = lines[0][1:]
        assert set(header) == set(COLUMNS[zone]), f"{zone} table columns: {header}"
        for cells in lines[2:]:
            for column, cell in zip(header, cells[1:], strict=True):
                for path in COLUMNS[zone][column]:
                    rows.append((zone, cells[0], path, CELL[cell]))
    return rows


ACCESS = documented_access()


class Root:
    """A scratch root after systemd-sysusers and systemd-tmpfiles --create."""

    def __init__(self, path: Path, zone: str) -> None:
        self.path = path
        etc = path / "etc"
        etc.mkdir(parents=True)
        # Start from a system's base accounts (root, nobody) so tmpfiles can resolve "root".
        (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
        (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        for name in ("shadow", "gshadow"):
            (etc / name).write_text("")
        conf = (SYSTEMD / zone / "sysusers.conf").read_text()
        run([systemd_tool("systemd-sysusers"), f"--root={path}", "-"], conf)
        conf = (SYSTEMD / zone / "tmpfiles.conf").read_text()
        run([systemd_tool("systemd-tmpfiles"), f"--root={path}", "--create", "-"], conf)
        self.uids = {f[0]: int(f[2]) for f in _rows(etc / "passwd")}
        self.primary = {f[0]: int(f[3]) for f in _rows(etc / "passwd")}
        self.gids = {f[0]: int(f[2]) for f in _rows(etc / "group")}
        self.members = {f[0]: set(filter(None, f[3].split(","))) for f in _rows(etc / "group")}

    def groups_of(self, user: str) -> set[int]:
        return {self.primary[user]} | {self.gids[g] for g, m in self.members.items() if user in m}

    def may(self, user: str, path: str, want: int) -> bool:
        """The kernel's check for a non-root user: search (x) on every parent, `want` on the target."""
        uid, gids = self.uids[user], self.groups_of(user)
        parts = Path(path).parts
        for depth in range(2, len(parts) + 1):  # "/" itself (the scratch folder here) is searchable
            st = (self.path / Path(*parts[1:depth])).stat()
            need = want if depth == len(parts) else 1
            if st.st_uid == uid:
                bits = (st.st_mode >> 6) & 7
            elif st.st_gid in gids:
                bits = (st.st_mode >> 3) & 7
            else:
                bits = st.st_mode & 7
            if bits & need != need:
                return False
        return True


def _rows(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text().splitlines() if line]


def run(cmd: list[str], stdin: str) -> None:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{cmd[0]} failed: {done.stderr}"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Root]:
    return {zone: Root(tmp_path_factory.mktemp(f"root-{zone}"), zone) for zone in ZONES}


@pytest.mark.parametrize("zone", ZONES)
def test_every_daemon_user_and_group_is_created(roots, zone):
    r = roots[zone]
    for daemon in DAEMONS:
        if daemon.zone == zone:
            assert daemon.user in r.uids
            assert 0 < r.uids[daemon.user] < 1000, "a system user"
    shared = {"outer": {"tgw-outbound", "tgw-feed", "tgw-db"},
              "inner": {"tgw-inbound", "tgw-intake", "tgw-feed", "tgw-db"}}[zone]
    assert shared <= set(r.gids)


@pytest.mark.parametrize("zone", ZONES)
def test_shared_spools_are_setgid_and_group_owned(roots, zone):
    r = roots[zone]
    group = {"outer": "tgw-outbound", "inner": "tgw-inbound"}[zone]
    for name in {"outer": ("incoming", "outbound"), "inner": ("staging", "inbound")}[zone]:
        st = (r.path / "var/lib/tgw/spool" / name).stat()
        assert st.st_gid == r.gids[group]
        # setgid: files created inside get the shared group, so the next daemon can read them.
        assert st.st_mode & stat.S_ISGID
        assert st.st_mode & 0o007 == 0, "nothing for others"
    feed = (r.path / "run/tgw-feed").stat()
    assert feed.st_mode & stat.S_ISGID and feed.st_gid == r.gids["tgw-feed"]
    creds = (r.path / "etc/tgw/credentials").stat()
    assert creds.st_uid == 0 and stat.S_IMODE(creds.st_mode) == 0o700


@pytest.mark.parametrize("zone,user,path,access", ACCESS, ids=lambda v: str(v))
def test_who_may_read_and_write_what(roots, zone, user, path, access):
    r = roots[zone]
    can_read = r.may(user, path, 4 | 1)
    can_write = r.may(user, path, 2 | 1)
    assert (can_read, can_write) == {"rw": (True, True), "r": (True, False), "-": (False, False)}[access], \
        f"{user} on {path}: read={can_read} write={can_write}, documented {access!r}"


def test_the_checker_sees_a_closed_folder(tmp_path):
    # The permission model is live: the same user is refused once the mode is tightened.
    r = Root(tmp_path / "root", "outer")
    outbound = r.path / "var/lib/tgw/spool/outbound"
    assert r.may("tgw-send", "/var/lib/tgw/spool/outbound", 2 | 1)
    outbound.chmod(0o2750)
    assert not r.may("tgw-send", "/var/lib/tgw/spool/outbound", 2 | 1)
