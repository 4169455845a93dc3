"""CMS (RFC 5652) for TPE/1 with asn1crypto for the structures and cryptography for the maths.

cryptography has no CMS verify and no OAEP CMS decrypt (see ../shared/notes), so signatures
are checked here SignerInfo by SignerInfo: messageDigest against the content, then the
signature over the signed attributes re-encoded as a SET OF. Anything asn1crypto cannot
parse becomes MALFORMED_DER; nothing a hostile envelope holds may escape as another
exception type (the property tests hold us to that).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import algos, cms, core
from asn1crypto import x509 as x509_asn1
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..pki.certs import issuer_der, subject_key_id
from ..pki.profile import key_problem
from ..reasons import Layer, Refusal
from . import derparts
from .derparts import Tlv

HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
# asn1crypto's names for "RSA PKCS #1 v1.5 with hash H" that TPE/1 accepts; plain rsaEncryption
# (what openssl writes) takes its hash from the SignerInfo's digestAlgorithm.
PKCS1_SIG = {"sha256_rsa": "sha256", "sha384_rsa": "sha384", "sha512_rsa": "sha512", "rsassa_pkcs1v15": None}
# cryptography's own certificate errors derive from Exception, not ValueError.
PARSE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, OverflowError, UnicodeError, NotImplementedError,
                 x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


@contextmanager
def parsing(layer: Layer, what: str) -> Iterator[None]:
    """Turn any parser error inside the block into MALFORMED_DER for `layer`."""
    try:
        yield
    except Refusal:
        raise
    except PARSE_ERRORS as exc:
        raise Refusal("MALFORMED_DER", layer, f"{what}: {type(exc).__name__}: {short(exc)}") from None
    except RecursionError:
        raise Refusal("MALFORMED_DER", layer, f"{what}: nested too deeply") from None


def short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "")


def load_content_info(data: bytes, layer: Layer, expected: tuple[str, ...]) -> cms.ContentInfo:
    """Parse one layer strictly: DER only, no trailing bytes, the expected content type."""
    with parsing(layer, "ContentInfo"):
        info = cms.ContentInfo.load(data)
        consumed = len(info.dump())
        if consumed != len(data):
            raise Refusal("TRAILING_DATA", layer, f"{len(data) - consumed} bytes after the ContentInfo")
        ctype = info["content_type"].native
        if ctype not in expected:
            raise Refusal("WRONG_CONTENT_TYPE", layer,
                          f"content type is {ctype or info['content_type'].dotted}, expected {' or '.join(expected)}")
        problem = ber_problem(data)
        if problem:
            raise Refusal("MALFORMED_DER", layer, f"BER, not DER: {problem}")
        return info


def open_content_info(data: bytes | memoryview, layer: Layer, expected: tuple[str, ...]) -> tuple[memoryview, Tlv, str]:
    """The checks of `load_content_info`, without parsing: the buffer, the content's TLV
    (the SignedData or EnvelopedData SEQUENCE) and the content type's name."""
    buf = memoryview(data)
    with parsing(layer, "ContentInfo"):
        top = derparts.read_tlv(buf, 0, len(buf))
        if top.tag != derparts.SEQUENCE:
            raise derparts.DerError("not a SEQUENCE")
        if top.end != len(buf):
            raise Refusal("TRAILING_DATA", layer, f"{len(buf) - top.end} bytes after the ContentInfo")
        kids = derparts.children(buf, top, limit=3)
        if not kids:
            raise derparts.DerError("empty")
        ctype = derparts.content_type(buf, kids[0], "contentType")
        if ctype not in expected:
            raise Refusal("WRONG_CONTENT_TYPE", layer, f"content type is {ctype}, expected {' or '.join(expected)}")
        problem = ber_problem(buf)
        if problem:
            raise Refusal("MALFORMED_DER", layer, f"BER, not DER: {problem}")
        if len(kids) != 2 or kids[1].tag != derparts.context(0):
            raise derparts.DerError("the content must follow the content type as [0] EXPLICIT")
        return buf, derparts.only_child(buf, kids[1], derparts.SEQUENCE, "content"), ctype


# Universal tags whose constructed form is BER-only (DER requires the primitive form).
_STRING_TAGS = {0x03, 0x04, 0x0C, 0x12, 0x13, 0x14, 0x16, 0x17, 0x18, 0x1A, 0x1E}


