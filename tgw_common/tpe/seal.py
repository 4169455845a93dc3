"""Layer 2: the seal (EnvelopedData, or AuthEnvelopedData with AES-GCM) for the treasury.

Opening it must not become a decryption oracle: once a recipient is found, every failure
(key transport, content key size, padding, GCM tag, missing ciphertext) ends in the same
DECRYPT_FAILED with the same message. Which recipient and which algorithms an envelope
names is public data and is checked before any private-key operation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import algos, cms, core
from asn1crypto import x509 as x509_asn1
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..pki.certs import issuer_der, subject_key_id
from ..reasons import Layer, Refusal
from . import derparts
from .cms import open_content_info, parsing

L = Layer.SEAL
UNIFORM = "the envelope could not be decrypted"
CBC_KEY_BYTES = {"aes256_cbc": 32, "aes128_cbc": 16}


@dataclass(frozen=True)
class SealInfo:
    """What the seal used (for the verdict and the console)."""

    content_type: str  # enveloped_data | authenticated_enveloped_data
    key_transport: str  # rsaes_oaep | rsaes_pkcs1v15
    cipher: str  # aes256_cbc | aes128_cbc | aes256_gcm
    recipients: int


class GCMParameters(core.Sequence):
    """RFC 5084; asn1crypto knows the GCM algorithm ids but not their parameters."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]  # noqa: RUF012


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _names_recipient(rid: cms.RecipientIdentifier, cert: x509.Certificate) -> bool:
    if rid.name == "issuer_and_serial_number":
        return (rid.chosen["serial_number"].native == cert.serial_number
                and rid.chosen["issuer"].dump() == issuer_der(cert))
    return subject_key_id(cert) == rid.chosen.native


def _key_transport_of(encoded: bytes, legacy: bool) -> str:
    """`_key_transport` of an encoded KeyEncryptionAlgorithm. Agencies' software writes the
    same few parameter sets over and over: each is parsed and judged once. Only encodings
    of a real parameter set's size are cached, and a refusal (an exception) never is."""
    if len(encoded) > 256:
        return _key_transport(cms.KeyEncryptionAlgorithm.load(encoded), legacy)
    return _cached_key_transport(encoded, legacy)


@lru_cache(maxsize=32)
def _cached_key_transport(encoded: bytes, legacy: bool) -> str:
    return _key_transport(cms.KeyEncryptionAlgorithm.load(encoded), legacy)


