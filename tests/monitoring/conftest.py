"""Fixtures for the monitoring tests: a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import pytest

from tgw_common.db import dispose_engines

from .mkit import SmtpServer


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_engines():
    # make_engine caches one engine per URL per process; each test has its own database file.
    yield
    dispose_engines()
