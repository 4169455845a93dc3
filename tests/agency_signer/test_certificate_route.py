"""`GET /v1/certificate`: the card's certificate read from a real SoftHSM2 token without a PIN,
under the same Host and Origin checks as every other route of the signing service."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tgw_common.pki.certs import fingerprint, load_certificate_file
from tgw_common.pki.pkcs11key import Card, CardError

from .conftest import PORTAL, SOFTHSM, pin_of

A = "A10001"


def test_the_card_certificate_is_read_without_a_pin(start_signer, demo_pki):
    # No --pin-file: the service holds no PIN, and none is asked for this route.
    service = start_signer(f"{A}-head")
    answer = service.call("GET", "/v1/certificate")
    assert answer.status == 200, answer.body
    assert answer.headers["access-control-allow-origin"] == PORTAL
    body = answer.json()
    on_file = load_certificate_file(demo_pki / "agencies" / A / "head.pem")
    from_pem = x509.load_pem_x509_certificate(body["pem"].encode())
    from_der = x509.load_der_x509_certificate(base64.b64decode(body["der"]))
    assert from_pem == from_der == on_file
    assert body["sha256"] == fingerprint(on_file)
    assert body["subject"] == on_file.subject.rfc4514_string()
    assert body["issuer"] == on_file.issuer.rfc4514_string()
    assert int(body["serial"], 16) == on_file.serial_number
    assert body["not_after"] == on_file.not_valid_after_utc.isoformat()
    assert body["token"] == f"{A}-head"


def test_another_origin_is_refused_and_a_missing_card_is_reported(start_signer):
    service = start_signer(f"{A}-releaser")
    for origin in ("https://evil.example", None, service.origin):
        refused = service.call("GET", "/v1/certificate", origin=origin)
        assert refused.status == 403 and refused.json()["error"] == "ORIGIN_REFUSED", origin
        # A browser lets a page read an answer only when this names the page's own origin.
        assert refused.headers.get("access-control-allow-origin") in (None, PORTAL)
        assert b"BEGIN CERTIFICATE" not in refused.body
    rebound = service.call("GET", "/v1/certificate", headers={"Host": f"signer.evil.example:{service.port}"})
    assert rebound.status == 403 and rebound.json()["error"] == "HOST_REFUSED"

    absent = start_signer("A99999-accountant")
    answer = absent.call("GET", "/v1/certificate")
    assert answer.status == 503 and answer.json()["error"] == "CARD_ERROR"
    assert "A99999-accountant" in answer.json()["message"]


def test_the_key_label_or_id_picks_the_certificate_in_process(cards, demo_pki):
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

    from tgw_common.pki.certs import subject_key_id
    from tgw_common.pki.pkcs11key import library

    token = f"{A}-accountant"
    on_file = load_certificate_file(demo_pki / "agencies" / A / "accountant.pem")
    assert Card(SOFTHSM, token).certificate() == on_file
    assert Card(SOFTHSM, token, key_label="accountant").certificate() == on_file
    assert Card(SOFTHSM, token, key_id=subject_key_id(on_file)).certificate() == on_file
    with pytest.raises(CardError, match="0 end-entity certificates"):
        Card(SOFTHSM, token, key_label="no-such-key").certificate()

    # A card as vendors make them: the CA's certificate beside the officer's, and the key's
    # public half under another label than the certificate.
    gca = load_certificate_file(demo_pki / "gca.pem")
    with library(SOFTHSM).get_token(token_label=token).open(rw=True, user_pin=pin_of(cards, token)) as session:
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.LABEL: "GCA", Attribute.ID: b"ca",
            Attribute.SUBJECT: gca.subject.public_bytes(), Attribute.VALUE: gca.public_bytes(Encoding.DER)})
        public = on_file.public_key().public_numbers()
        session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True,
            Attribute.LABEL: "signing key", Attribute.ID: subject_key_id(on_file),
            Attribute.MODULUS: public.n.to_bytes(256, "big"), Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"})
    assert Card(SOFTHSM, token).certificate() == on_file
    assert Card(SOFTHSM, token, key_label="signing key").certificate() == on_file
