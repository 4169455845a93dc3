"""The API through a real `tgw outer serve` (gunicorn master and gthread workers) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from outer_zone.models import Upload
from tgw_common.db import transaction
from tgw_common.events import DaemonStatusRow, EventRow

from .conftest import Server, bearer, free_port, make_env, wait_until


def _call(base: str, method: str, path: str, body=None, headers=None, *, chunked: bool = False,
          context: ssl.SSLContext | None = None) -> tuple[int, dict, bytes]:
    host, port = base.split("://")[1].split(":")
    if base.startswith("https"):
        conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def _upload(server: Server, body, *, user: str = "a1-rel", chunked: bool = False):
    status, headers, raw = _call(server.base, "POST", "/api/v1/envelopes", body,
                                 bearer(server.env.tokens[user]), chunked=chunked)
    return status, headers, json.loads(raw)


def test_upload_through_gunicorn(served, envelopes):
    body = envelopes.valid()
    status, headers, answer = _upload(served, body)
    assert status == 202, answer
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    name = f"{answer['tracking_id']}.p7m"
    assert name in served.env.outbound_files()
    assert (served.env.outbound / name).read_bytes() == body
    events = [e["event"] for e in served.env.events(tracking_id=answer["tracking_id"])]
    assert events == ["received", "spooled"]


def test_chunked_body_is_streamed_with_its_limit(served, envelopes):
    body = envelopes.valid()
    status, _, answer = _upload(served, iter([body[:1000], body[1000:]]), chunked=True)
    assert status == 202, answer
    big = [b"\x30" * 16384] * 8  # 128 KiB, no Content-Length: the limit is found while streaming
    status, _, answer = _upload(served, iter(big), chunked=True)
    assert (status, answer["reason"]) == (413, "UPLOAD_TOO_LARGE")
    assert not [p for p in served.env.upload_tmp.iterdir() if p.suffix == ".part"]


def test_refusals_through_gunicorn(served, envelopes, kit):
    status, headers, raw = _call(served.base, "POST", "/api/v1/envelopes", envelopes.valid(),
                                 {"Content-Type": "application/pkcs7-mime"})
    assert (status, json.loads(raw)["reason"]) == (401, "UNAUTHENTICATED")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, answer = _upload(served, envelopes.signed_by(*kit.extra("revoked-releaser")))
    assert (status, answer["reason"], answer["layer"]) == (422, "CERT_REVOKED", "release")


def test_same_envelope_from_many_clients_is_taken_once(served, envelopes):
    body = envelopes.valid()
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def client():
        barrier.wait()
        statuses.append(_upload(served, body)[0])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [202] + [409] * 5
    digest = hashlib.sha256(body).hexdigest()
    with transaction(served.env.engine()) as s:
        accepted = s.scalars(select(Upload.tracking_id).where(Upload.sha256 == digest, Upload.state == "accepted"))
        assert len(list(accepted)) == 1


def test_workers_send_heartbeats(served, envelopes):
    assert _upload(served, envelopes.valid())[0] == 202

    def beat():
        with transaction(served.env.engine()) as s:
            return s.get(DaemonStatusRow, "outer-web")

    row = wait_until(beat, 30, "an outer-web heartbeat")
    assert row.zone == "outer" and row.host == "outer-test"
    # outbound_depth is the number of files waiting in the outbound spool (no sender runs here).
    depth = len(served.env.outbound_files())
    assert depth > 0
    later = wait_until(lambda: (b := beat()) and b.at > row.at and b.state["outbound_depth"] == depth and b, 30,
                       f"a heartbeat reporting outbound_depth {depth}")
    assert later.session == row.session  # one session for all workers: no false restarts


def test_startup_finishes_an_interrupted_publication(tmp_path, outer_template, demo_pki, envelopes):
    """A crash between the commit and the rename leaves the file in upload_tmp: the next start spools it."""
    from outer_zone.web import create_app

    env = make_env(tmp_path / "outer", outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}")
    app = create_app(env.config())
    tid = app.test_client().post("/api/v1/envelopes", data=envelopes.valid(),
                                 headers=bearer(env.tokens["a1-rel"])).get_json()["tracking_id"]
    app.extensions["tgw_outer"].close()
    # Put things back the way a kill -9 right after the commit leaves them.
    name = f"{tid}.p7m"
    (env.outbound / name).rename(env.upload_tmp / name)
    with transaction(env.engine()) as s:
        s.execute(update(Upload).where(Upload.tracking_id == tid).values(spooled_at=None))
        s.execute(EventRow.__table__.delete().where(EventRow.tracking_id == tid, EventRow.event == "spooled"))
    # And the leftovers of two uploads that died earlier: one mid-stream, one before its commit.
    (env.upload_tmp / "0123456789abcdef01234567.part").write_bytes(b"half an upload")
    (env.upload_tmp / "20250101T000000000000Z-A10001-abcdef.p7m").write_bytes(b"never committed")
    server = Server(env, tmp_path / "server.log")
    try:
        server.wait_ready()
        assert env.outbound_files() == [name]
        assert list(env.upload_tmp.iterdir()) == []
        spooled = env.events(tracking_id=tid, event="spooled")
        assert len(spooled) == 1 and spooled[0]["detail"] == {"file": name, "recovered": True}
    finally:
        server.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.pem", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_gunicorn_terminates_tls(tmp_path, outer_template, demo_pki, envelopes):
    cert_path, key_path = _self_signed(tmp_path)
    tls = {"tls_certificate": str(cert_path), "tls_" + "private_key": str(key_path)}
    env = make_env(tmp_path / "outer", outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}",
                   cookie_secure=True, **tls)
    context = ssl.create_default_context(cafile=str(cert_path))
    server = Server(env, tmp_path / "server.log", scheme="https")
    try:
        server.wait_ready(ssl_context=context)
        status, headers, raw = _call(server.base, "POST", "/api/v1/envelopes", envelopes.valid(),
                                     bearer(env.tokens["a1-rel"]), context=context)
        assert status == 202, raw
        assert "max-age=31536000" in headers["Strict-Transport-Security"]
        status, headers, _ = _call(server.base, "GET", "/login", context=context)
        assert headers["Set-Cookie"].startswith("__Host-tgw-outer=") and "Secure" in headers["Set-Cookie"]
    finally:
        server.stop()


def test_kill_9_loses_and_duplicates_nothing(tmp_path, outer_template, demo_pki, envelopes):
    """Workers and then the whole server are killed -9 while clients upload; after a restart every
    202 has its file in the spool with one "spooled" event, and nothing else was accepted."""
    import os
    import signal

    import psutil

    env = make_env(tmp_path / "outer", outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}", workers=2,
                   threads=4)
    server = Server(env, tmp_path / "server.log")
    bodies = [envelopes.valid() for _ in range(36)]
    accepted: dict[str, str] = {}
    lock = threading.Lock()
    try:
        server.wait_ready()

        def client(chunk):
            for body in chunk:
                try:
                    status, _, raw = _call(server.base, "POST", "/api/v1/envelopes", body,
                                           bearer(env.tokens["a1-rel"]))
                except OSError:
                    continue  # the connection died with its worker: no answer, no promise
                if status == 202:
                    answer = json.loads(raw)
                    with lock:
                        accepted[answer["tracking_id"]] = answer["sha256"]

        threads = [threading.Thread(target=client, args=(bodies[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(accepted) >= 4, 60, "some uploads")
        for worker in psutil.Process(server.proc.pid).children():
            os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: len(accepted) >= 12, 60, "uploads after the worker kill")
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    restarted = Server(env, tmp_path / "server2.log")
    try:
        restarted.wait_ready()
        files = set(env.outbound_files())
        for tid, sha in accepted.items():
            assert f"{tid}.p7m" in files, tid
            assert hashlib.sha256((env.outbound / f"{tid}.p7m").read_bytes()).hexdigest() == sha
        with transaction(env.engine()) as s:
            rows = s.execute(select(Upload.tracking_id, Upload.spooled_at).where(Upload.state == "accepted")).all()
            spooled = s.scalars(select(EventRow.tracking_id).where(EventRow.event == "spooled")).all()
        assert {f"{tid}.p7m" for tid, _ in rows} == files  # every file is an accepted upload and vice versa
        assert all(at is not None for _, at in rows)
        assert sorted(spooled) == sorted(tid for tid, _ in rows)  # exactly one "spooled" each
        assert not [p for p in env.upload_tmp.iterdir() if p.suffix == ".p7m"]
    finally:
        restarted.stop()
