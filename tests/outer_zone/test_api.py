"""POST /api/v1/envelopes and the status API, through the Flask test client."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import select

from outer_zone.models import AuditEntry, Upload
from tgw_common.db import transaction

from .conftest import A1, A2, bearer


def _post(client, env, body: bytes, user: str = "a1-rel", headers: dict | None = None, **kw):
    return client.post("/api/v1/envelopes", data=body, headers={**bearer(env.tokens[user]), **(headers or {})}, **kw)


def _uploads(env) -> list[Upload]:
    with transaction(env.engine()) as s:
        return list(s.scalars(select(Upload).order_by(Upload.id)))


def test_accepted_upload_is_spooled_with_provenance(env, client, envelopes):
    body = envelopes.valid()
    r = _post(client, env, body)
    assert r.status_code == 202, r.get_json()
    answer = r.get_json()
    tid = answer["tracking_id"]
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["received_at"] and answer["agency"] == A1
    assert r.headers["Location"] == f"/api/v1/envelopes/{tid}"
    # Published atomically under its tracking id, byte for byte.
    assert env.outbound_files() == [f"{tid}.p7m"]
    assert (env.outbound / f"{tid}.p7m").read_bytes() == body
    assert [p.name for p in env.upload_tmp.iterdir()] == []
    events = env.events(tracking_id=tid)
    assert [(e["event"], e["hop"], e["sha256"]) for e in events] == [
        ("received", "outer-web", answer["sha256"]), ("spooled", "outer-web", answer["sha256"])]
    assert events[0]["zone"] == "outer" and events[0]["detail"]["agency"] == A1
    (row,) = _uploads(env)
    assert (row.state, row.tracking_id, row.username, row.via, row.spooled_at is not None) == (
        "accepted", tid, "a1-rel", "api", True)
    with transaction(env.engine()) as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == tid)).all()
    assert actions == ["upload_accepted"]


def test_status_api_follows_the_sender(env, client, envelopes):
    from tgw_common.events import Provenance

    tid = _post(client, env, envelopes.valid()).get_json()["tracking_id"]
    look = client.get(f"/api/v1/envelopes/{tid}", headers=bearer(env.tokens["a1-rel"]))
    assert look.status_code == 200 and look.get_json()["state"] == "accepted"
    # The transfer sender records "sent" for the tracking id in the same database.
    Provenance(env.engine(), zone="outer", host="x").record("sent", "transfer-send", tracking_id=tid, copy=1)
    look = client.get(f"/api/v1/envelopes/{tid}", headers=bearer(env.tokens["a1-rel"]))
    assert look.get_json()["state"] == "sent" and look.get_json()["sent_at"]
    listed = client.get("/api/v1/envelopes?state=sent", headers=bearer(env.tokens["a1-rel"])).get_json()
    assert [u["tracking_id"] for u in listed["uploads"]] == [tid]
    # Another agency cannot see it.
    other = client.get(f"/api/v1/envelopes/{tid}", headers=bearer(env.tokens["a2-rel"]))
    assert other.status_code == 404


def _registry_revoke(env, cert):
    from tgw_common.pki.certs import fingerprint
    from tgw_common.registry import SignerRegistry

    SignerRegistry(env.engine()).revoke(fingerprint(cert))


@pytest.mark.parametrize("case, code", [
    ("other_agency_releaser", "SIGNER_WRONG_AGENCY"),
    ("releaser_of_other_agency_token", "SIGNER_WRONG_AGENCY"),
    ("expired_releaser", "CERT_EXPIRED"),
    ("crl_revoked_releaser", "CERT_REVOKED"),
    ("registration_revoked", "SIGNER_REGISTRATION_REVOKED"),
    ("untrusted_releaser", "CERT_UNTRUSTED"),
    ("unregistered_releaser", "SIGNER_NOT_REGISTERED"),
    ("head_as_releaser", "SIGNER_WRONG_ROLE"),
    ("not_der", "MALFORMED_DER"),
])
def test_release_layer_refusals(case, code, env, client, envelopes, kit):
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file

    user = "a1-rel"
    if case == "other_agency_releaser":
        body = envelopes.signed_by(*kit.pair(A2, "releaser"))
    elif case == "releaser_of_other_agency_token":
        body, user = envelopes.valid(A1), "a2-rel"
    elif case == "expired_releaser":
        cert_path, key_path = env.extra["expired_releaser"]
        body = envelopes.signed_by(load_certificate_file(cert_path), load_private_key_file(key_path))
    elif case == "crl_revoked_releaser":
        body = envelopes.signed_by(*kit.extra("revoked-releaser"))
    elif case == "registration_revoked":
        _registry_revoke(env, kit.pair(A1, "releaser")[0])
        body = envelopes.valid()
    elif case == "untrusted_releaser":
        body = envelopes.signed_by(*kit.extra("untrusted-releaser"))
    elif case == "unregistered_releaser":
        body = envelopes.signed_by(*kit.extra("unregistered-releaser"))
    elif case == "head_as_releaser":
        body = envelopes.signed_by(*kit.pair(A1, "head"))
    else:
        body = b"\x30\x82\x01\x00" + b"\x00" * 20
    r = _post(client, env, body, user=user)
    answer = r.get_json()
    assert (r.status_code, answer["reason"], answer["layer"]) == (422, code, "release"), answer
    assert answer["message"] and answer["tracking_id"]
    assert env.outbound_files() == []
    assert list(env.upload_tmp.iterdir()) == []
    (row,) = _uploads(env)
    assert (row.state, row.reason, row.sha256) == ("refused", code, hashlib.sha256(body).hexdigest())
    assert [e["event"] for e in env.events(tracking_id=answer["tracking_id"])] == ["refused"]


def test_nothing_is_read_before_authentication(env, client):
    garbage = b"\x30\x80" + b"A" * 5000
    for headers in ({}, bearer("tgwo_not-a-real-token"), {"Authorization": "Basic YTpi"}):
        r = client.post("/api/v1/envelopes", data=garbage, headers=headers)
        assert r.status_code == 401 and r.get_json()["reason"] == "UNAUTHENTICATED"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert _uploads(env) == [] and list(env.upload_tmp.iterdir()) == []


def test_revoked_token_is_refused(env, client, envelopes):
    from outer_zone.accounts import revoke_tokens

    assert _post(client, env, envelopes.valid()).status_code == 202
    revoke_tokens(env.engine(), username="a1-rel")
    r = _post(client, env, envelopes.valid())
    assert (r.status_code, r.get_json()["reason"]) == (401, "UNAUTHENTICATED")


def test_token_of_disabled_user_is_refused(env, client, envelopes):
    from outer_zone.accounts import find_user

    with transaction(env.engine()) as s:
        find_user(s, "a1-rel").active = False
    assert _post(client, env, envelopes.valid()).status_code == 401


def test_declared_oversize_is_refused_unread(env, app_for, envelopes):
    client = app_for(max_upload_bytes=4096).test_client()
    r = _post(client, env, envelopes.valid())
    assert (r.status_code, r.get_json()["reason"]) == (413, "UPLOAD_TOO_LARGE")
    (row,) = _uploads(env)
    assert row.state == "refused" and row.sha256 is None  # refused before a byte was hashed


def test_allow_list_and_trusted_proxy(env, app_for, envelopes):
    client = app_for(trusted_proxies=["10.9.9.9/32"]).test_client()
    proxy = {"REMOTE_ADDR": "10.9.9.9"}
    # Through the trusted proxy, the forwarded client address counts.
    ok = _post(client, env, envelopes.valid(), environ_base=proxy,
               headers={"X-Forwarded-For": "198.51.100.1, 127.0.0.1"})
    assert ok.status_code == 202
    (row,) = _uploads(env)
    assert row.client_ip == "127.0.0.1"
    cases = [
        ({"REMOTE_ADDR": "10.9.9.9"}, "203.0.113.5"),  # trusted proxy, client outside the list
        ({"REMOTE_ADDR": "203.0.113.5"}, "127.0.0.1"),  # an untrusted peer cannot claim an address
        ({"REMOTE_ADDR": "10.9.9.9"}, "not-an-address"),  # garbled header fails closed
    ]
    for environ, forwarded in cases:
        r = client.post("/api/v1/envelopes", data=envelopes.valid(), environ_base=environ,
                        headers={**bearer(env.tokens["a1-rel"]), "X-Forwarded-For": forwarded})
        assert (r.status_code, r.get_json()["reason"]) == (403, "IP_NOT_ALLOWED"), (environ, forwarded)
    # The proxy's own address is not an agency's address either.
    r = _post(client, env, envelopes.valid(), environ_base=proxy)
    assert r.get_json()["reason"] == "IP_NOT_ALLOWED"
    assert len(env.outbound_files()) == 1


def test_concurrent_replay_accepts_exactly_one(env, app_for, envelopes):
    apps = [app_for(), app_for()]  # two apps over one database, like two gunicorn workers
    body = envelopes.valid()
    results: list[int] = []
    barrier = threading.Barrier(4)

    def upload(app):
        client = app.test_client()
        barrier.wait()
        results.append(_post(client, env, body).status_code)

    threads = [threading.Thread(target=upload, args=(apps[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [202, 409, 409, 409]
    assert len(env.outbound_files()) == 1


def test_disk_guard_refuses_and_harms_nothing_accepted(env, app_for, envelopes):
    first = app_for().test_client()
    tid = _post(first, env, envelopes.valid()).get_json()["tracking_id"]
    full = app_for(min_free_fraction=1.0).test_client()
    r = _post(full, env, envelopes.valid())
    assert (r.status_code, r.get_json()["reason"], r.headers["Retry-After"]) == (503, "DISK_FULL", "300")
    assert env.outbound_files() == [f"{tid}.p7m"]
    assert [u.state for u in _uploads(env)] == ["accepted", "refused"]
    assert list(env.upload_tmp.iterdir()) == []


def test_heartbeat_counts_the_outbound_spool(env, app, envelopes):
    client = app.test_client()
    for _ in range(2):
        assert _post(client, env, envelopes.valid()).status_code == 202
    beat = app.extensions["tgw_outer"].beat()
    assert beat["daemon"] == "outer-web" and beat["zone"] == "outer"
    assert beat["state"]["outbound_depth"] == 2


def test_api_answers_carry_security_headers(env, client):
    r = client.post("/api/v1/envelopes", data=b"")
    for header in ("Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options",
                   "Referrer-Policy"):
        assert header in r.headers
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_list_api_validates_its_arguments(env, client):
    headers = bearer(env.tokens["a1-rel"])
    assert client.get("/api/v1/envelopes?state=lost", headers=headers).status_code == 400
    assert client.get("/api/v1/envelopes?since=2025-01-01T00:00:00", headers=headers).status_code == 400
    assert client.get("/api/v1/envelopes?since=2025-01-01T00:00:00%2B08:00", headers=headers).status_code == 200
