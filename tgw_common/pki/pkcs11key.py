"""A signing key on a PKCS #11 token (an officer's IC card, an HSM, a SoftHSM2 demo card).

`Card` names where the key lives (module path, token label, key label or CKA_ID, from
config or an RFC 7512 URI); `Card.session(pin)` logs in once and yields a `CardKey`, which
`tgw_common.tpe.sign_new` / `add_signature` take in place of a software key: its `sign()`
runs CKM_SHA256_RSA_PKCS on the token, so the private key never leaves it.
`Card.certificate()` reads the key's certificate without a PIN (a public session): what the
portal registers.

A wrong PIN is reported (PinRefused, naming the token) and never tried again here: a real
card locks after a few wrong PINs, so only the officer decides to type it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# One library object per module path: python-pkcs11 keeps one per process anyway, and
# C_Initialize reads the module's configuration (SOFTHSM2_CONF) only once.
_LIBRARIES: dict[str, object] = {}
_LOAD_LOCK = threading.Lock()


class CardError(Exception):
    """The token, the key or the certificate cannot be used; the message says which and why."""


class PinRefused(CardError):
    """The token refused the PIN (CKR_PIN_INCORRECT) or the PIN is locked."""


class UnsupportedMechanism(CardError):
    """Asked for anything but RSA PKCS #1 v1.5 with SHA-256 (CKM_SHA256_RSA_PKCS)."""


@dataclass(frozen=True)
class Card:
    module: str
    token_label: str
    key_label: str | None = None
    key_id: bytes | None = None

    @classmethod
    def from_uri(cls, uri: str, module: str | None = None) -> Card:
        """An RFC 7512 `pkcs11:` URI: token=, object= and id= in the path, module-path= in the query.

        A `pin-value` is refused: a PIN belongs to the officer, not to a config file.
        """
        if not uri.startswith("pkcs11:"):
            raise CardError(f"{uri!r} is not a pkcs11: URI (RFC 7512)")
        path, _, query = uri[len("pkcs11:"):].partition("?")
        attrs = _uri_attributes(path, ";")
        queries = _uri_attributes(query, "&")
        if "pin-value" in attrs or "pin-value" in queries:
            raise CardError("the PKCS #11 URI carries a PIN (pin-value): remove it, the officer types the PIN")
        module = queries.get("module-path") or module
        if not module:
            raise CardError("no PKCS #11 module: give module-path= in the URI or pkcs11_module in the config")
        if "token" not in attrs:
            raise CardError(f"the PKCS #11 URI {uri!r} names no token (token=)")
        key_id = attrs["id"].encode("latin-1") if "id" in attrs else None
        return cls(module=module, token_label=attrs["token"], key_label=attrs.get("object"), key_id=key_id)

    def describe(self) -> str:
        which = self.key_label or (self.key_id.hex() if self.key_id else "the only key")
        return f"token {self.token_label!r} (key {which})"

    @contextmanager
    def session(self, pin: str) -> Iterator[CardKey]:
        """Log in with `pin` (once: no retry), find the key and its certificate, yield the key."""
        import pkcs11
        from pkcs11 import exceptions as p11

        token = self._token()
        try:
            session = token.open(user_pin=pin)
        except p11.PinIncorrect:
            raise PinRefused(f"token {self.token_label!r}: wrong PIN (CKR_PIN_INCORRECT); "
                             f"not retried: the card locks after a few wrong PINs") from None
        except p11.PinLocked:
            raise PinRefused(f"token {self.token_label!r}: the PIN is locked (CKR_PIN_LOCKED); "
                             f"unlock it with the card's PUK/SO PIN") from None
        except (p11.PinLenRange, p11.PinInvalid):
            raise PinRefused(f"token {self.token_label!r}: the PIN has the wrong length or characters") from None
        except pkcs11.PKCS11Error as exc:
            raise CardError(f"token {self.token_label!r}: cannot log in: {type(exc).__name__}") from None
        try:
            with session:
                key = self._private_key(session)
                yield CardKey(key, self._certificate(session, key), self.token_label)
        except pkcs11.PKCS11Error as exc:
            raise CardError(f"{self.describe()}: {type(exc).__name__} {exc}".rstrip()) from None

    def certificate(self) -> x509.Certificate:
        """The key's certificate, read in a public session: no PIN, since certificates are public
        objects on a token (the portal asks for it to register the card, `GET /v1/certificate`)."""
        import pkcs11

        token = self._token()
        try:
            with token.open() as session:
                return self._public_certificate(session)
        except pkcs11.PKCS11Error as exc:
            raise CardError(f"{self.describe()}: {type(exc).__name__} {exc}".rstrip()) from None

    def _public_certificate(self, session) -> x509.Certificate:
        from pkcs11 import Attribute, ObjectClass

        found = self._search(session, ObjectClass.CERTIFICATE)
        if not found and self.key_label is not None and self.key_id is None:
            # Cards may label the certificate unlike the key; the public key has the key's label and CKA_ID.
            for public in self._search(session, ObjectClass.PUBLIC_KEY):
                found += session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                              Attribute.ID: public[Attribute.ID]})
        try:
            certs = {bytes(o[Attribute.VALUE]): None for o in found}
            parsed = [x509.load_der_x509_certificate(value) for value in certs]
        except ValueError:
            raise CardError(f"{self.describe()}: a certificate on the token is not X.509 DER") from None
        # CA certificates a card carries beside the officer's own are not the officer's.
        own = [c for c in parsed if not _is_ca(c)]
        if len(own) != 1:
            raise CardError(f"{self.describe()}: {len(own)} end-entity certificates match, exactly one is needed "
                            f"(set the key label or CKA_ID)")
        return own[0]

    def _token(self):
        import pkcs11

        try:
            lib = library(self.module)
            return lib.get_token(token_label=self.token_label)
        except pkcs11.NoSuchToken:
            raise CardError(f"no token labelled {self.token_label!r} in {self.module} (is the card inserted?)") from None
        except pkcs11.MultipleTokensReturned:
            raise CardError(f"more than one token is labelled {self.token_label!r} in {self.module}") from None
        except pkcs11.PKCS11Error as exc:
            raise CardError(f"{self.module}: {type(exc).__name__} {exc}".rstrip()) from None

    def _search(self, session, object_class) -> list:
        from pkcs11 import Attribute

        template = {Attribute.CLASS: object_class}
        if self.key_label is not None:
            template[Attribute.LABEL] = self.key_label
        if self.key_id is not None:
            template[Attribute.ID] = self.key_id
        return list(session.get_objects(template))

    def _private_key(self, session):
        from pkcs11 import KeyType, ObjectClass

        keys = self._search(session, ObjectClass.PRIVATE_KEY)
        if len(keys) != 1:
            raise CardError(f"{self.describe()}: {len(keys)} private keys match, exactly one is needed "
                            f"(set the key label or CKA_ID)")
        if keys[0].key_type != KeyType.RSA:
            raise CardError(f"{self.describe()}: the key is {keys[0].key_type.name}, only RSA is supported")
        return keys[0]

    def _certificate(self, session, key) -> x509.Certificate:
        from pkcs11 import Attribute, ObjectClass

        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key.id}))
        if len(certs) != 1:
            raise CardError(f"{self.describe()}: {len(certs)} certificates carry the key's CKA_ID, exactly one "
                            f"is needed")
        cert = x509.load_der_x509_certificate(certs[0][Attribute.VALUE])
        public = cert.public_key()
        # The modulus is a public attribute: readable even on a sensitive, non-extractable key.
        modulus = int.from_bytes(key[Attribute.MODULUS], "big")
        if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers().n != modulus:
            raise CardError(f"{self.describe()}: the certificate on the token is not the key's")
        return cert


