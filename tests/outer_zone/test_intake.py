"""Pieces of the intake on their own: client addresses, the recovery sweep, CRL reloading."""

from __future__ import annotations

import ipaddress
import os
import time

import pytest

from tgw_common.web.clientaddr import UNKNOWN, client_address

from .conftest import A1, bearer, make_env

TRUSTED = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8::/64")]


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "127.0.0.1", "203.0.113.9"),  # untrusted peer: header ignored
    ("10.0.0.5", "198.51.100.4", "198.51.100.4"),
    ("10.0.0.5", "1.1.1.1, 198.51.100.4, 10.0.0.7", "198.51.100.4"),  # chain of trusted proxies
    ("10.0.0.5", "10.0.0.6", "10.0.0.6"),  # only proxies: the innermost one
    ("10.0.0.5", "198.51.100.4, garbage", UNKNOWN),  # fails closed
    ("::ffff:203.0.113.9", None, "203.0.113.9"),  # v4-mapped is the v4 address
    ("2001:db8::1", "[2001:db8:1::5]", "2001:db8:1::5"),
    ("not-an-ip", None, UNKNOWN),
])
def test_client_address(peer, forwarded, expected):
    assert client_address(peer, forwarded, TRUSTED) == expected


def test_running_sweep_spares_uploads_in_flight(env, app):
    portal = app.extensions["tgw_outer"]
    fresh_part = env.upload_tmp / "aaaaaaaaaaaaaaaaaaaaaaaa.part"
    old_part = env.upload_tmp / "bbbbbbbbbbbbbbbbbbbbbbbb.part"
    fresh_ready = env.upload_tmp / "20250101T000000000000Z-A10001-000001.p7m"
    old_ready = env.upload_tmp / "20250101T000000000000Z-A10001-000002.p7m"
    for p in (fresh_part, old_part, fresh_ready, old_ready):
        p.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    for p in (old_part, old_ready):
        os.utime(p, (an_hour_ago, an_hour_ago))
    counts = portal.intake.sweep()
    assert counts == {"republished": 0, "parts_removed": 1, "orphans_removed": 1}
    assert sorted(p.name for p in env.upload_tmp.iterdir()) == sorted([fresh_part.name, fresh_ready.name])


def test_new_crl_is_picked_up_without_a_restart(tmp_path, outer_template, pki, envelopes, kit):
    from outer_zone.web import create_app
    from tgw.demo.pki import issue_crls
    from tgw_common.db import dispose_engines

    env = make_env(tmp_path / "outer", outer_template, pki)
    app = create_app(env.config())
    client = app.test_client()
    post = lambda: client.post("/api/v1/envelopes", data=envelopes.valid(),  # noqa: E731
                               headers=bearer(env.tokens["a1-rel"]))
    try:
        assert post().status_code == 202
        portal = app.extensions["tgw_outer"]
        assert portal.refresh_trust() is False  # nothing changed
        issue_crls(pki, revoke=[pki / "agencies" / A1 / "releaser.pem"])
        assert portal.refresh_trust() is True
        r = post()
        assert (r.status_code, r.get_json()["reason"]) == (422, "CERT_REVOKED")
    finally:
        app.extensions["tgw_outer"].close()
        dispose_engines()