def _key_transport(alg: cms.KeyEncryptionAlgorithm, legacy: bool) -> str:
    name = alg["algorithm"].native
    if name == "rsaes_oaep":
        params = alg["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf = params["mask_gen_algorithm"]
        mgf_hash = mgf["parameters"]["algorithm"].native if mgf["algorithm"].native == "mgf1" else None
        label = params["p_source_algorithm"]["parameters"].native
        if hash_name != "sha256" or mgf_hash != "sha256" or label:
            raise Refusal("UNSUPPORTED_ALGORITHM", L,
                          f"RSAES-OAEP must use SHA-256 and MGF1-SHA-256 with no label (got {hash_name}/{mgf_hash})")
        return "rsaes_oaep"
    if name == "rsaes_pkcs1v15":
        if not legacy:
            raise Refusal("UNSUPPORTED_ALGORITHM", L, "RSA PKCS #1 v1.5 key transport needs legacy mode")
        return "rsaes_pkcs1v15"
    raise Refusal("UNSUPPORTED_ALGORITHM", L, f"key transport {name} not allowed")


_ENVELOPED = [("version", derparts.INTEGER, True), ("originatorInfo", derparts.context(0), False),
              ("recipientInfos", derparts.SET, True), ("encryptedContentInfo", derparts.SEQUENCE, True),
              ("unprotectedAttrs", derparts.context(1), False)]
_AUTH_ENVELOPED = [("version", derparts.INTEGER, True), ("originatorInfo", derparts.context(0), False),
                   ("recipientInfos", derparts.SET, True), ("authEncryptedContentInfo", derparts.SEQUENCE, True),
                   ("authAttrs", derparts.context(1), False), ("mac", derparts.OCTET_STRING, True),
                   ("unauthAttrs", derparts.context(2), False)]
_ENCRYPTED_CONTENT_INFO = [("contentType", derparts.OID, True), ("contentEncryptionAlgorithm", derparts.SEQUENCE, True),
                           ("encryptedContent", derparts.context(0, constructed=False), False)]


def open_seal(data: bytes | memoryview, *, certificate: x509.Certificate, private_key: rsa.RSAPrivateKey,
              ciphers: list[str], legacy: bool = False) -> tuple[memoryview, SealInfo]:
    """Decrypt the seal addressed to `certificate`; return layer 3's DER and what was used.

    The plaintext is decrypted into one buffer and returned as a view of it: a large
    envelope's content exists once, not once per step.
    """
    buf, env, ctype = open_content_info(data, L, ("enveloped_data", "authenticated_enveloped_data"))
    with parsing(L, "seal"):
        auth = ctype == "authenticated_enveloped_data"
        parts = derparts.fields(buf, env, ctype, _AUTH_ENVELOPED if auth else _ENVELOPED)
        recipient_infos = cms.RecipientInfos.load(derparts.whole(buf, parts["recipientInfos"]))
        mine = [ri.chosen for ri in recipient_infos
                if ri.name == "ktri" and _names_recipient(ri.chosen["rid"], certificate)]
        if not mine:
            raise Refusal("NOT_FOR_TREASURY", L, "no recipient names the treasury's current envelope certificate")
        eci = derparts.fields(buf, parts["authEncryptedContentInfo" if auth else "encryptedContentInfo"],
                         "EncryptedContentInfo", _ENCRYPTED_CONTENT_INFO)
        alg = cms.EncryptionAlgorithm.load(derparts.whole(buf, eci["contentEncryptionAlgorithm"]))
        cipher = alg["algorithm"].native
        if cipher not in ciphers or (not auth) != (cipher in CBC_KEY_BYTES):
            raise Refusal("UNSUPPORTED_ALGORITHM", L, f"content encryption {cipher} not allowed in {ctype}")
        transport = _key_transport_of(mine[0]["key_encryption_algorithm"].dump(), legacy)
        encrypted_key = mine[0]["encrypted_key"].native
        ciphertext = derparts.body(buf, eci["encryptedContent"]) if "encryptedContent" in eci else None
        if not auth:
            iv = alg["parameters"].native
            aad = mac = nonce = None
        else:
            params = GCMParameters.load(alg["parameters"].dump())
            nonce, icv_len = params["aes_nonce"].native, params["aes_icvlen"].native
            mac = bytes(derparts.body(buf, parts["mac"]))
            attrs = parts.get("authAttrs")
            aad = b"\x31" + bytes(buf[attrs.start + 1:attrs.end]) if attrs else b""
            if icv_len != len(mac):
                raise Refusal("MALFORMED_DER", L, "GCM tag length differs from its parameters")
            iv = None
        recipients = len(recipient_infos)

    pad = _oaep() if transport == "rsaes_oaep" else padding.PKCS1v15()
    try:
        if ciphertext is None:
            raise ValueError
        key = private_key.decrypt(encrypted_key, pad)
        if iv is not None:
            if len(key) != CBC_KEY_BYTES[cipher] or len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
                raise ValueError
            plain = _decrypt_cbc(key, iv, ciphertext)
        else:
            if len(key) != 32:
                raise ValueError
            plain = _decrypt_gcm(key, nonce, mac, aad, ciphertext)
    except Exception:  # every failure looks the same from outside: no oracle
        raise Refusal("DECRYPT_FAILED", L, UNIFORM) from None
    return plain, SealInfo(ctype, transport, cipher, recipients)


def _decrypt_cbc(key: bytes, iv: bytes, ciphertext: memoryview) -> memoryview:
    out = bytearray(len(ciphertext) + 15)  # update_into wants room for one block more
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    n = decryptor.update_into(ciphertext, out)
    n += len(decryptor.finalize())
    # The padding sits in the last block: let the library judge that block alone.
    unpadder = sympad.PKCS7(128).unpadder()
    tail = unpadder.update(bytes(out[n - 16:n])) + unpadder.finalize()
    return memoryview(out)[:n - 16 + len(tail)]


def _decrypt_gcm(key: bytes, nonce: bytes, tag: bytes, aad: bytes, ciphertext: memoryview) -> memoryview:
    # The tag is checked by finalize(), before the plaintext leaves this function.
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    out = bytearray(len(ciphertext) + 15)
    n = decryptor.update_into(ciphertext, out)
    n += len(decryptor.finalize())
    return memoryview(out)[:n]


def make_seal(content: bytes, recipients: list[x509.Certificate], *, cipher: str = "aes256_cbc") -> bytes:
    """EnvelopedData (AES-CBC) or AuthEnvelopedData (AES-256-GCM) for each recipient, RSAES-OAEP-SHA256."""
    if not recipients:
        raise ValueError("at least one recipient certificate is needed")
    key_len = 32 if cipher in ("aes256_cbc", "aes256_gcm") else 16
    if cipher not in ("aes256_cbc", "aes128_cbc", "aes256_gcm"):
        raise ValueError(f"unknown cipher {cipher}")
    key = os.urandom(key_len)
    oaep_alg = {
        "algorithm": "rsaes_oaep",
        "parameters": algos.RSAESOAEPParams({
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
        }),
    }
    infos = []
    for cert in recipients:
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("recipient key must be RSA")
        infos.append(cms.RecipientInfo({"ktri": {
            "version": "v0",
            "rid": {"issuer_and_serial_number": {
                "issuer": x509_asn1.Name.load(cert.issuer.public_bytes()), "serial_number": cert.serial_number}},
            "key_encryption_algorithm": oaep_alg,
            "encrypted_key": public_key.encrypt(key, _oaep()),
        }}))
    if cipher == "aes256_gcm":
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, content, None)
        body = cms.AuthEnvelopedData({
            "version": "v0",
            "recipient_infos": infos,
            "auth_encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": "aes256_gcm", "parameters": GCMParameters({"aes_nonce": nonce, "aes_icvlen": 16})},
                "encrypted_content": sealed[:-16],
            },
            "mac": sealed[-16:],
        })
        return cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": body}).dump()
    iv = os.urandom(16)
    padder = sympad.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = cms.EnvelopedData({
        "version": "v0",
        "recipient_infos": infos,
        "encrypted_content_info": {
            "content_type": "data",
            "content_encryption_algorithm": {"algorithm": cipher, "parameters": iv},
            "encrypted_content": encryptor.update(padded) + encryptor.finalize(),
        },
    })
    return cms.ContentInfo({"content_type": "enveloped_data", "content": body}).dump()
