"""The portal on PostgreSQL (the production database), in a schema of its own."""

from __future__ import annotations

import threading

import pytest

from .conftest import A1, bearer, outer_config

pytestmark = pytest.mark.postgres

def test_upload_replay_and_status_on_postgres(tmp_path, demo_pki, pg_url, envelopes):
    import yaml

    from outer_zone.accounts import add_agency, add_user, allow_networks, create_token
    from outer_zone.web import create_app
    from tgw_common.config import load_config
    from tgw_common.db import transaction
    from tgw_common.events import Provenance

    path = outer_config(tmp_path / "outer", demo_pki, tmp_path / "unused.db")
    data = yaml.safe_load(path.read_text())
    data["database"]["url"] = pg_url
    path.write_text(yaml.safe_dump(data))
    apps = [create_app(load_config(path)) for _ in range(2)]  # two "workers", one database
    engine = apps[0].extensions["tgw_outer"].engine
    from tgw_common.registry import SignerRegistry

    SignerRegistry(engine).import_file(demo_pki / "registry.yaml")
    add_agency(engine, A1, "財政部示範機關")
    allow_networks(engine, A1, ["127.0.0.1/32"])
    with transaction(engine) as s:
        add_user(s, agency=A1, username="pg-rel", roles=["releaser"], password="Postgres-pass-1", must_change=False)
    token = create_token(engine, "pg-rel")[1]

    body = envelopes.valid()
    results: list[int] = []
    barrier = threading.Barrier(4)

    def upload(app):
        barrier.wait()
        results.append(app.test_client().post("/api/v1/envelopes", data=body, headers=bearer(token)).status_code)

    threads = [threading.Thread(target=upload, args=(apps[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [202, 409, 409, 409]
    client = apps[0].test_client()
    listed = client.get("/api/v1/envelopes", headers=bearer(token)).get_json()["uploads"]
    accepted = [u for u in listed if u["state"] == "accepted"]
    assert len(accepted) == 1 and sorted(u["reason"] or "" for u in listed) == ["", "REPLAY", "REPLAY", "REPLAY"]
    tid = accepted[0]["tracking_id"]
    Provenance(engine, zone="outer", host="x").record("sent", "transfer-send", tracking_id=tid)
    assert client.get(f"/api/v1/envelopes/{tid}", headers=bearer(token)).get_json()["state"] == "sent"
    for app in apps:
        app.extensions["tgw_outer"].close()
