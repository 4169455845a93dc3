"""Fixtures for the inner-zone tests: a zone on SQLite, or on PostgreSQL in a private schema."""

from __future__ import annotations

import uuid

import pytest

from tgw_common.db import dispose_engines

from .ikit import make_zone

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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
def pg_url():
    """A fresh PostgreSQL schema for this test (other suites share the database), dropped after.

    The search_path travels in the URL (libpq `options`), so subprocesses and every
    engine made from the config land in the same private schema.
    """
    psycopg = pytest.importorskip("psycopg")
    schema = f"inner_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    dispose_engines()
    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.close()


@pytest.fixture
def pg_zone(tmp_path, demo_pki, pg_url):
    return make_zone(tmp_path / "zone", demo_pki, db_url=pg_url)


@pytest.fixture(scope="session")
def fkit(demo_pki):
    from .ikit import FastKit

    return FastKit(demo_pki)
