"""Fixtures shared by every part's tests: one demo PKI per session, configs, openers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.kit import Kit, write_config

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory) -> Path:
    """A demo PKI with two agencies (A10001, A10002), built once per test session."""
    from tgw.demo.pki import build_demo_pki

    out = tmp_path_factory.mktemp("pki")
    build_demo_pki(out, agencies=2)
    return out


@pytest.fixture
def pki(demo_pki, tmp_path) -> Path:
    """A private copy of the demo PKI, for tests that revoke or re-issue CRLs."""
    return Path(shutil.copytree(demo_pki, tmp_path / "pki"))


@pytest.fixture(scope="session")
def kit(demo_pki) -> Kit:
    return Kit(demo_pki)


@pytest.fixture
def config_path(tmp_path, demo_pki) -> Path:
    """An inner-zone config over the session PKI, with the demo registry imported."""
    from tgw_common.config import load_config
    from tgw_common.db import make_engine
    from tgw_common.registry import SignerRegistry

    path = write_config(tmp_path / "cfg", demo_pki)
    config = load_config(path)
    SignerRegistry(make_engine(config.database.url)).import_file(demo_pki / "registry.yaml")
    return path


@pytest.fixture
def opener(config_path):
    from tgw_common.config import load_config
    from tgw_common.tpe.factory import opener_from_config

    return opener_from_config(load_config(config_path), with_private_key=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose tables land in a fresh schema, dropped afterwards.

    CI has PostgreSQL on 127.0.0.1:5432; elsewhere the test is skipped, but in CI
    (CI=true) a missing server fails the test instead of hiding it.
    """
    import os
    import uuid

    import sqlalchemy

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc.orig}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    from tgw_common.db import dispose_engines

    dispose_engines()
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
