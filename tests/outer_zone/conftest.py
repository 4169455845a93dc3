"""Fixtures of the outer-zone tests: a seeded outer database, configs, the Flask app, gunicorn.

Argon2 makes every password hash cost about a quarter of a second here, so the users,
tokens and registry are seeded once per session into a template folder, and each test
gets a copy of that SQLite file with its own spool folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.kit import free_port, wait_until

TGW = str(Path(sys.executable).with_name("tgw"))
PASSWORD = "Correct-horse-42"
A1, A2 = "A10001", "A10002"
# username -> (agency, roles)
USERS = {
    "a1-admin": (A1, ["admin"]),
    "a1-rel": (A1, ["releaser"]),
    "a1-acc": (A1, ["accountant"]),
    "a1-prep": (A1, ["preparer"]),
    "a1-head": (A1, ["head"]),
    "a2-rel": (A2, ["releaser"]),
}
TOKEN_USERS = ("a1-rel", "a2-rel", "a1-prep", "a1-acc", "a1-head")


def outer_config(folder: Path, pki: Path, db: Path, **outer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    section = {
        "outbound": str(folder / "outbound"), "upload_tmp": str(folder / "incoming"),
        "secret_key_file": str(folder / "secret"), "cookie_secure": False, "min_free_bytes": 0,
        "min_free_fraction": 0.0, "registration_export_dir": str(folder / "certreq"), "workers": 1,
        "threads": 4, "heartbeat_seconds": 0.5,
    }
    section.update(outer)
    config = {
        "node": {"zone": "outer", "data_dir": str(folder / "var"), "host": "outer-test"},
        "database": {"url": f"sqlite:///{db}"},
        "trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                  "crl_dir": str(pki / "crl"), "stale_crl": "refuse"},
        "treasury": {"certificate": str(pki / "treasury" / "envelope.pem")},  # to seal batches; never the key
        "outer": section,
    }
    path = folder / "outer.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def expired_releaser(pki: Path, folder: Path) -> tuple[Path, Path]:
    """A releaser certificate of A10001 that expired ten days ago (the demo PKI has none)."""
    from tgw.demo.pki import Issuer, _key, _name, _usage, _write_pair, issue
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file

    gca = Issuer(load_certificate_file(pki / "gca.pem"), load_private_key_file(pki / "gca.key"))
    now = datetime.now(UTC).replace(microsecond=0)
    key = _key(2048)
    cert = issue(_name("過期放行人 expired releaser", "Demo Government", A1), key, gca,
                 not_before=now - timedelta(days=400), not_after=now - timedelta(days=10), usage=_usage(sign=True))
    _write_pair(folder, "expired-releaser", cert, key)
    return folder / "expired-releaser.pem", folder / "expired-releaser.key"


@pytest.fixture(scope="session")
def outer_template(tmp_path_factory, demo_pki) -> Path:
    from outer_zone import models  # noqa: F401
    from outer_zone.accounts import add_agency, add_user, allow_networks, create_token
    from tgw_common.db import create_tables, dispose_engines, make_engine, transaction
    from tgw_common.pki.certs import load_certificate_file
    from tgw_common.registry import SignerRegistry

    folder = tmp_path_factory.mktemp("outer-template")
    db = folder / "outer.db"
    engine = make_engine(f"sqlite:///{db}")
    create_tables(engine)
    registry = SignerRegistry(engine)
    registry.import_file(demo_pki / "registry.yaml")
    cert_path, _ = expired_releaser(demo_pki, folder)
    registry.add(load_certificate_file(cert_path), agency=A1, role="releaser")
    for code, name in ((A1, "財政部示範機關"), (A2, "內政部示範機關")):
        add_agency(engine, code, name)
        allow_networks(engine, code, ["127.0.0.0/8", "::1/128"])
    with transaction(engine) as s:
        for username, (agency, roles) in USERS.items():
            add_user(s, agency=agency, username=username, roles=roles, password=PASSWORD, must_change=False,
                     display_name=username.upper())
    tokens = {u: create_token(engine, u, "tests")[1] for u in TOKEN_USERS}
    (folder / "tokens.json").write_text(json.dumps(tokens))
    dispose_engines()
    return folder


@dataclass
class OuterEnv:
    folder: Path
    config_path: Path
    db: Path
    tokens: dict[str, str]
    pki: Path
    extra: dict = field(default_factory=dict)

    @property
    def outbound(self) -> Path:
        return self.folder / "outbound"

    @property
    def upload_tmp(self) -> Path:
        return self.folder / "incoming"

    def config(self):
        from tgw_common.config import load_config

        return load_config(self.config_path)

    def engine(self):
        from tgw_common.db import make_engine

        return make_engine(f"sqlite:///{self.db}")

    def outbound_files(self) -> list[str]:
        if not self.outbound.is_dir():
            return []
        return sorted(p.name for p in self.outbound.iterdir() if p.is_file() and not p.name.startswith("."))

    def reconfigure(self, **outer) -> Path:
        """Rewrite the config with other outer.* values (same database and folders)."""
        data = yaml.safe_load(self.config_path.read_text())
        data["outer"].update(outer)
        self.config_path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return self.config_path

    def events(self, **where) -> list[dict]:
        from sqlalchemy import select

        from tgw_common.db import transaction
        from tgw_common.events import EventRow

        with transaction(self.engine()) as s:
            q = select(EventRow).order_by(EventRow.id)
            for key, value in where.items():
                q = q.where(getattr(EventRow, key) == value)
            return [r.as_dict() for r in s.scalars(q)]

    def tgw(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([TGW, "outer", *args, "--config", str(self.config_path)], input=input,
                              capture_output=True, text=True, timeout=120)


def make_env(folder: Path, template: Path, pki: Path, **outer) -> OuterEnv:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "outer.db"
    shutil.copyfile(template / "outer.db", db)
    path = outer_config(folder, pki, db, **outer)
    return OuterEnv(folder, path, db, json.loads((template / "tokens.json").read_text()), pki,
                    extra={"expired_releaser": (template / "expired-releaser.pem", template / "expired-releaser.key")})


@pytest.fixture
def env(tmp_path, outer_template, demo_pki):
    from tgw_common.db import dispose_engines

    yield make_env(tmp_path / "outer", outer_template, demo_pki)
    dispose_engines()


@pytest.fixture
def app_for(env):
    """A factory of Flask apps over `env` (several apps may share the database, like workers)."""
    from outer_zone.web import create_app

    made = []

    def build(**outer):
        if outer:
            env.reconfigure(**outer)
        app = create_app(env.config())
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield build
    for app in made:
        app.extensions["tgw_outer"].close()


@pytest.fixture
def app(app_for):
    return app_for()


@pytest.fixture
def client(app):
    return app.test_client()


# --- envelopes
class Envelopes:
    """Valid and broken envelopes, fast: one approval per agency, then a fresh seal each time
    (a new content key, so a new release digest: no accidental replays)."""

    def __init__(self, kit) -> None:
        self.kit = kit
        self._approved: dict[str, bytes] = {}

    def approved(self, agency: str) -> bytes:
        if agency not in self._approved:
            self._approved[agency] = self.kit.approve(self.kit.payload(agency), agency)
        return self._approved[agency]

    def sealed(self, agency: str = A1) -> bytes:
        return self.kit.seal(self.approved(agency))

    def valid(self, agency: str = A1) -> bytes:
        return self.kit.release(self.sealed(agency), agency)

    def signed_by(self, cert, key, agency: str = A1, **kw) -> bytes:
        from tgw_common.tpe import sign_new

        return sign_new(self.sealed(agency), cert, key, **kw)


@pytest.fixture(scope="session")
def envelopes(kit) -> Envelopes:
    return Envelopes(kit)


# --- web helpers
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def web_login(client, username: str, *, agency: str | None = None, password: str = PASSWORD, **environ):
    page = client.get("/login", environ_base=environ)
    token = csrf_of(page.get_data(as_text=True))
    agency = agency or USERS[username][0]
    return client.post("/login", data={"agency": agency, "username": username, "password": password,
                                       "csrf_token": token}, environ_base=environ)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/pkcs7-mime"}


# --- a real gunicorn
class Server:
    """`tgw outer serve` as a real process group (gunicorn master and workers)."""

    def __init__(self, env: OuterEnv, log: Path, scheme: str = "http") -> None:
        self.env = env
        self.port = int(yaml.safe_load(env.config_path.read_text())["outer"]["bind"].rsplit(":", 1)[1])
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen([TGW, "--log-level", "INFO", "outer", "serve", "--config", str(env.config_path)],
                                     stdout=self.fh, stderr=self.fh, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0, ssl_context=None) -> None:
        import urllib.request

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/login", timeout=2, context=ssl_context) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(up, timeout, f"gunicorn on {self.base}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self.fh.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, outer_template, demo_pki):
    """One gunicorn (2 workers) per test module, over its own copy of the seeded database."""
    folder = tmp_path_factory.mktemp("served")
    env = make_env(folder, outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}", workers=2, threads=4,
                   max_upload_bytes=64 * 1024)
    server = Server(env, folder / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
