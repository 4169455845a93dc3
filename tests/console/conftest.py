"""Fixtures of the console's tests: an inner zone filled through the real inner pipeline,
console users, the Flask app, and a real `tgw inner console` (gunicorn) for the browser.

The zone's registry lacks A10002's accountant on purpose: A10002's envelopes are refused
SIGNER_NOT_REGISTERED at the approval layer until an operator registers that certificate.
Argon2 makes each password hash cost a fraction of a second, so users are made once per
zone, and the zone is made once per module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.inner_zone.ikit import cli, envelope, make_zone, wait_until
from tests.kit import free_port

TGW = str(Path(sys.executable).with_name("tgw"))
PASSWORD = "Console-pass-42"
USERS = {"ada": "administrator", "otto": "operator", "vera": "viewer"}
A1, A2 = "A10001", "A10002"
MISSING = ("A10002", "accountant")  # not in the zone's registry at the start


@dataclass
class ConsoleZone:
    root: Path
    zone: object  # tests.inner_zone.ikit.Zone
    pki: Path
    port: int
    loaded: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.zone.config

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def load_config(self):
        from tgw_common.config import load_config

        return load_config(self.config)

    def engine(self):
        from tgw_common.db import make_engine

        return make_engine(self.zone.db_url)

    def audit(self, **where) -> list[dict]:
        from sqlalchemy import select

        from inner_zone.console.models import AuditEntry
        from tgw_common.db import transaction

        with transaction(self.engine()) as s:
            q = select(AuditEntry).order_by(AuditEntry.id)
            for key, value in where.items():
                q = q.where(getattr(AuditEntry, key) == value)
            return [r.as_dict() for r in s.scalars(q)]

    def tgw(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """`tgw inner ...` in-process (the real click command; a subprocess costs a second of imports)."""
        from click.testing import CliRunner

        from tgw.cli import main

        result = CliRunner().invoke(main, ["inner", *args, "--config", str(self.config)], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def make_console_zone(root: Path, pki: Path, kit, *, loaded: int = 3, refused: int = 1, db_url: str | None = None,
                      **console) -> ConsoleZone:
    """An inner zone with a console section, users, some loaded and some refused envelopes."""
    from inner_zone.console.accounts import add_user
    from inner_zone.console.models import create_tables
    from tgw_common.db import dispose_engines, make_engine
    from tgw_common.registry import SignerRegistry

    port = free_port()
    section = {"bind": f"127.0.0.1:{port}", "workers": 1, "threads": 4, "cookie_secure": False,
               "secret_key_file": str(root / "console-secret"), "heartbeat_seconds": 1, "refresh_seconds": 5,
               "certreq_import_dir": str(root / "certreq"), **console}
    root.mkdir(parents=True, exist_ok=True)
    # The zone's registry lacks one certificate; make_zone imports the full one, so build over it.
    zone = make_zone(root / "zone", pki, db_url=db_url, console=section)
    engine = make_engine(zone.db_url)
    from sqlalchemy import delete

    from tgw_common.db import transaction
    from tgw_common.pki.certs import fingerprint, load_certificate_file
    from tgw_common.registry import SignerRow

    fp = fingerprint(load_certificate_file(pki / "agencies" / MISSING[0] / f"{MISSING[1]}.pem"))
    with transaction(engine) as s:
        s.execute(delete(SignerRow).where(SignerRow.fingerprint == fp))
    registry = SignerRegistry(engine)
    with transaction(engine) as s:
        registry._bump(s)
    create_tables(engine)
    for username, role in USERS.items():
        add_user(engine, username=username, role=role, password=PASSWORD, display_name=username.title(),
                 must_change=False, actor="tests", where="tests")
    cz = ConsoleZone(root, zone, pki, port)
    for i in range(loaded):
        path = root / "drop" / f"TPEA{i:04d}.p7m"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(envelope(kit, A1, number=7000 + i, count=2))
        code, out = cli("inner", "process", str(path), "--config", str(zone.config), "--json")
        assert code == 0, out
        import json

        cz.loaded.append(json.loads(out))
    for i in range(refused):
        path = root / "drop" / f"TPEB{i:04d}.p7m"
        path.write_bytes(envelope(kit, A2, number=8000 + i, count=2))
        code, out = cli("inner", "process", str(path), "--config", str(zone.config), "--json")
        import json

        cz.refused.append(json.loads(out))
        assert cz.refused[-1]["reason"] == "SIGNER_NOT_REGISTERED", out
    dispose_engines()
    return cz


@pytest.fixture(scope="session")
def zone_template(tmp_path_factory, demo_pki, kit) -> ConsoleZone:
    """Filled once per session (2 loaded A10001 envelopes, 1 refused A10002 one); tests get copies."""
    return make_console_zone(tmp_path_factory.mktemp("console-template") / "z", demo_pki, kit, loaded=2, refused=1)


@pytest.fixture(scope="module")
def czone(tmp_path_factory, zone_template) -> ConsoleZone:
    """A copy for a module's tests that only read."""
    return copy_zone(zone_template, tmp_path_factory.mktemp("console") / "z")


@pytest.fixture
def app(czone):
    from inner_zone.console.app import create_app
    from tgw_common.db import dispose_engines

    application = create_app(czone.load_config())
    application.config["TESTING"] = True
    yield application
    application.extensions["tgw_console"].close()
    dispose_engines()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def signed_in(app, username: str):
    client = app.test_client()
    r = login(client, username)
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


def token_of(client, path: str = "/dashboard") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


# --- a real gunicorn
class ConsoleServer:
    """`tgw inner console` as a real process group (gunicorn master and workers)."""

    def __init__(self, cz: ConsoleZone, log: Path) -> None:
        self.cz = cz
        self.base = cz.base
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen([TGW, "--log-level", "INFO", "inner", "console", "--config", str(cz.config)],
                                     stdout=self.fh, stderr=self.fh, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import urllib.request

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(up, timeout, f"gunicorn on {self.base}", step=0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self.fh.close()


def wait_for(pred, timeout: float, what: str):
    return wait_until(pred, timeout, what, step=0.2)



def copy_zone(template: ConsoleZone, root: Path) -> ConsoleZone:
    """A private copy of a prepared zone (database, folders, config): cheaper than filling a new one."""
    import shutil

    from tests.inner_zone.ikit import Zone
    from tgw_common.db import dispose_engines

    dispose_engines()
    shutil.copytree(template.root, root)
    old, new = str(template.root), str(root)
    port = free_port()
    config = root / "zone" / "cfg" / "config.yaml"
    text = config.read_text().replace(old, new).replace(f"127.0.0.1:{template.port}", f"127.0.0.1:{port}")
    config.write_text(text)
    zone = Zone(root / "zone", config, template.zone.db_url.replace(old, new))
    return ConsoleZone(root, zone, template.pki, port, loaded=list(template.loaded), refused=list(template.refused))