def ber_problem(data: bytes, max_depth: int = 64) -> str | None:
    """Walk the TLVs and name the first BER-only encoding, or None if the encoding is DER-shaped.

    Catches what BER producers actually emit (indefinite lengths, long or padded length
    octets, constructed strings). Re-encoding with asn1crypto (dump(force=True)) checks the
    same and more but costs two thirds of an envelope's opening time; the signatures
    cover the semantics, so this is the part of DER that matters here.
    """
    stack = [(0, len(data), 0)]
    while stack:
        pos, end, depth = stack.pop()
        if depth > max_depth:
            return "nested too deeply"
        while pos < end:
            first = data[pos]
            pos += 1
            if first & 0x1F == 0x1F:  # high tag number: skip its base-128 octets
                while pos < end and data[pos] & 0x80:
                    pos += 1
                pos += 1
            if pos >= end:
                return "truncated tag"
            length = data[pos]
            pos += 1
            if length == 0x80:
                return f"indefinite length at byte {pos - 2}"
            if length & 0x80:
                count = length & 0x7F
                octets = data[pos:pos + count]
                if len(octets) != count:
                    return "truncated length"
                if octets[0] == 0:
                    return f"length with leading zero octet at byte {pos - 1}"
                length = int.from_bytes(octets, "big")
                if length < 0x80:
                    return f"long-form length for {length} bytes at byte {pos - 1}"
                pos += count
            if pos + length > end:
                return "length beyond the end"
            if first == 0x06 and length > derparts.MAX_OID_BYTES:
                return f"an OBJECT IDENTIFIER of {length} bytes at byte {pos}"
            if first & 0x20:
                if first & 0xC0 == 0 and first & 0x1F in _STRING_TAGS:
                    return f"constructed string at byte {pos}"
                stack.append((pos, pos + length, depth + 1))
            pos += length
    return None


def signing_time_of(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError("signingTime is not a time")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SignerCheck:
    """One SignerInfo whose signature verified (path and role not yet judged)."""

    certificate: x509.Certificate
    signing_time: datetime
    digest: str
    signature: str  # "rsassa_pkcs1v15" or "rsassa_pss"
    index: int


# Real certificates are 1-2 KB; the cache must not keep what a hostile envelope carries.
_CACHED_CERT_BYTES = 16 * 1024


def certificate_from_der(encoded: bytes) -> x509.Certificate:
    """Signers send the same few certificates in every envelope: parse each once."""
    if len(encoded) > _CACHED_CERT_BYTES:
        return x509.load_der_x509_certificate(encoded)
    return _cached_certificate(encoded)


@lru_cache(maxsize=512)
def _cached_certificate(encoded: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(encoded)


def embedded_certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    out = []
    for choice in signed_data["certificates"] or []:
        if choice.name == "certificate":
            out.append(certificate_from_der(choice.chosen.dump()))
    return out


def _find_signer_cert(sid: cms.SignerIdentifier, candidates: list[x509.Certificate],
                      lookup: Callable[[cms.SignerIdentifier], list[x509.Certificate]]) -> x509.Certificate | None:
    def matches(cert: x509.Certificate) -> bool:
        if sid.name == "issuer_and_serial_number":
            isn = sid.chosen
            return (cert.serial_number == isn["serial_number"].native
                    and issuer_der(cert) == isn["issuer"].dump())
        return subject_key_id(cert) == sid.chosen.native

    for cert in candidates:
        if matches(cert):
            return cert
    for cert in lookup(sid):
        if matches(cert):
            return cert
    return None


_REQUIRED_ATTRS = ("content_type", "message_digest", "signing_time")


def _required_attrs(attrs: cms.CMSAttributes, layer: Layer, index: int) -> list[object]:
    """The values of contentType, messageDigest and signingTime, each required once with one value."""
    found: dict[str, list] = {}
    for attr in attrs:  # one pass: each attribute's type is parsed once
        found.setdefault(attr["type"].native, []).append(attr["values"])
    out = []
    for name in _REQUIRED_ATTRS:
        values = found.get(name)
        if not values:
            raise Refusal("SIGNED_ATTRS_MISSING", layer, f"signer {index + 1}: no {name} signed attribute")
        if len(values) > 1 or len(values[0]) != 1:
            raise Refusal("MALFORMED_DER", layer, f"signer {index + 1}: {name} must occur once with one value")
        out.append(values[0][0])
    return out


def _pss_padding(params: algos.RSASSAPSSParams, digest: str, layer: Layer, index: int) -> padding.PSS:
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash = mgf["parameters"]["algorithm"].native if mgf["algorithm"].native == "mgf1" else None
    if hash_name != digest or mgf_hash != digest or params["trailer_field"].native != "trailer_field_bc":
        raise Refusal("UNSUPPORTED_ALGORITHM", layer,
                      f"signer {index + 1}: RSASSA-PSS parameters must use {digest} for hash and MGF1")
    return padding.PSS(mgf=padding.MGF1(HASHES[digest]()), salt_length=params["salt_length"].native)


def verify_signer_info(
    si: cms.SignerInfo, index: int, *, layer: Layer, content: bytes, content_type: str,
    certificates: list[x509.Certificate], lookup: Callable[[cms.SignerIdentifier], list[x509.Certificate]],
    digests: list[str], signatures: list[str],
) -> SignerCheck:
    """Check one SignerInfo cryptographically; raise a Refusal naming what failed."""
    n = index + 1
    cert = _find_signer_cert(si["sid"], certificates, lookup)
    if cert is None:
        raise Refusal("SIGNER_CERT_MISSING", layer, f"signer {n}: certificate not in the message nor the registry")
    # cryptography parses names and extensions on first use. Using them here, inside the
    # layer's parse, makes a damaged certificate MALFORMED_DER rather than an exception
    # wherever its name is next needed (path validation, messages, the verdict).
    cert.subject, cert.issuer, cert.extensions  # noqa: B018
    digest = si["digest_algorithm"]["algorithm"].native
    if digest not in HASHES or digest not in digests:
        raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"signer {n}: digest {digest} not allowed")
    sig_alg = si["signature_algorithm"]
    sig_name = sig_alg["algorithm"].native
    if sig_name in PKCS1_SIG:
        bound = PKCS1_SIG[sig_name]
        if bound is not None and bound != digest:
            raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"signer {n}: {sig_name} with digest {digest}")
        scheme, pad = "rsassa_pkcs1v15", padding.PKCS1v15()
    elif sig_name == "rsassa_pss":
        scheme, pad = "rsassa_pss", _pss_padding(sig_alg["parameters"], digest, layer, index)
    else:
        raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"signer {n}: signature algorithm {sig_name} not allowed")
    if scheme not in signatures:
        raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"signer {n}: {scheme} not allowed by the policy")
    weak = key_problem(cert)
    if weak is not None:  # named before "only RSA": a P-192 key is weak whatever the algorithm policy
        raise Refusal("CERT_WEAK_KEY", layer, f"signer {n}: the certificate has {weak}")
    try:
        public_key = cert.public_key()
    except UnsupportedAlgorithm:  # a key type cryptography does not know is not RSA either
        public_key = None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"signer {n}: only RSA signer keys are accepted")

    attrs = si["signed_attrs"]
    if not attrs:
        raise Refusal("SIGNED_ATTRS_MISSING", layer, f"signer {n}: no signed attributes")
    ctype, md, st = _required_attrs(attrs, layer, index)
    if ctype.native != content_type:
        raise Refusal("CONTENT_TYPE_MISMATCH", layer, f"signer {n}: contentType {ctype.native} vs {content_type}")
    if md.native != hashlib.new(digest, content).digest():
        raise Refusal("DIGEST_MISMATCH", layer, f"signer {n}: messageDigest does not match the content")
    signing_time = signing_time_of(st.native)

    signed_bytes = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT -> SET OF, as RFC 5652 5.4 signs it
    try:
        public_key.verify(si["signature"].native, signed_bytes, pad, HASHES[digest]())
    except InvalidSignature:
        raise Refusal("BAD_SIGNATURE", layer, f"signer {n}: signature does not verify") from None
    return SignerCheck(cert, signing_time, digest, scheme, index)


