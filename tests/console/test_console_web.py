"""The console through Flask's test client over a zone filled by the real inner pipeline:
sign-in, roles, CSRF, session expiry, search and detail, quarantine, registry, CRLs,
agencies, reports, the dashboard. The same pages in a real browser: test_console_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from tgw_common.db import dispose_engines, transaction, utcnow

from .conftest import A1, A2, PASSWORD, USERS, copy_zone, csrf_of, login, make_console_zone, signed_in, token_of


@pytest.fixture
def mzone(tmp_path, zone_template):
    """A zone of its own, for tests that change things."""
    yield copy_zone(zone_template, tmp_path / "m")
    dispose_engines()


@pytest.fixture
def mapp(mzone):
    from inner_zone.console.app import create_app

    application = create_app(mzone.load_config())
    application.config["TESTING"] = True
    yield application
    application.extensions["tgw_console"].close()


# ------------------------------------------------------------------ signing in, roles, CSRF, sessions
def test_login_wrong_passwords_delay_the_account_and_are_audited(mapp, mzone):
    client = mapp.test_client()
    for _ in range(4):
        r = login(client, "vera", "wrong-password-1")
        assert r.status_code == 401
        assert "帳號或密碼錯誤" in r.get_data(as_text=True)
    r = login(client, "vera", "wrong-password-1")  # the fifth starts a delay, answered as any miss
    assert r.status_code == 401 and 'data-reason="UNAUTHENTICATED"' in r.get_data(as_text=True)
    r = login(client, "vera")  # the right password waits out the delay, and the answer does not say so
    assert r.status_code == 401 and "ACCOUNT_LOCKED" not in r.get_data(as_text=True)
    assert len(mzone.audit(action="login_throttled")) == 1
    failed = mzone.audit(action="login_failed")
    assert len(failed) == 6 and {a["actor"] for a in failed} == {"vera"}
    assert failed[-1]["detail"]["cause"] == "locked" and failed[0]["ip"] == "127.0.0.1"
    # An unknown user is told exactly the same as a wrong password.
    r = login(client, "nobody")
    assert r.status_code == 401 and "帳號或密碼錯誤" in r.get_data(as_text=True)
    assert mzone.tgw("console-user", "unlock", "--username", "vera").returncode == 0
    assert login(client, "vera").status_code == 302
    assert mzone.audit(action="login")[-1]["actor"] == "vera"


def test_pages_need_a_session(mapp):
    client = mapp.test_client()
    for path in ("/dashboard", "/envelopes", "/quarantine", "/registry", "/trust", "/agencies", "/reports", "/audit",
                 "/reports/export.csv"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
    r = client.post("/quarantine/retry", data={"ids": "X"})
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_viewer_cannot_change_anything(mapp, mzone):
    client = signed_in(mapp, "vera")
    token = token_of(client)
    qid = mzone.refused[0]["quarantine_id"]
    fp = "0" * 64
    posts = [("/quarantine/retry", {"ids": qid}), ("/quarantine/reject", {"ids": qid, "note": "no"}),
             ("/registry/signers", {"agency": A2, "role": "accountant"}), (f"/registry/signers/{fp}/revoke",
                                                                          {"note": "x"}),
             ("/registry/certreqs", {}), ("/registry/certreqs/1.certreq.json/approve", {}),
             ("/trust/crl", {}), ("/agencies", {"code": A1, "mode": "parallel-test"})]
    for path, data in posts:
        r = client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403, path
        assert "您的角色不能" in r.get_data(as_text=True)
    assert client.get("/audit").status_code == 403
    assert client.get("/users").status_code == 403
    page = client.get("/quarantine").get_data(as_text=True)
    assert "bulk-retry" not in page and "retry-button" not in page
    forbidden = mzone.audit(action="forbidden", actor="vera")
    assert len(forbidden) == len(posts) + 2 and all(a["outcome"] == "refused" for a in forbidden)
    # Nothing changed: the entry is still open, the agency still has no row.
    assert json.loads(mzone.tgw("quarantine", "show", qid, "--json").stdout)["status"] == "open"
    assert json.loads(mzone.tgw("agency", "list", "--json").stdout)["agencies"] == []


def test_operator_cannot_do_administrator_work(mapp):
    client = signed_in(mapp, "otto")
    token = token_of(client)
    assert client.post("/agencies", data={"code": A1, "mode": "live", "csrf_token": token}).status_code == 403
    assert client.post(f"/registry/signers/{'a' * 64}/revoke", data={"note": "x", "csrf_token": token}).status_code \
        == 403
    assert client.get("/audit").status_code == 403


def test_forms_without_the_csrf_token_are_refused(mapp, mzone):
    client = signed_in(mapp, "otto")
    qid = mzone.refused[0]["quarantine_id"]
    r = client.post("/quarantine/retry", data={"ids": qid})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    r = client.post("/quarantine/retry", data={"ids": qid, "csrf_token": "forged"})
    assert r.status_code == 400
    assert json.loads(mzone.tgw("quarantine", "show", qid, "--json").stdout)["status"] == "open"
    refused = mzone.audit(action="csrf_refused")
    assert len(refused) == 2 and refused[0]["actor"] == "otto" and refused[0]["target"] == "/quarantine/retry"
    # The login form needs its token too.
    assert mapp.test_client().post("/login", data={"username": "otto", "password": PASSWORD}).status_code == 400


def test_idle_session_expires_and_refreshes_do_not_keep_it_alive(mapp, mzone):
    from inner_zone.console.models import ConsoleSession

    client = signed_in(mapp, "otto")
    assert client.get("/dashboard").status_code == 200
    with transaction(mzone.engine()) as s:
        s.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=20)))
    # An automatic refresh is served but does not count as activity...
    assert client.get("/dashboard", headers={"X-Console-Refresh": "1"}).status_code == 200
    with transaction(mzone.engine()) as s:
        seen = s.scalars(select(ConsoleSession.last_seen_at)).one()
    assert utcnow() - seen > timedelta(minutes=19)
    # ...so the session times out after session_timeout_minutes (30) of no real use.
    with transaction(mzone.engine()) as s:
        s.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    r = client.get("/envelopes")
    assert r.status_code == 302 and "/login" in r.headers["Location"] and "expired=1" in r.headers["Location"]
    assert client.get("/dashboard").status_code == 302  # and it stays ended
    expired = mzone.audit(action="session_expired")
    assert expired and expired[-1]["actor"] == "otto" and expired[-1]["detail"]["cause"] == "idle"


def test_security_headers_and_no_inline_script_or_style(app, czone):
    client = signed_in(app, "ada")
    sha = czone.loaded[0]["sha256"]
    for path in ("/login", "/dashboard", "/envelopes?q=A10001", f"/envelopes/{sha}", "/quarantine", "/registry",
                 "/trust", "/agencies", "/reports", "/audit", "/users"):
        r = client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
        html = r.get_data(as_text=True)
        # Only the page's texts for the script may sit in the page, as a JSON data block (never run).
        code = re.sub(r'<script type="application/json" id="tgw-texts">[^<]*</script>', "", html)
        assert not re.search(r"<script(?![^>]*\ssrc=)", code), f"inline script on {path}"
        assert " style=" not in html and "<style" not in html, f"inline style on {path}"
        assert not re.search(r"(src|href)=\"https?://", html), f"an outside asset on {path}"
    assert "SameSite=Strict" in login(app.test_client(), "ada").headers["Set-Cookie"]


# ------------------------------------------------------------------ envelopes
def test_search_by_every_name_and_state(app, czone):
    client = signed_in(app, "vera")
    first = czone.loaded[0]
    refused = czone.refused[0]

    def shas(**query) -> set[str]:
        page = client.get("/envelopes", query_string=query).get_data(as_text=True)
        return set(re.findall(r'data-sha256="([0-9a-f]{64})"', page))

    loaded = {e["sha256"] for e in czone.loaded}
    assert shas(agency=A1) == loaded
    assert shas(agency=A2) == {refused["sha256"]}  # refused before its payload was opened: agency from its releaser
    assert shas(envelope_id=first["envelope_id"]) == {first["sha256"]}
    assert shas(tracking_id=refused["tracking_id"]) == {refused["sha256"]}
    assert shas(state="open") == {refused["sha256"]}
    assert shas(state="loaded") == loaded
    today = datetime.now(ZoneInfo("Asia/Taipei")).date()
    assert shas(**{"from": str(today), "until": str(today)}) == loaded | {refused["sha256"]}
    assert shas(**{"from": str(today + timedelta(days=1))}) == set()
    from sqlalchemy import select

    from inner_zone.models import Document, Envelope

    with transaction(czone.engine()) as s:
        voucher = s.scalars(select(Document.voucher_no).join(Envelope, Envelope.id == Document.envelope_pk)
                            .where(Envelope.sha256 == first["sha256"], Document.voucher_no.is_not(None))).first()
    assert shas(voucher_no=voucher) == {first["sha256"]}
    # One match for a quick lookup opens the envelope directly.
    r = client.get("/envelopes", query_string={"q": first["envelope_id"]})
    assert r.status_code == 302 and r.headers["Location"].endswith(first["sha256"])
    r = client.get(f"/envelopes/lookup/{refused['tracking_id']}")
    assert r.headers["Location"].endswith(refused["sha256"])
    assert client.get("/envelopes/lookup/NO-SUCH-THING").status_code == 404


def test_loaded_envelope_detail(app, czone):
    client = signed_in(app, "vera")
    first = czone.loaded[0]
    page = client.get(f"/envelopes/{first['sha256']}").get_data(as_text=True)
    events = re.findall(r'<tr data-event="([a-z]+)"', page)
    assert events == ["claimed", "decrypted", "verified", "unpacked", "validated", "loaded", "archived"]
    assert re.findall(r'data-layer="([a-z]+)"', page) == ["release", "seal", "approval", "payload"]
    assert "aes256_cbc" in page and "sha256 / rsassa_pkcs1v15" in page
    assert page.count('<tr data-fingerprint="') == 3  # releaser, accountant, head
    assert page.count(">有效</span>") >= 3 and ">已註冊</span>" in page
    assert first["envelope_id"] in page and "正式（放行付款）" in page
    assert page.count('class="document"') == 2 and "位受款人" in page
    client.get("/lang/en")
    page = client.get(f"/envelopes/{first['sha256']}").get_data(as_text=True)
    assert page.count(">valid</span>") >= 3 and ">registered</span>" in page
    assert "live (released for payment)" in page and " payees</summary>" in page and "有效" not in page


def test_quarantined_envelope_detail_says_why_and_where_to_fix(app, czone):
    client = signed_in(app, "otto")
    refused = czone.refused[0]
    page = client.get(f"/envelopes/{refused['sha256']}").get_data(as_text=True)
    assert 'id="why-stopped"' in page and "SIGNER_NOT_REGISTERED" in page and "簽章憑證未註冊" in page
    assert "到憑證註冊修正" in page and 'id="retry-button"' in page
    assert re.findall(r'<tr data-event="([a-z]+)"', page) == ["claimed", "decrypted", "refused", "quarantined"]
    assert re.findall(r'data-layer="([a-z]+)"', page)[:2] == ["release", "seal"]
    assert "A10002" in page  # the releaser's agency, read from the release layer
    client.get("/lang/en")
    page = client.get(f"/envelopes/{refused['sha256']}").get_data(as_text=True)
    assert "Fix in the registry" in page and "簽章憑證未註冊" not in page and "SIGNER_NOT_REGISTERED" in page


def test_the_envelope_page_lists_its_receipts(mapp, mzone):
    from inner_zone.models import IssuedReceipt
    from tgw_common.db import utcnow

    client = signed_in(mapp, "vera")
    refused = mzone.refused[0]
    page = client.get(f"/envelopes/{refused['sha256']}").get_data(as_text=True)
    assert 'id="receipts"' in page and "尚無收據" in page
    now = utcnow()
    with transaction(mzone.engine()) as s:
        s.add(IssuedReceipt(event_id=10**9, tracking_id=refused["tracking_id"], sha256=refused["sha256"], agency=A2,
                            state="refused", der=b"0", issued_at=now, published_at=now, mailed_at=now,
                            mailed_to="pay@a2.example.tw"))
    page = client.get(f"/envelopes/{refused['sha256']}").get_data(as_text=True)
    assert 'data-receipt-state="refused"' in page and "pay@a2.example.tw" in page and "尚無收據" not in page


# ------------------------------------------------------------------ fixing and retrying
def test_register_the_certificate_then_retry_and_it_loads(mapp, mzone):
    from tests.inner_zone.ikit import cli

    client = signed_in(mapp, "otto")
    refused = mzone.refused[0]
    qid = refused["quarantine_id"]
    cert = (mzone.pki / "agencies" / A2 / "accountant.pem").read_bytes()
    token = token_of(client, "/registry")
    r = client.post("/registry/signers", data={"csrf_token": token, "agency": A2, "role": "accountant",
                                               "certificate": (io.BytesIO(cert), "accountant.pem")},
                    content_type="multipart/form-data", follow_redirects=True)
    assert "已註冊：" in r.get_data(as_text=True)
    r = client.post("/quarantine/retry", data={"csrf_token": token, "ids": qid, "note": "accountant registered"},
                    follow_redirects=True)
    assert "已放回佇列重新處理" in r.get_data(as_text=True)
    back = mzone.zone.inbound / refused["name"]
    assert back.exists()
    code, out = cli("inner", "process", str(back), "--config", str(mzone.config), "--json")
    assert code == 0 and json.loads(out)["status"] == "loaded"
    page = client.get(f"/envelopes/{refused['sha256']}").get_data(as_text=True)
    assert 'data-state="loaded"' in page and 'id="why-stopped"' not in page
    events = re.findall(r'<tr data-event="([a-z]+)"', page)
    assert events[-3:] == ["validated", "loaded", "archived"] and "retried" in events
    registered = mzone.audit(action="signer_registered")[-1]
    retried = mzone.audit(action="quarantine_retried")[-1]
    assert (registered["actor"], registered["outcome"], registered["detail"]["agency"]) == ("otto", "ok", A2)
    assert (retried["target"], retried["detail"]["note"], retried["ip"]) == (qid, "accountant registered", "127.0.0.1")


def test_reject_needs_a_note_and_is_recorded(mapp, mzone):
    client = signed_in(mapp, "otto")
    qid = mzone.refused[0]["quarantine_id"]
    token = token_of(client, "/quarantine")
    r = client.post("/quarantine/reject", data={"csrf_token": token, "ids": qid, "note": " "}, follow_redirects=True)
    assert "結案須填寫原因" in r.get_data(as_text=True)
    r = client.post("/quarantine/reject", data={"csrf_token": token, "ids": [qid, "NO-SUCH"], "note": "agency resends"},
                    follow_redirects=True)
    html = r.get_data(as_text=True)
    assert f"已結案：{qid}" in html and "無法結案：" in html and "no such quarantine" in html
    entry = json.loads(mzone.tgw("quarantine", "show", qid, "--json").stdout)
    assert entry["status"] == "rejected" and entry["actions"][-1]["by"] == "console:otto"
    outcomes = {(a["target"], a["outcome"]) for a in mzone.audit(action="quarantine_rejected")}
    assert outcomes == {(qid, "ok"), ("NO-SUCH", "failed")}


def test_registration_request_file_is_checked_and_approved(mapp, mzone):
    from cryptography.hazmat.primitives import serialization

    from tgw_common.pki.certs import fingerprint, load_certificate_file

    cert = load_certificate_file(mzone.pki / "agencies" / A2 / "accountant.pem")
    doc = {"format": "tgw-certreq/1", "id": 12, "agency": A2, "role": "accountant", "delegate": False,
           "window_from": None, "window_until": None, "fingerprint_sha256": fingerprint(cert),
           "subject": cert.subject.rfc4514_string(), "common_name": "acc", "issuer": cert.issuer.rfc4514_string(),
           "not_after": cert.not_valid_after_utc.isoformat(), "requested_by": "a2-admin",
           "requested_at": "2026-01-01T00:00:00+00:00", "approved_by": "ntb", "approved_at": "2026-01-02T00:00:00+00:00",
           "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode()}
    folder = mzone.root / "certreq"
    (folder / "12.certreq.json").write_text(json.dumps(doc))
    (folder / "13.certreq.json").write_text(json.dumps({**doc, "id": 13, "fingerprint_sha256": "ab" * 32}))
    client = signed_in(mapp, "otto")
    page = client.get("/registry").get_data(as_text=True)
    assert 'data-request="12.certreq.json"' in page and "指紋與憑證不符" in page
    token = csrf_of(page)
    r = client.post("/registry/certreqs/13.certreq.json/approve", data={"csrf_token": token}, follow_redirects=True)
    assert "未核准：" in r.get_data(as_text=True)
    r = client.post("/registry/certreqs/12.certreq.json/approve", data={"csrf_token": token}, follow_redirects=True)
    assert "已核准並註冊：" in r.get_data(as_text=True)
    assert not (folder / "12.certreq.json").exists() and len(list((folder / "done").iterdir())) == 1
    from tgw_common.registry import SignerRegistry

    entry = SignerRegistry(mzone.engine()).get(fingerprint(cert))
    assert (entry.agency, entry.role) == (A2, "accountant")
    # An upload lands in the same folder, checked first.
    bad = client.post("/registry/certreqs", data={"csrf_token": token, "request_file": (io.BytesIO(b"{}"), "x.json")},
                      content_type="multipart/form-data", follow_redirects=True)
    assert "格式不符，應為 tgw-certreq/1" in bad.get_data(as_text=True)
    actions = [(a["action"], a["outcome"]) for a in mzone.audit() if a["action"].startswith("certreq")]
    assert actions == [("certreq_approved", "refused"), ("certreq_approved", "ok"), ("certreq_uploaded", "refused")]


def test_crl_upload_is_validated_and_installed_atomically(tmp_path, pki, kit):
    from cryptography.hazmat.primitives import serialization

    from inner_zone.console.app import create_app
    from tgw.demo.pki import Issuer, _key, make_crl
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file

    cz = make_console_zone(tmp_path / "t", pki, kit, loaded=0, refused=0)
    app = create_app(cz.load_config())
    gca = Issuer(load_certificate_file(pki / "gca.pem"), load_private_key_file(pki / "gca.key"))
    impostor = Issuer(gca.cert, _key(2048))
    now = datetime.now(UTC)

    def crl(issuer, this_update, next_update, number=99) -> bytes:
        return make_crl(issuer, [], this_update=this_update, next_update=next_update,
                        number=number).public_bytes(serialization.Encoding.DER)

    client = signed_in(app, "otto")
    token = token_of(client, "/trust")

    def upload(data: bytes) -> str:
        return client.post("/trust/crl", data={"csrf_token": token, "crl": (io.BytesIO(data), "new.crl")},
                           content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)

    before = (pki / "crl" / "gca.crl").read_bytes()
    assert "不是 PEM 或 DER 格式的 CRL" in upload(b"garbage")
    assert "簽章驗證失敗" in upload(crl(impostor, now, now + timedelta(days=7)))
    assert "此 CRL 已逾期" in upload(crl(gca, now - timedelta(days=9), now - timedelta(days=2)))
    client.get("/lang/en")
    assert "older than the installed CRL" in upload(crl(gca, now - timedelta(days=3), now + timedelta(days=7)))
    assert (pki / "crl" / "gca.crl").read_bytes() == before
    fresh = crl(gca, now, now + timedelta(days=30))
    assert "CRL installed" in upload(fresh)
    assert (pki / "crl" / "gca.crl").read_bytes() == fresh  # the issuer's own file, replaced
    assert not [p for p in (pki / "crl").iterdir() if p.name.startswith(".")]
    page = client.get("/trust").get_data(as_text=True)
    assert page.count(">fresh</span>") == 2
    outcomes = [a["outcome"] for a in cz.audit(action="crl_installed")]
    assert outcomes == ["refused"] * 4 + ["ok"]
    app.extensions["tgw_console"].close()
    dispose_engines()


# ------------------------------------------------------------------ agencies
def test_administrator_sets_mode_limit_and_contact(mapp, mzone):
    client = signed_in(mapp, "ada")
    token = token_of(client, "/agencies")
    page = client.get("/agencies").get_data(as_text=True)
    assert 'data-agency="A10001"' in page and 'data-agency="A10002"' in page  # known from registry and loads
    r = client.post("/agencies", data={"csrf_token": token, "code": A2, "mode": "parallel-test",
                                       "epayment_limit": "5,000,000", "contact": "ops@a2.gov.tw"},
                    follow_redirects=True)
    assert f"{A2}：已更新" in r.get_data(as_text=True)
    row = json.loads(mzone.tgw("agency", "list", "--json").stdout)["agencies"][0]
    assert (row["code"], row["mode"], row["epayment_limit"], row["contact"]) == (A2, "parallel-test", 5_000_000,
                                                                                 "ops@a2.gov.tw")
    r = client.post("/agencies", data={"csrf_token": token, "code": A2, "mode": "live", "epayment_limit": "",
                                       "contact": "not-an-address"}, follow_redirects=True)
    assert "not an e-mail address" in r.get_data(as_text=True)
    changes = mzone.audit(action="agency_updated")
    assert changes[0]["detail"]["changes"]["mode"] == {"from": None, "to": "parallel-test"}
    assert changes[-1]["outcome"] == "refused"


# ------------------------------------------------------------------ dashboard and reports
def _receiver_records(cz) -> None:
    """What the transfer receiver writes into the inner database, through the same APIs it uses:
    an arrived event per file, its transfer_received rows, one gap, and the sender's heartbeat."""
    from tgw_common.db import create_tables
    from tgw_common.events import Provenance
    from transfer.models import ReceivedFile, TransferGap

    engine = cz.engine()
    create_tables(engine)
    prov = Provenance(engine, zone="inner", host="inner-test")
    now = utcnow()
    with transaction(engine) as s:
        for seq, e in enumerate([*cz.loaded, *cz.refused], start=1):
            s.add(ReceivedFile(seq=seq, session="s1", name=e["name"], size=1, sha256=e["sha256"], status="published",
                               path=None, at=now))
            prov.record("arrived", "transfer-receive", sha256=e["sha256"], tracking_id=e["tracking_id"], session=s,
                        seq=seq, sender_session="s1", file=e["name"])
        gap_seq = len(cz.loaded) + len(cz.refused) + 1
        s.add(TransferGap(seq=gap_seq, name="TPELOST.p7m", size=10, sha256="f" * 64, source="ledger",
                          sender_session="s1", opened_at=now))
        prov.record("gap", "transfer-receive", tracking_id="TPELOST", session=s, seq=gap_seq, source="ledger")
    prov.heartbeat("outer.transfer-send", session_id="s1", started_at=now - timedelta(hours=1), queue_depth=4,
                   outbound_depth=2, disk_free=50 * 2**30, last_seq=gap_seq + 1, interval=2.0, seen_by="transfer-receive")
    prov.heartbeat("transfer-receive", session_id="r1", started_at=now, files_in_progress=0, open_gaps=1,
                   sender_silent=False)