def library(module: str):
    """The loaded PKCS #11 module at `module`."""
    import pkcs11

    with _LOAD_LOCK:
        if module not in _LIBRARIES:
            try:
                _LIBRARIES[module] = pkcs11.lib(module)
            except pkcs11.PKCS11Error as exc:
                raise CardError(f"cannot load the PKCS #11 module {module}: {exc}") from None
        return _LIBRARIES[module]


def reload_library(module: str) -> None:
    """Finalize and initialize the module again, so it reads its configuration and tokens anew
    (SoftHSM2 after new tokens were made or SOFTHSM2_CONF changed)."""
    library(module).reinitialize()


class CardKey:
    """What `make_signer_info` needs of a private key, signing on the token."""

    def __init__(self, key, certificate: x509.Certificate, token_label: str) -> None:
        self._key, self.certificate, self.token_label = key, certificate, token_label

    @property
    def key_size(self) -> int:
        return self.certificate.public_key().key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self.certificate.public_key()

    def sign(self, data: bytes, pad: padding.AsymmetricPadding, algorithm: hashes.HashAlgorithm) -> bytes:
        from pkcs11 import Mechanism

        if not isinstance(pad, padding.PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise UnsupportedMechanism(f"token {self.token_label!r} signs with CKM_SHA256_RSA_PKCS only "
                                       f"(asked for {type(pad).__name__} with {algorithm.name})")
        return self._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _uri_attributes(text: str, separator: str) -> dict[str, str]:
    attrs = {}
    for part in filter(None, text.split(separator)):
        name, eq, value = part.partition("=")
        if not eq:
            raise CardError(f"PKCS #11 URI attribute {part!r} has no value")
        attrs[name] = unquote(value, encoding="latin-1")
    return attrs