def sorted_set(items: list[core.Asn1Value]) -> list[core.Asn1Value]:
    """DER orders a SET OF by the encodings of its elements."""
    return sorted(items, key=lambda item: item.dump())


def make_signer_info(
    cert: x509.Certificate, key: rsa.RSAPrivateKey, content: bytes, *, digest: str = "sha256",
    pss: bool = False, signing_time: datetime | None = None,
) -> cms.SignerInfo:
    """A SignerInfo over `content` (eContentType id-data) with the three required attributes."""
    when = (signing_time or datetime.now(UTC)).replace(microsecond=0)
    time_choice = {"utc_time": when} if 1950 <= when.year < 2050 else {"generalized_time": when}
    attrs = cms.CMSAttributes(sorted_set([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time(time_choice)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.new(digest, content).digest()]}),
    ]))
    to_sign = attrs.dump()  # a SET OF, untagged, as signed
    if pss:
        params = algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
            "salt_length": HASHES[digest]().digest_size,
        })
        sig_alg = {"algorithm": "rsassa_pss", "parameters": params}
        pad = padding.PSS(mgf=padding.MGF1(HASHES[digest]()), salt_length=HASHES[digest]().digest_size)
    else:
        sig_alg = {"algorithm": f"{digest}_rsa"}
        pad = padding.PKCS1v15()
    signature = key.sign(to_sign, pad, HASHES[digest]())
    return cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": x509_asn1.Name.load(cert.issuer.public_bytes()),
            "serial_number": cert.serial_number,
        }}),
        "digest_algorithm": {"algorithm": digest},
        "signed_attrs": attrs,
        "signature_algorithm": sig_alg,
        "signature": signature,
    })
