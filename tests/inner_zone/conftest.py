"""Fixtures for the inner-zone tests: a zone on SQLite, or on PostgreSQL in a private schema
(tests/conftest.py's pg_url: a fresh schema per test, dropped after)."""

from __future__ import annotations

import pytest

from tgw_common.db import dispose_engines

from .ikit import make_zone


@pytest.fixture(autouse=True)
def _fresh_engines():
    # make_engine caches one engine per URL per process; each test has its own database.
    yield
    dispose_engines()


@pytest.fixture
def zone(tmp_path, demo_pki):
    """An inner zone on SQLite in tmp_path, with the demo signer registry imported."""
    return make_zone(tmp_path / "zone", demo_pki)


@pytest.fixture
def pg_zone(tmp_path, demo_pki, pg_url):
    return make_zone(tmp_path / "zone", demo_pki, db_url=pg_url)


@pytest.fixture(scope="session")
def fkit(demo_pki):
    from .ikit import FastKit

    return FastKit(demo_pki)
