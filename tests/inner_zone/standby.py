"""A primary and a synchronous streaming standby, made with Debian's pg_createcluster.

Both clusters belong to the postgres user (the tests run as root) and live in the
usual /var/lib/postgresql/15/NAME; the names carry the pid so two sessions on one
host do not meet. The standby is a pg_basebackup -R copy of the primary, and the
primary waits for it on every commit (synchronous_standby_names), so whatever the
primary confirmed is on the standby when the primary dies.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "15"
DATABASE = "test"


def tools_present() -> bool:
    return all(shutil.which(t) for t in ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster",
                                         "pg_basebackup", "runuser"))


def free_port(start: int) -> int:
    """The first port from start on that nobody listens on (5441, 5442, ... by default)."""
    for port in range(start, start + 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port from {start}")


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _as_postgres(*args: str) -> str:
    return _run("runuser", "-u", "postgres", "--", *args)


@dataclass
class Cluster:
    name: str
    port: int

    @property
    def conf_dir(self) -> Path:
        return Path("/etc/postgresql") / VERSION / self.name

    @property
    def data_dir(self) -> Path:
        return Path("/var/lib/postgresql") / VERSION / self.name

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return _as_postgres("psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port),
                            "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql).strip()

    def ctl(self, action: str, *extra: str) -> None:
        _run("pg_ctlcluster", VERSION, self.name, action, *extra)

    def create(self, settings: dict[str, str]) -> None:
        # trust on 127.0.0.1 (replication included): the test clusters only listen there.
        _run("pg_createcluster", VERSION, self.name, "-p", str(self.port), "--start-conf=manual",
             "--", "--auth=trust", "--no-sync")
        lines = [f"{key} = '{value}'" for key, value in {"listen_addresses": "127.0.0.1", **settings}.items()]
        (self.conf_dir / "conf.d" / "tgw_replication.conf").write_text("\n".join(lines) + "\n")

    def configure(self, settings: dict[str, str]) -> None:
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        with (self.conf_dir / "conf.d" / "tgw_replication.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", VERSION, self.name], capture_output=True, timeout=120)

    def running(self) -> bool:
        done = subprocess.run(["pg_ctlcluster", VERSION, self.name, "status"], capture_output=True)
        return done.returncode == 0


@dataclass
class ReplicatedPair:
    """Primary and standby; `multi_url` names both, so libpq finds whichever writes."""

    primary: Cluster
    standby: Cluster
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def standby_name(self) -> str:
        return self.standby.name

    @property
    def multi_url(self) -> str:
        return (f"postgresql+psycopg://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
                f"/{DATABASE}?target_session_attrs=read-write&connect_timeout=3")

    def wait_streaming(self, want: tuple[str, ...] = ("sync",), timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.primary.psql(f"SELECT sync_state FROM pg_stat_replication "
                                      f"WHERE application_name = '{self.standby_name}'", database="postgres")
            if state in want:
                return
            time.sleep(0.2)
        raise RuntimeError(f"standby {self.standby_name} never reached {want} (last: {state!r})")

    def drop(self) -> None:
        for cluster in (self.standby, self.primary):
            cluster.drop()


def make_pair(tag: str | None = None) -> ReplicatedPair:
    """Create, start and connect a primary and a synchronous standby; `drop()` removes both."""
    tag = tag or f"tgw{os.getpid()}"
    primary = Cluster(f"{tag}p", free_port(5441))
    standby = Cluster(f"{tag}s", free_port(primary.port + 1))
    pair = ReplicatedPair(primary, standby)
    try:
        _build(pair)
    except BaseException:
        pair.drop()
        raise
    return pair


def _build(pair: ReplicatedPair) -> None:
    primary, standby = pair.primary, pair.standby
    primary.create({"wal_level": "replica", "wal_keep_size": "256MB"})
    primary.ctl("start")
    primary.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
    # pg_createcluster gives the standby its config files and pg_ctlcluster handle; its data
    # directory is then replaced by a copy of the primary's.
    standby.create({"hot_standby": "on"})
    for child in standby.data_dir.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    # application_name is the name synchronous_standby_names waits for.
    _as_postgres("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync",
                 "-d", f"application_name={standby.name}")
    standby.ctl("start")
    pair.wait_streaming(("async", "sync"))
    # Only now the primary waits for the standby: set earlier, CREATE DATABASE would hang.
    primary.configure({"synchronous_standby_names": standby.name, "synchronous_commit": "on"})
    primary.ctl("reload")
    pair.wait_streaming(("sync",))
