"""What the agency sees once receipts come back: loaded, refused, held or overdue with the
reason and layer, paid and failed counts, each document's result, and the receipt itself
to download and verify; another agency sees none of it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import timedelta

from outer_zone.receipt_intake import ReceiptIntake
from tgw_common.db import utcnow
from tgw_common.events import Provenance
from tgw_common.pki.certs import load_certificate_file, load_crl, load_private_key_file
from tgw_common.pki.trust import TrustStore
from tgw_common.receipts import Payment, Receipt, issue_receipt

from .conftest import bearer


def _upload(client, env, body: bytes) -> str:
    r = client.post("/api/v1/envelopes", data=body, headers=bearer(env.tokens["a1-rel"]))
    assert r.status_code == 202, r.get_json()
    return r.get_json()["tracking_id"]


def _deliver(env, receipt: Receipt, name: str) -> str:
    pki = env.pki
    der = issue_receipt(receipt, load_certificate_file(pki / "treasury" / "receipt.pem"),
                        load_private_key_file(pki / "treasury" / "receipt.key"), [load_certificate_file(pki / "gca.pem")])
    crls = [load_crl((pki / "crl" / n).read_bytes()) for n in ("gca.crl", "root.crl")]
    intake = ReceiptIntake(env.engine(), load_certificate_file(pki / "treasury" / "receipt.pem"),
                           TrustStore([load_certificate_file(pki / "root.pem")], [load_certificate_file(pki / "gca.pem")],
                                      crls), env.folder / "dropped")
    path = env.folder / name
    path.write_bytes(der)
    return intake.take_safely(path)


def _look(client, env, tid: str, user: str = "a1-rel", tail: str = ""):
    return client.get(f"/api/v1/envelopes/{tid}{tail}", headers=bearer(env.tokens[user]))


def _base(tid: str, body: bytes, **kw) -> Receipt:
    return Receipt(tracking_id=tid, envelope_sha256=hashlib.sha256(body).hexdigest(), agency="A10001",
                   issued_at=kw.pop("issued_at"), **kw)


def test_loaded_then_paid_with_each_document_and_the_receipt(env, client, envelopes, tmp_path):
    body = envelopes.valid()
    tid = _upload(client, env, body)
    Provenance(env.engine(), zone="outer", host="x").record("sent", "transfer-send", tracking_id=tid, copy=1)
    assert _look(client, env, tid).get_json()["state"] == "sent"
    assert _look(client, env, tid, tail="/receipt").status_code == 404
    assert _deliver(env, _base(tid, body, state="held", reason="CRL_STALE", message="stale CRL",
                               issued_at="2026-12-07T10:00:00Z"), "1.p7s") == "stored"
    assert _look(client, env, tid).get_json()["state"] == "held"
    assert _deliver(env, _base(tid, body, state="loaded", documents=2, control_total=300,
                               document_ids=("D-0001", "D-0002"), issued_at="2026-12-07T10:05:00Z"), "2.p7s") == "stored"
    assert _deliver(env, _base(tid, body, state="payments", issued_at="2026-12-08T01:00:00Z", payments=(
        Payment("D-0001", "paid", "2026-12-08", "BR1"),)), "3.p7s") == "stored"
    view = _look(client, env, tid).get_json()
    assert (view["state"], view["paid"], view["failed"], view["receipts"], view["reason"]) == ("loaded", 1, 0, 3, None)
    docs = _look(client, env, tid, tail="/documents").get_json()["documents"]
    assert [(d["document_id"], d["result"]) for d in docs] == [("D-0001", "paid"), ("D-0002", "pending")]
    listed = client.get("/api/v1/envelopes?state=loaded", headers=bearer(env.tokens["a1-rel"])).get_json()
    assert [u["tracking_id"] for u in listed["uploads"]] == [tid]
    answer = _look(client, env, tid, tail="/receipt")
    assert answer.status_code == 200 and answer.mimetype == "application/pkcs7-mime"
    path = tmp_path / "receipt.p7s"
    path.write_bytes(answer.data)
    done = subprocess.run([shutil.which("openssl"), "cms", "-verify", "-inform", "DER", "-in", str(path), "-CAfile",
                           str(env.pki / "root.pem"), "-purpose", "any"], capture_output=True, check=False)
    assert done.returncode == 0 and b'"state":"payments"' in done.stdout
    for tail in ("", "/documents", "/receipt"):
        assert _look(client, env, tid, user="a2-rel", tail=tail).status_code == 404


def test_refused_inside_shows_the_reason_and_layer(env, client, envelopes):
    body = envelopes.valid()
    tid = _upload(client, env, body)
    _deliver(env, _base(tid, body, state="refused", reason="CERT_REVOKED", layer="release",
                        message="the releaser's certificate was revoked", issued_at="2026-12-07T10:00:00Z"), "r.p7s")
    view = _look(client, env, tid).get_json()
    assert (view["state"], view["reason"], view["layer"]) == ("refused", "CERT_REVOKED", "release")


def test_sent_without_a_receipt_for_too_long_is_overdue(env, client, envelopes):
    tid = _upload(client, env, envelopes.valid())
    Provenance(env.engine(), zone="outer", host="x").record("sent", "transfer-send", tracking_id=tid, copy=1,
                                                            at=utcnow() - timedelta(minutes=31))
    assert _look(client, env, tid).get_json()["state"] == "overdue"
    listed = client.get("/api/v1/envelopes?state=overdue", headers=bearer(env.tokens["a1-rel"])).get_json()
    assert [u["tracking_id"] for u in listed["uploads"]] == [tid]


def test_the_portal_shows_the_fate_each_result_and_the_receipt(env, app, envelopes):
    from .conftest import web_login

    api = app.test_client()
    body = envelopes.valid()
    tid = _upload(api, env, body)
    _deliver(env, _base(tid, body, state="loaded", documents=2, control_total=300, document_ids=("D-0001", "D-0002"),
                        issued_at="2026-12-07T10:05:00Z"), "l.p7s")
    _deliver(env, _base(tid, body, state="payments", issued_at="2026-12-08T01:00:00Z", payments=(
        Payment("D-0002", "failed", "2026-12-08", failure_reason="帳號已結清 account closed"),)), "p.p7s")
    page = app.test_client()
    web_login(page, "a1-rel")
    listing = page.get("/status").get_data(as_text=True)
    assert f'href="/status/{tid}"' in listing and "已入庫" in listing and "已付款 0、失敗 1" in listing
    html = page.get(f"/status/{tid}").get_data(as_text=True)
    assert 'data-state="loaded"' in html and 'data-document="D-0001" data-result="pending"' in html
    assert 'data-document="D-0002" data-result="failed"' in html and "帳號已結清 account closed" in html
    download = page.get(f"/status/{tid}/receipt")
    assert download.status_code == 200 and download.mimetype == "application/pkcs7-mime"
    page.get("/lang/en")
    assert "Payment results" in page.get(f"/status/{tid}").get_data(as_text=True)
    other = app.test_client()
    web_login(other, "a2-rel")
    assert other.get(f"/status/{tid}").status_code == 404
    assert other.get(f"/status/{tid}/receipt").status_code == 404


def test_the_monitor_alerts_on_each_overdue_upload_until_its_receipt_comes(env, client, envelopes):
    from monitoring.checks import run_checks
    from monitoring.checks.base import CheckEnv
    from monitoring.snapshot import DaemonSeen, Snapshot
    from outer_zone.receipt_runner import OuterReceiptRunner
    from tgw_common.config import MonitorConfig, load_config

    body = envelopes.valid()
    late, fresh = _upload(client, env, body), _upload(client, env, envelopes.valid())
    events = Provenance(env.engine(), zone="outer", host="x")
    events.record("sent", "transfer-send", tracking_id=late, copy=1, at=utcnow() - timedelta(minutes=45))
    events.record("sent", "transfer-send", tracking_id=fresh, copy=1)
    text = env.config_path.read_text() + (
        f"receipts:\n  certificate: {env.pki / 'treasury' / 'receipt.pem'}\n  inbound: {env.folder / 'rin'}\n"
        f"  dropped_dir: {env.folder / 'rdrop'}\n")
    env.config_path.write_text(text)
    runner = OuterReceiptRunner(load_config(env.config_path))

    def alerts():
        now = utcnow()
        snap = Snapshot(zone="outer", host="outer1", monitor_started_at=now)
        snap.daemons["outer-receipts"] = DaemonSeen("outer-receipts", "outer", "outer1", "s1", now, now, runner.health())
        found, evaluated = run_checks(snap, CheckEnv(MonitorConfig(), "outer", "outer1"), now)
        assert "receipt_overdue" in evaluated
        return [a for a in found if a.check == "receipt_overdue"]

    [alert] = alerts()
    assert (alert.severity, alert.subject, alert.facts["overdue"]) == ("warning", late, 1)
    assert late in alert.summary_zh and "30 minutes" in alert.summary_en
    _deliver(env, _base(late, body, state="loaded", documents=1, control_total=1, document_ids=("D-1",),
                        issued_at="2026-12-07T10:05:00Z"), "late.p7s")
    assert alerts() == []
    runner.shutdown()
