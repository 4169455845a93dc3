"""The PKCS #11 key: signs on the token exactly as the key file does, refuses everything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tgw_common.pki.pkcs11key import Card, CardError, PinRefused, UnsupportedMechanism
from tgw_common.tpe import add_signature, sign_new

from .conftest import SOFTHSM, pin_of

A = "A10001"
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def card(role: str) -> Card:
    return Card(module=SOFTHSM, token_label=f"{A}-{role}", key_label=role)


def test_token_signature_is_the_key_file_signature(cards, kit):
    payload = kit.payload(A)
    with card("accountant").session(pin_of(cards, f"{A}-accountant")) as key:
        on_card = sign_new(payload, key.certificate, key, signing_time=WHEN)
    assert on_card == sign_new(payload, *kit.pair(A, "accountant"), signing_time=WHEN)
    with card("head").session(pin_of(cards, f"{A}-head")) as key:
        both = add_signature(on_card, key.certificate, key, signing_time=WHEN)
    assert both == add_signature(on_card, *kit.pair(A, "head"), signing_time=WHEN)


def test_demo_card_keys_cannot_leave_the_token(cards):
    from pkcs11 import Attribute, ObjectClass
    from pkcs11 import exceptions as p11

    from tgw_common.pki.pkcs11key import library

    token = library(SOFTHSM).get_token(token_label=f"{A}-releaser")
    with token.open(user_pin=pin_of(cards, f"{A}-releaser")) as session:
        (key,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        with pytest.raises(p11.AttributeSensitive):
            key[Attribute.PRIVATE_EXPONENT]


def test_only_sha256_rsa_pkcs1(cards):
    with card("head").session(pin_of(cards, f"{A}-head")) as key:
        with pytest.raises(UnsupportedMechanism, match="CKM_SHA256_RSA_PKCS"):
            key.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        with pytest.raises(UnsupportedMechanism):
            key.sign(b"x", padding.PKCS1v15(), hashes.SHA384())
        with pytest.raises(UnsupportedMechanism):
            sign_new(b"x", key.certificate, key, pss=True)


def test_wrong_pin_names_the_token_and_does_not_lock_it(cards):
    from pkcs11 import TokenFlag

    from tgw_common.pki.pkcs11key import library

    for _ in range(3):
        with pytest.raises(PinRefused, match=r"'A10001-head'.*CKR_PIN_INCORRECT"), card("head").session("99999999"):
            pass
    with card("head").session(pin_of(cards, f"{A}-head")) as key:
        assert key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    flags = library(SOFTHSM).get_token(token_label=f"{A}-head").flags
    assert not flags & TokenFlag.USER_PIN_LOCKED


def test_unknown_token_and_key_are_clear_errors(cards):
    nowhere = Card(module=SOFTHSM, token_label="nope")
    with pytest.raises(CardError, match="no token labelled 'nope'"), nowhere.session("1"):
        pass
    no_key = Card(module=SOFTHSM, token_label=f"{A}-head", key_label="other")
    with pytest.raises(CardError, match="0 private keys match"), no_key.session(pin_of(cards, f"{A}-head")):
        pass


def test_rfc7512_uri():
    c = Card.from_uri(f"pkcs11:token={A}-head;object=head;id=%01%02?module-path={SOFTHSM}")
    assert (c.module, c.token_label, c.key_label, c.key_id) == (SOFTHSM, f"{A}-head", "head", b"\x01\x02")
    assert Card.from_uri("pkcs11:token=T%20X", module="/m.so").token_label == "T X"
    with pytest.raises(CardError, match="PIN"):
        Card.from_uri("pkcs11:token=T?pin-value=1234", module="/m.so")
    with pytest.raises(CardError, match="module"):
        Card.from_uri("pkcs11:token=T")
    with pytest.raises(CardError, match="token"):
        Card.from_uri("pkcs11:object=x", module="/m.so")
