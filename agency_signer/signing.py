"""Signing a confirmed request on the card: exactly what `tgw agency sign` / `seal` write
with a key file, the key being on the token instead."""

from __future__ import annotations

import threading

from tgw_common.pki.certs import common_name
from tgw_common.pki.pkcs11key import Card

from .summary import ToSign

# One card, one operation at a time: a second login while one is open confuses some
# middleware, and the officer confirms one request at a time anyway.
_CARD_LOCK = threading.Lock()


def sign_on_card(card: Card, pin: str, to_sign: ToSign) -> tuple[bytes, str]:
    """The approval layer with the card's SignerInfo added (or the release layer); and who signed.

    Raises tgw_common.pki.pkcs11key.CardError (PinRefused for a wrong PIN: not retried).
    """
    from tgw_common.tpe import add_signature, sign_new

    with _CARD_LOCK, card.session(pin) as key:
        if to_sign.given == "approval":
            result = add_signature(to_sign.data, key.certificate, key)
        else:
            result = sign_new(to_sign.content, key.certificate, key)
        return result, common_name(key.certificate.subject)