def test_dashboard_shows_every_hop_queues_gaps_alerts_and_charts(mapp, mzone):
    from monitoring.store import AlertRow
    from tgw_common.db import create_tables

    _receiver_records(mzone)
    engine = mzone.engine()
    create_tables(engine)
    now = utcnow()
    with transaction(engine) as s:
        s.add(AlertRow(fingerprint="f1", zone="inner", hop="transfer-receive", check="transfer_gap", host="h",
                       subject="gaps", group_key="g", state="firing", severity="critical", summary_zh="傳輸缺漏",
                       summary_en="files missing on the link", facts={}, since=now, active_since=now,
                       firing_since=now, muted=False))
    client = signed_in(mapp, "vera")
    page = client.get("/dashboard").get_data(as_text=True)
    for daemon in ("outer.transfer-send", "transfer-receive", "inner-console"):
        assert f'data-daemon="{daemon}"' in page
    assert re.search(r'data-daemon="outer.transfer-send" class="status-up"', page)
    assert re.search(r'data-daemon="inner-runner" class="status-missing"', page)  # no runner in this test
    assert 'data-seq="4"' in page and "TPELOST.p7m" in page
    assert 'data-check="transfer_gap"' in page and "傳輸缺漏" in page
    assert page.count('<svg id="chart-') == 3 and 'class="bar loaded"' in page
    assert "50.0 GiB" in page  # the sender's free disk, from its heartbeat
    assert 'data-refresh="5"' in page
    data = client.get("/dashboard.json").get_json()
    assert {d["daemon"] for d in data["daemons"]} >= {"outer.transfer-send", "transfer-receive", "inner-console"}


