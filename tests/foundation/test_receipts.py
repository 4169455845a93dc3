"""TPR/1 receipts: issued with the receipt key, verified by openssl alone, and every forgery
the outer end can meet (another key, a changed byte, an off-schema document) rejected by name."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tgw_common.pki.certs import load_certificate_file, load_crl, load_private_key_file
from tgw_common.pki.trust import TrustStore
from tgw_common.receipts import Payment, Receipt, ReceiptRejected, issue_receipt, now_text, read_receipt
from tgw_common.tpe.signed import sign_new

SHA = "ab" * 32


def _loaded(**changes) -> Receipt:
    base = Receipt(tracking_id="20261207T101500000001Z-A10001-a1b2c3", envelope_sha256=SHA, agency="A10001",
                   state="loaded", issued_at=now_text(), documents=2, control_total=15000,
                   document_ids=("A10001-115-000001", "A10001-115-000002"))
    return replace(base, **changes)


@pytest.fixture(scope="module")
def keys(demo_pki):
    cert = load_certificate_file(demo_pki / "treasury" / "receipt.pem")
    key = load_private_key_file(demo_pki / "treasury" / "receipt.key")
    gca = load_certificate_file(demo_pki / "gca.pem")
    crls = [load_crl((demo_pki / "crl" / name).read_bytes()) for name in ("gca.crl", "root.crl")]
    trust = TrustStore([load_certificate_file(demo_pki / "root.pem")], [gca], crls)
    return cert, key, gca, trust


def test_a_receipt_round_trips_and_is_canonical(keys):
    cert, key, gca, trust = keys
    receipt = _loaded()
    der = issue_receipt(receipt, cert, key, [gca])
    assert read_receipt(der, signer=cert, trust=trust) == receipt
    assert receipt.to_json().startswith(b'{"agency":"A10001","control_total":15000,')
    assert b" " not in receipt.to_json()


def test_openssl_verifies_a_receipt_with_the_root_alone(keys, demo_pki, tmp_path):
    cert, key, gca, _trust = keys
    payments = (Payment("A10001-115-000001", "paid", "2026-12-08", "BR123"),
                Payment("A10001-115-000002", "failed", "2026-12-08", failure_reason="帳號不符 account closed"))
    receipt = _loaded(state="payments", documents=None, control_total=None, document_ids=(), payments=payments)
    path = tmp_path / "receipt.p7s"
    path.write_bytes(issue_receipt(receipt, cert, key, [gca]))
    done = subprocess.run([shutil.which("openssl"), "cms", "-verify", "-inform", "DER", "-in", str(path),
                           "-CAfile", str(demo_pki / "root.pem"), "-purpose", "any"],
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert Receipt.from_json(done.stdout) == receipt


def test_a_receipt_signed_by_another_key_is_rejected(keys, demo_pki):
    cert, _key, gca, trust = keys
    envelope_key = load_private_key_file(demo_pki / "treasury" / "envelope.key")
    releaser = load_certificate_file(demo_pki / "agencies" / "A10001" / "releaser.pem")
    releaser_key = load_private_key_file(demo_pki / "agencies" / "A10001" / "releaser.key")
    # Another trusted signer, carrying its own certificate.
    other = sign_new(_loaded().to_json(), releaser, releaser_key, extra_certs=[gca])
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(other, signer=cert, trust=trust)
    assert caught.value.why == "wrong_signer"
    # The receipt certificate claimed, but another key signed.
    forged = sign_new(_loaded().to_json(), cert, envelope_key)
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(forged, signer=cert, trust=trust)
    assert caught.value.why == "bad_signature"
    # A look-alike certificate (same names and serial, a key of its own) carried in the message.
    fake_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    twin = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
            .public_key(fake_key.public_key()).serial_number(cert.serial_number)
            .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc)
            .sign(fake_key, hashes.SHA256()))
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(sign_new(_loaded().to_json(), twin, fake_key), signer=cert, trust=trust)
    assert caught.value.why == "wrong_signer"


def test_every_changed_byte_of_the_content_is_caught(keys):
    cert, key, gca, trust = keys
    der = issue_receipt(_loaded(), cert, key, [gca])
    content = _loaded().to_json()
    at = der.index(content)
    for offset in range(0, len(content), 7):
        changed = bytearray(der)
        changed[at + offset] ^= 0x01
        with pytest.raises(ReceiptRejected) as caught:
            read_receipt(bytes(changed), signer=cert, trust=trust)
        assert caught.value.why == "bad_signature"


def test_the_document_must_follow_the_schema(keys):
    cert, key, gca, trust = keys
    for body, where in ((b'{"format":"TPR/1"}', "(top)"),
                        (_loaded().to_json().replace(b'"state":"loaded"', b'"state":"lost"'), "state"),
                        (_loaded().to_json()[:-1] + b',"extra":1}', "(top)"),
                        (Receipt(tracking_id="20261207T101500000001Z-A10001-a1b2c3", envelope_sha256=SHA,
                                 agency="A10001", state="refused", issued_at=now_text()).to_json(), "(top)")):
        with pytest.raises(ReceiptRejected) as caught:
            read_receipt(sign_new(body, cert, key, extra_certs=[gca]), signer=cert, trust=trust)
        assert caught.value.why == "bad_document" and caught.value.detail.startswith(where), caught.value.detail
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(sign_new(b"\xff not json", cert, key), signer=cert, trust=trust)
    assert caught.value.why == "not_json"
    with pytest.raises(ReceiptRejected):
        issue_receipt(_loaded(agency="a lower-case agency"), cert, key)


def test_a_revoked_or_untrusted_receipt_certificate_is_rejected(keys, pki):
    from tgw.demo.pki import issue_crls

    cert, key, gca, _trust = keys
    der = issue_receipt(_loaded(), cert, key, [gca])
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(der, signer=cert, trust=TrustStore([load_certificate_file(pki / "extra" / "untrusted-releaser.pem")],
                                                        [], []))
    assert caught.value.why == "untrusted_signer"
    issue_crls(pki, revoke=[pki / "treasury" / "receipt.pem"])
    crls = [load_crl((pki / "crl" / name).read_bytes()) for name in ("gca.crl", "root.crl")]
    revoked = TrustStore([load_certificate_file(pki / "root.pem")], [gca], crls)
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(der, signer=cert, trust=revoked)
    assert caught.value.why == "untrusted_signer" and "CERT_REVOKED" in caught.value.detail


def test_oversized_receipts_are_rejected_before_parsing(keys):
    cert, _key, _gca, trust = keys
    with pytest.raises(ReceiptRejected) as caught:
        read_receipt(b"\x30" * (4 * 1024 * 1024 + 1), signer=cert, trust=trust)
    assert caught.value.why == "too_large"


def test_demo_receipt_key_is_not_the_envelope_key(demo_pki: Path):
    receipt = load_certificate_file(demo_pki / "treasury" / "receipt.pem")
    envelope = load_certificate_file(demo_pki / "treasury" / "envelope.pem")
    assert receipt.public_key().public_numbers() != envelope.public_key().public_numbers()


def test_a_demo_pki_without_a_receipt_certificate_gets_one(pki):
    from tgw.demo.pki import ensure_receipt_certificate

    assert ensure_receipt_certificate(pki) is False
    (pki / "treasury" / "receipt.pem").unlink()
    (pki / "treasury" / "receipt.key").unlink()
    assert ensure_receipt_certificate(pki) is True
    cert = load_certificate_file(pki / "treasury" / "receipt.pem")
    key = load_private_key_file(pki / "treasury" / "receipt.key")
    gca = load_certificate_file(pki / "gca.pem")
    crls = [load_crl((pki / "crl" / n).read_bytes()) for n in ("gca.crl", "root.crl")]
    trust = TrustStore([load_certificate_file(pki / "root.pem")], [gca], crls)
    receipt = _loaded()
    assert read_receipt(issue_receipt(receipt, cert, key, [gca]), signer=cert, trust=trust) == receipt
