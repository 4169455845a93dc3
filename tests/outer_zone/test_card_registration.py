"""憑證 IC 卡註冊 / 更換註冊 on /certificates: who may ask for which role, the certificate given as
the PEM read from the card, the note of which registered certificate a request replaces; and in
Debian chromium, the page reading the certificate from a live `tgw agency signer` (gunicorn, a
SoftHSM2 token) and the request appearing as pending."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from outer_zone.models import AuditEntry, CertRequest, User
from tgw_common.db import transaction
from tgw_common.pki.certs import fingerprint, load_certificate
from tgw_common.registry import SignerRegistry

from .conftest import A1, PASSWORD, csrf_of, web_login
from .test_web import _new_cert

ROLES = ("accountant", "head", "releaser")


def _csrf(client) -> str:
    return csrf_of(client.get("/certificates").get_data(as_text=True))


def _ask(client, role: str, pem: bytes | None = None, *, file: bytes | None = None, **form):
    data = {"csrf_token": _csrf(client), "role": role, **form}
    if pem is not None:
        data["certificate_pem"] = pem.decode()
    if file is not None:
        data["certificate"] = (io.BytesIO(file), "c.pem")
    return client.post("/certificates", data=data, content_type="multipart/form-data")


def _requests(env) -> list[CertRequest]:
    with transaction(env.engine()) as s:
        return list(s.scalars(select(CertRequest).order_by(CertRequest.id)))


def _audit(env, action: str) -> list[AuditEntry]:
    with transaction(env.engine()) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _live(env, role: str) -> list[str]:
    return [s.fingerprint for s in SignerRegistry(env.engine()).list(agency=A1, role=role, include_revoked=False)
            if not s.delegate]


def _tgw(env, *args: str) -> str:
    from click.testing import CliRunner

    from tgw.cli import main

    result = CliRunner().invoke(main, ["outer", *args, "--config", str(env.config_path)])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _signed_in(client, username: str):
    assert web_login(client, username).status_code == 302
    return client


def test_an_officer_registers_their_own_role_only(env, client, demo_pki):
    officer = _signed_in(client, "a1-acc")
    page = officer.get("/certificates")
    html = page.get_data(as_text=True)
    assert 'id="card-part"' in html and "從晶片卡讀取" in html and "Read from my IC card" not in html and "cardreg.js" in html
    assert "讀取中" in html  # the script's texts, in the page's language (#tgw-texts)
    officer.get("/lang/en")
    english = officer.get("/certificates").get_data(as_text=True)
    assert "Read from my IC card" in english and "從晶片卡讀取" not in english and "reading…" in english
    officer.get("/lang/zh-TW")
    assert '<option value="accountant"' in html and '<option value="releaser"' not in html
    # The page may reach the officer's own signing service on 127.0.0.1, and nothing else off the portal.
    assert "connect-src 'self' http://127.0.0.1:*;" in page.headers["Content-Security-Policy"]

    pem = _new_cert(demo_pki, "卡片主辦會計 card accountant")
    r = _ask(officer, "accountant", pem)
    assert r.status_code == 302, r.get_data(as_text=True)
    (row,) = _requests(env)
    assert (row.role, row.requested_by, row.status, row.replaces) == ("accountant", "a1-acc", "pending", None)
    assert row.fingerprint == fingerprint(load_certificate(pem))
    (submitted,) = _audit(env, "cert_request_submitted")
    assert submitted.detail["via"] == "card" and submitted.actor == "a1-acc"

    for role in ("releaser", "head"):
        r = _ask(officer, role, _new_cert(demo_pki, f"not mine {role}"))
        assert r.status_code == 403 and "自己的角色" in r.get_data(as_text=True), role
    assert len(_requests(env)) == 1
    assert [e.detail.get("role") for e in _audit(env, "forbidden")] == ["releaser", "head"]

    # A preparer holds no signing role: no form, and a post is refused.
    preparer = _signed_in(client.application.test_client(), "a1-prep")
    assert 'id="cert-form"' not in preparer.get("/certificates").get_data(as_text=True)
    assert _ask(preparer, "accountant", _new_cert(demo_pki, "prep")).status_code == 403

    # The administrator, for any role, from the card as well.
    admin = _signed_in(client.application.test_client(), "a1-admin")
    html = admin.get("/certificates").get_data(as_text=True)
    assert all(f'<option value="{role}"' in html for role in ROLES)
    assert _ask(admin, "head", _new_cert(demo_pki, "admin head")).status_code == 302
    assert [r.requested_by for r in _requests(env)] == ["a1-acc", "a1-admin"]


def test_a_role_delegated_right_now_counts_as_the_officers_own(env, client, demo_pki):
    from outer_zone.accounts import add_delegation

    now = datetime.now(UTC)
    with transaction(env.engine()) as s:
        ids = {u.username: u.id for u in s.scalars(select(User).where(User.agency == A1))}
        add_delegation(s, agency=A1, principal_id=ids["a1-rel"], delegate_id=ids["a1-prep"], role="releaser",
                       starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by="a1-admin")
    deputy = _signed_in(client, "a1-prep")
    assert '<option value="releaser"' in deputy.get("/certificates").get_data(as_text=True)
    assert _ask(deputy, "releaser", _new_cert(demo_pki, "deputy releaser")).status_code == 302
    assert _ask(deputy, "accountant", _new_cert(demo_pki, "deputy accountant")).status_code == 403
    assert [(r.role, r.requested_by) for r in _requests(env)] == [("releaser", "a1-prep")]


def _demo_fingerprint(demo_pki, role: str) -> str:
    from tgw_common.pki.certs import load_certificate_file

    return fingerprint(load_certificate_file(demo_pki / "agencies" / A1 / f"{role}.pem"))


def test_a_replacing_request_notes_the_registered_certificate_it_replaces(env, client, demo_pki):
    # The head has one live registration: replacing it needs no choice.
    admin = _signed_in(client, "a1-admin")
    (old_head,) = _live(env, "head")
    assert _ask(admin, "head", _new_cert(demo_pki, "換卡機關長官 renewed head"), kind="replace").status_code == 302
    (head_request,) = _requests(env)
    assert head_request.replaces == old_head
    html = admin.get("/certificates").get_data(as_text=True)
    assert f'data-request-id="{head_request.id}" data-status="pending" data-replaces="{old_head}"' in html
    assert f"{old_head[:16]}…" in html

    # The accountant has two (the demo card's and an expired one): the officer says which.
    officer = _signed_in(client.application.test_client(), "a1-acc")
    old_accountant = _demo_fingerprint(demo_pki, "accountant")
    assert len(_live(env, "accountant")) == 2 and old_accountant in _live(env, "accountant")
    pem = _new_cert(demo_pki, "換卡主辦會計 renewed accountant")
    r = _ask(officer, "accountant", pem, kind="replace")
    assert r.status_code == 400 and "請選擇要更換哪一張" in r.get_data(as_text=True)
    r = _ask(officer, "accountant", pem, kind="replace", replaces=old_head)
    assert r.status_code == 400 and "不是此角色已註冊的憑證" in r.get_data(as_text=True)
    assert _ask(officer, "accountant", pem, kind="replace", replaces=old_accountant.upper()).status_code == 302
    # A new registration notes nothing, whatever the (script-less) form's other choice says.
    assert _ask(officer, "accountant", _new_cert(demo_pki, "second accountant"), kind="new",
                replaces=old_accountant).status_code == 302
    requests_ = _requests(env)
    assert [r.replaces for r in requests_] == [old_head, old_accountant, None]
    (submitted, *_) = [e for e in _audit(env, "cert_request_submitted") if e.actor == "a1-acc"]
    assert submitted.detail["replaces"] == old_accountant

    # The request then goes on as any other: approved with the CLI, carried in the export file.
    _tgw(env, "registration", "approve", str(requests_[1].id))
    document = json.loads((env.folder / "certreq" / f"{requests_[1].id}.certreq.json").read_text(encoding="utf-8"))
    assert document["replaces_fingerprint_sha256"] == old_accountant
    assert document["fingerprint_sha256"] == fingerprint(load_certificate(pem))
    listed = json.loads(_tgw(env, "registration", "list", "--status", "all", "--json"))
    assert [r["replaces"] for r in listed] == [old_head, old_accountant, None]


def test_the_card_or_a_file_not_both(env, client, demo_pki):
    officer = _signed_in(client, "a1-acc")
    pem = _new_cert(demo_pki, "two sources")
    r = _ask(officer, "accountant", pem, file=pem)
    assert r.status_code == 400 and "晶片卡或憑證檔" in r.get_data(as_text=True)
    r = _ask(officer, "accountant", b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    assert r.status_code == 400 and "不是 PEM 或 DER" in r.get_data(as_text=True)
    assert _ask(officer, "accountant", file=pem).status_code == 302
    (submitted,) = _audit(env, "cert_request_submitted")
    assert submitted.detail["via"] == "file"



def test_the_certificate_form_is_small(env, client):
    """The registration form has a limit of its own (192 KiB): a larger body is refused before it is parsed."""
    officer = _signed_in(client, "a1-acc")
    r = _ask(officer, "accountant", file=b"x" * (200 * 1024))
    assert r.status_code == 413
    assert _requests(env) == []

# --- in the browser, against a live signer
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def renewed_card(tmp_path, demo_pki, monkeypatch):
    """A1's officers on SoftHSM2 tokens, the accountant's card holding a renewed certificate
    (not registered yet: the registry has the demo one); (the new certificate's PEM, folder)."""
    if not Path(SOFTHSM).is_file() or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI"):
            pytest.fail("softhsm2 is not installed (apt-get install softhsm2)")
        pytest.skip("needs softhsm2 (apt-get install softhsm2)")
    from cryptography.hazmat.primitives import serialization

    from tgw.demo.pki import Issuer, _key, _name, _usage, _write_pair, issue
    from tgw.demo.softhsm import put_officers_on_tokens
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file
    from tgw_common.pki.pkcs11key import reload_library

    pki = tmp_path / "renewed-pki"
    officers = pki / "agencies" / A1
    shutil.copytree(demo_pki / "agencies" / A1, officers)
    gca = Issuer(load_certificate_file(demo_pki / "gca.pem"), load_private_key_file(demo_pki / "gca.key"))
    now = datetime.now(UTC)
    key = _key(2048)
    cert = issue(_name("換卡主辦會計 renewed accountant", "Demo Government", A1), key, gca,
                 not_before=now - timedelta(days=1), not_after=now + timedelta(days=700), usage=_usage(sign=True))
    _write_pair(officers, "accountant", cert, key)
    summary = put_officers_on_tokens(pki, tmp_path / "cards", [A1])
    monkeypatch.setenv("SOFTHSM2_CONF", summary["softhsm2_conf"])
    reload_library(SOFTHSM)
    return cert.public_bytes(serialization.Encoding.PEM), tmp_path


@pytest.fixture
def live_signer(renewed_card, served):
    """`tgw agency signer` for A1's accountant card, answering the served portal's origin only."""
    from tests.agency_signer.conftest import SignerService, signer_config
    from tests.kit import free_port, stop_process, wait_until

    _, folder = renewed_card
    port = free_port()
    config = signer_config(folder / "signer", port, f"{A1}-accountant", portal_origin=served.base)
    log = folder / "signer.log"
    process = subprocess.Popen([sys.executable, "-m", "tgw", "agency", "signer", "--config", str(config)], cwd=ROOT,
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115
    service = SignerService(port, process)

    def answering():
        assert process.poll() is None, log.read_text()
        try:
            return service.call("GET", "/v1/requests/none", origin=served.base).status == 404
        except OSError:
            return False

    try:
        wait_until(answering, 30, "the accountant's signer")
        yield service
    finally:
        stop_process(process)


@pytest.fixture
def browser_page():
    pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(locale="zh-TW", viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(20_000)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.problems = problems
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.browser
def test_the_page_reads_the_card_and_the_request_waits_for_the_treasury(browser_page, live_signer, served,
                                                                       renewed_card, artifacts):
    page, (pem, _) = browser_page, renewed_card
    card_cert = load_certificate(pem)
    old_accountant = _demo_fingerprint(served.env.pki, "accountant")
    (head,) = [s.fingerprint for s in SignerRegistry(served.env.engine()).list(agency=A1, role="head")]
    page.goto(served.base + "/login")
    page.fill("#agency", A1)
    page.fill("#username", "a1-acc")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/status")
    page.goto(served.base + "/certificates")
    assert page.input_value("#signer-url") == "http://127.0.0.1:61200"  # nothing kept yet
    page.fill("#signer-url", live_signer.origin + "/")
    page.dispatch_event("#signer-url", "change")
    assert page.evaluate("() => localStorage.getItem('tgw.signerUrl')") == live_signer.origin

    page.click("#card-read")
    page.wait_for_selector("#card-part[data-state=read]")
    assert page.inner_text("#card-fingerprint") == fingerprint(card_cert)
    assert page.inner_text("#card-subject") == card_cert.subject.rfc4514_string()
    assert page.inner_text("#card-issuer") == card_cert.issuer.rfc4514_string()
    taipei = card_cert.not_valid_after_utc + timedelta(hours=8)
    assert page.inner_text("#card-not-after") == taipei.strftime("%Y-%m-%d %H:%M:%S")
    assert f"{A1}-accountant" in page.inner_text("#card-status")
    assert page.is_disabled("#replaces")
    page.select_option("#kind", "replace")
    # Only the accountant's registrations are offered as the one replaced.
    assert page.get_attribute(f'#replaces option[value="{head}"]', "hidden") is not None
    assert page.get_attribute(f'#replaces option[value="{old_accountant}"]', "hidden") is None
    page.select_option("#replaces", old_accountant)
    page.screenshot(path=str(artifacts / "outer-card-registration.png"), full_page=True)
    page.click("#cert-submit")
    page.wait_for_url("**/certificates")
    assert "待國庫署審核" in page.inner_text(".flash.ok")
    row = page.locator("#requests tbody tr").last
    assert row.get_attribute("data-status") == "pending"
    assert row.get_attribute("data-replaces") == old_accountant
    assert "換卡主辦會計" in row.inner_text()

    # The page keeps the signer's address for next time.
    page.reload()
    assert page.input_value("#signer-url") == live_signer.origin
    with transaction(served.env.engine()) as s:
        request = s.scalars(select(CertRequest).where(CertRequest.fingerprint == fingerprint(card_cert))).one()
        assert (request.status, request.requested_by, request.replaces) == ("pending", "a1-acc", old_accountant)
        assert load_certificate(request.certificate) == card_cert
    assert not [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p], page.problems