def test_reports_totals_csv_pdf_and_reconciliation(mapp, mzone):
    _receiver_records(mzone)
    client = signed_in(mapp, "vera")
    page = client.get("/reports").get_data(as_text=True)
    assert 'data-agency="A10001"' in page
    section = page.split('id="reconciliation"')[1].split("</tbody>")[0]
    days = re.findall(r'<tr data-day="[^"]+"><td>[^<]+</td><td class="num">([\d-]+)</td><td class="num">(\d+)</td>'
                      r'<td class="num">(\d+)</td>', section)
    assert days[-1] == ("5", "3", "2")  # today: sent (3 arrived, 1 lost, 1 in flight), arrived, loaded
    kinds = set(re.findall(r'data-kind="([a-z-]+)"', page.split('id="differences"')[1]))
    assert kinds == {"sent-not-arrived", "arrived-not-loaded"}
    r = client.get("/reports/export.csv")
    assert r.headers["Content-Disposition"].startswith("attachment") and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "日期" and {row[1] for row in rows[1:]} == {A1}
    assert sum(int(row[5]) for row in rows[1:]) == 4  # the two loaded envelopes' two documents each
    r = client.get("/reports/export.pdf")
    assert r.data.startswith(b"%PDF") and r.mimetype == "application/pdf"
    rec = client.get("/reports/export.reconciliation.csv").get_data(as_text=True)
    assert "sent-not-arrived" in rec and "TPELOST" in rec
    exported = [a["detail"]["format"] for a in mzone.audit(action="report_exported")]
    assert exported == ["csv", "pdf", "reconciliation.csv"]
    assert client.get("/reports?from=2020-01-01&until=2026-12-31").status_code == 200  # too long: told, not failed
    client.get("/lang/en")
    header = next(csv.reader(io.StringIO(client.get("/reports/export.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert header[:3] == ["Day", "Agency", "Document kind"]


# ------------------------------------------------------------------ accounts from the CLI
def test_console_user_commands(mzone):
    r = mzone.tgw("console-user", "add", "--username", "newbie", "--role", "operator", "--password-stdin",
                  input="Another-pass-77\n")
    assert r.returncode == 0, r.stderr
    r = mzone.tgw("console-user", "add", "--username", "newbie", "--role", "operator", "--password-stdin",
                  input="Another-pass-77\n")
    assert r.returncode == 2 and "taken" in r.stderr
    r = mzone.tgw("console-user", "add", "--username", "weak", "--role", "viewer", "--password-stdin", input="short\n")
    assert r.returncode == 2 and "at least 12" in r.stderr
    assert mzone.tgw("console-user", "add", "--username", "x", "--role", "boss").returncode == 2
    r = mzone.tgw("console-user", "add", "--username", "gen", "--role", "viewer")
    assert r.returncode == 0 and "initial password" in r.stdout
    users = {u["username"]: u for u in json.loads(mzone.tgw("console-user", "list", "--json").stdout)}
    assert set(users) == {*USERS, "newbie", "gen"} and users["gen"]["must_change_password"]
    assert mzone.tgw("console-user", "disable", "--username", "newbie").returncode == 0
    assert mzone.tgw("console-user", "disable", "--username", "ghost").returncode == 1
    actions = [(a["action"], a["target"]) for a in mzone.audit() if a["action"].startswith("user_")]
    assert actions[-3:] == [("user_added", "newbie"), ("user_added", "gen"), ("user_disabled", "newbie")]
    assert all(a["actor"].startswith("cli:") for a in mzone.audit() if a["action"] in ("user_added",)
               and a["target"] in ("newbie", "gen"))


def test_disabled_user_is_signed_out_at_once(mapp, mzone):
    client = signed_in(mapp, "otto")
    assert client.get("/dashboard").status_code == 200
    assert mzone.tgw("console-user", "disable", "--username", "otto").returncode == 0
    assert client.get("/dashboard").status_code == 302
    assert login(mapp.test_client(), "otto").status_code == 401


def test_first_sign_in_with_a_generated_password_must_change_it(mapp, mzone):
    out = mzone.tgw("console-user", "add", "--username", "fresh", "--role", "viewer").stdout
    initial = out.rsplit(": ", 1)[1].strip()
    client = mapp.test_client()
    r = login(client, "fresh", initial)
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/password")
    assert client.get("/dashboard").headers["Location"].endswith("/account/password")
    token = token_of(client, "/account/password")
    r = client.post("/account/password", data={"csrf_token": token, "current": initial, "new": "Chosen-pass-2026",
                                               "confirm": "Chosen-pass-2026"})
    assert r.status_code == 302 and client.get("/dashboard").status_code == 200
    assert mzone.audit(action="password_changed")[-1]["actor"] == "fresh"


@pytest.mark.parametrize("target", ["/\t/evil.com", "/\n/evil.com", "//evil.com", "https://evil.com/x"])
def test_no_redirect_of_the_console_leaves_the_site(mapp, target):
    client = mapp.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post(f"/login?next={target}", data={"username": "otto", "password": PASSWORD, "csrf_token": token,
                                                    "next": target})
    assert r.status_code == 302 and "evil.com" not in r.headers["Location"]
    r = client.post("/quarantine/retry", data={"ids": "X", "back": target, "csrf_token": token_of(client)})
    assert r.status_code == 302 and "evil.com" not in r.headers["Location"]
