"""The foundation's tables on PostgreSQL as well as SQLite."""

from __future__ import annotations

import pytest

from tests.kit import write_config
from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction
from tgw_common.events import Provenance
from tgw_common.pki.certs import fingerprint
from tgw_common.registry import SignerRegistry
from tgw_common.tpe.factory import opener_from_config

pytestmark = pytest.mark.postgres


def test_registry_and_opener_on_postgres(pg_url, demo_pki, kit, tmp_path):
    config = load_config(write_config(tmp_path / "cfg", demo_pki, db_url=pg_url))
    registry = SignerRegistry(make_engine(config.database.url))
    assert len(registry.import_file(demo_pki / "registry.yaml")) == 11  # wrong-usage-head is not registrable
    assert registry.import_file(demo_pki / "registry.yaml") == []  # idempotent
    opener = opener_from_config(config, with_private_key=True)
    envelope = kit.envelope("A10001")
    assert opener.verdict(envelope)["accepted"] is True
    registry.revoke(fingerprint(kit.pair("A10001", "releaser")[0]))
    assert opener.verdict(envelope)["reason"] == "SIGNER_REGISTRATION_REVOKED"


def test_events_on_postgres(pg_url):
    engine = make_engine(pg_url)
    prov = Provenance(engine, zone="outer", host="h")
    with transaction(engine) as s:
        prov.record("received", "outer-web", sha256="b" * 64, tracking_id="T1", session=s, size=10)
    prov.record("spooled", "outer-web", tracking_id="T1")
    assert [e["event"] for e in prov.history(tracking_id="T1")] == ["received", "spooled"]
