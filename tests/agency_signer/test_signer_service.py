"""`tgw agency signer`: origin checks, the officer's confirmation, PINs, and what it signs."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from .conftest import PORTAL, ROOT, pin_of, signer_config

A = "A10001"


def test_a_card_signed_envelope_opens_like_a_key_file_one(start_signer, cards, kit, opener, config_path, tmp_path):
    accountant, head, releaser = (start_signer(f"{A}-{role}") for role in ("accountant", "head", "releaser"))
    payload = kit.payload(A)
    approval = accountant.sign("accountant", "payload", payload, pin_of(cards, f"{A}-accountant"))
    approval = head.sign("head", "approval", approval, pin_of(cards, f"{A}-head"))
    sealed = kit.seal(approval)
    envelope = releaser.sign("releaser", "sealed", sealed, pin_of(cards, f"{A}-releaser"))

    opened = opener.open(envelope)
    by_file = opener.open(kit.envelope(A, payload=payload))
    assert sorted(s.role for s in opened.approvals) == ["accountant", "head"]
    assert sorted(s.fingerprint for s in opened.approvals) == sorted(s.fingerprint for s in by_file.approvals)
    assert opened.releaser.fingerprint == by_file.releaser.fingerprint
    assert opened.envelope_id == by_file.envelope_id and len(opened.documents) == len(by_file.documents)

    path = tmp_path / "card.p7m"
    path.write_bytes(envelope)
    done = subprocess.run([sys.executable, "-m", "tgw", "envelope", "open", str(path), "--config", str(config_path),
                           "--json"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_openssl_cms_verify_accepts_the_card_signatures(start_signer, cards, kit, demo_pki, tmp_path):
    accountant, releaser = start_signer(f"{A}-accountant"), start_signer(f"{A}-releaser")
    payload = kit.payload(A)
    approval = accountant.sign("accountant", "payload", payload, pin_of(cards, f"{A}-accountant"))
    sealed = kit.seal(kit.approve(payload))
    envelope = releaser.sign("releaser", "sealed", sealed, pin_of(cards, f"{A}-releaser"))
    chain = tmp_path / "chain.pem"  # the trust anchor and the GCA: the signers carry only their own certificate
    chain.write_bytes((demo_pki / "root.pem").read_bytes() + (demo_pki / "gca.pem").read_bytes())
    for name, signed, content in (("approval", approval, payload), ("release", envelope, sealed)):
        (tmp_path / f"{name}.der").write_bytes(signed)
        done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{name}.der",
                               "-CAfile", str(chain), "-out", f"{name}.out"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "Verification successful" in done.stderr
        assert (tmp_path / f"{name}.out").read_bytes() == content


def test_another_origin_is_refused_and_the_portal_preflight_answered(start_signer, kit):
    service = start_signer(f"{A}-accountant")
    for origin in ("https://evil.example", "null", None, PORTAL + ":444", "http://portal.example.gov.tw"):
        refused = service.ask("accountant", "payload", kit.payload(A), origin=origin) if origin else \
            service.call("POST", "/v1/sign", origin=None, body=b"{}")
        assert refused.status == 403, origin
        assert refused.json()["error"] == "ORIGIN_REFUSED"
        assert service.call("GET", "/v1/requests/x", origin=origin).status == 403
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
                 "Access-Control-Request-Private-Network": "true"}
    evil = service.call("OPTIONS", "/v1/sign", origin="https://evil.example", headers=preflight)
    assert evil.status == 403 and "access-control-allow-private-network" not in evil.headers
    ok = service.call("OPTIONS", "/v1/sign", origin=PORTAL, headers=preflight)
    assert ok.status == 204
    assert ok.headers["access-control-allow-origin"] == PORTAL
    assert ok.headers["access-control-allow-private-network"] == "true"
    assert "POST" in ok.headers["access-control-allow-methods"]
    asked = service.ask("accountant", "payload", kit.payload(A))
    assert asked.status == 202 and asked.headers["access-control-allow-origin"] == PORTAL
    # DNS rebinding: a hostile name pointed at 127.0.0.1 still sends its own Host.
    rebound = service.call("GET", "/v1/requests/x", headers={"Host": f"evil.example:{service.port}"})
    assert rebound.status == 403 and rebound.json()["error"] == "HOST_REFUSED"


def test_nothing_is_signed_without_the_officers_confirmation(start_signer, cards, kit):
    service = start_signer(f"{A}-accountant")
    pin = pin_of(cards, f"{A}-accountant")
    payload = kit.payload(A)
    asked = service.ask("accountant", "payload", payload).json()
    rid = asked["request_id"]
    assert asked["state"] == "pending" and "result" not in asked
    assert asked["confirm_url"] == f"{service.origin}/confirm/{rid}"
    # What the officer sees comes from the payload itself.
    summary = asked["summary"]
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("manifest.json"))
    assert summary["agency"] == A and summary["document_count"] == len(manifest["documents"])
    assert summary["total_amount"] == int(manifest["control"]["total_amount"])
    assert summary["sha256"] == hashlib.sha256(payload).hexdigest()
    page = service.page(rid).body.decode()
    assert A in page and summary["sha256"] in page and f"{summary['total_amount']:,}" in page
    assert service.page(rid).headers["x-frame-options"] == "DENY"

    # The portal (or any page) cannot confirm: wrong origin, no token, wrong token.
    assert service.confirm(rid, pin=pin, origin=PORTAL).status == 403
    assert service.confirm(rid, pin=pin, origin=None).status == 403
    assert service.confirm(rid, pin=pin, token="guessed").status == 403
    assert service.call("POST", f"/confirm/{rid}", origin=service.origin,
                        headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert service.status(rid)["state"] == "pending" and "result" not in service.status(rid)

    assert service.confirm(rid, action="decline").status == 200
    declined = service.status(rid)
    assert declined["state"] == "declined" and "result" not in declined
    assert service.confirm(rid, pin=pin, token="x").status == 200  # a closed request stays closed
    assert "result" not in service.status(rid)


def test_wrong_pin_is_reported_and_the_right_one_then_works(start_signer, cards, kit):
    service = start_signer(f"{A}-head")
    rid = service.ask("head", "payload", kit.payload(A)).json()["request_id"]
    wrong = service.confirm(rid, pin="00000000")
    assert wrong.status == 400
    assert "CKR_PIN_INCORRECT" in wrong.body.decode() and f"{A}-head" in wrong.body.decode()
    state = service.status(rid)
    assert state["state"] == "pending" and state["last_error"] == "PIN_INCORRECT"
    assert service.confirm(rid, pin=pin_of(cards, f"{A}-head")).status == 200
    assert service.status(rid)["state"] == "signed"


def test_a_held_pin_still_needs_the_confirmation(start_signer, cards, kit, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(pin_of(cards, f"{A}-releaser") + "\n")
    service = start_signer(f"{A}-releaser", "--pin-file", str(pin_file))
    rid = service.ask("releaser", "sealed", kit.seal(kit.approve(kit.payload(A)))).json()["request_id"]
    assert 'name="pin"' not in service.page(rid).body.decode()
    assert service.status(rid)["state"] == "pending"
    assert service.confirm(rid).status == 200
    assert service.status(rid)["state"] == "signed"


def test_a_request_must_be_what_its_role_signs(start_signer, kit):
    service = start_signer(f"{A}-accountant")
    assert service.ask("releaser", "payload", kit.payload(A)).status == 422
    assert service.ask("accountant", "sealed", kit.seal(kit.approve(kit.payload(A)))).status == 422
    assert service.ask("accountant", "payload", b"PK not a zip").json()["error"] == "NOT_SIGNABLE"
    assert service.ask("accountant", "approval", b"\x30\x03\x02\x01\x00").status == 422


def test_only_loopback_listen_is_accepted(cards, tmp_path):
    for listen in ("0.0.0.0:61200", "192.168.1.5:61200", "localhost:61200", "[::]:61200"):
        config = signer_config(tmp_path, 61200, f"{A}-head", listen=listen)
        done = subprocess.run([sys.executable, "-m", "tgw", "agency", "signer", "--config", str(config)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "127.0.0.1" in done.stderr, (listen, done.stderr)
    config = signer_config(tmp_path, 61200, f"{A}-head", portal_origin="*")
    done = subprocess.run([sys.executable, "-m", "tgw", "agency", "signer", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "portal_origin" in done.stderr
