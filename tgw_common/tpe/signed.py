"""Layers 1 and 3: SignedData with attached id-data content, built and checked.

Building supports the profile's workflow: the accountant signs the payload, the head adds a
signature to that SignedData on another machine (`add_signature`), the releaser signs the
sealed blob. Checking verifies every SignerInfo; path, time and role are judged by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms
from asn1crypto import x509 as x509_asn1
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ..pki.certs import der
from ..reasons import Layer, Refusal
from . import derparts
from .cms import (
    PARSE_ERRORS,
    SignerCheck,
    certificate_from_der,
    load_content_info,
    make_signer_info,
    open_content_info,
    parsing,
    short,
    sorted_set,
    verify_signer_info,
)


@dataclass(frozen=True)
class SignedLayer:
    content: memoryview  # a view into the caller's buffer, not a copy
    signers: list[SignerCheck]
    certificates: list[x509.Certificate]  # carried in the message (may help path building)


_SIGNED_DATA = [("version", derparts.INTEGER, True), ("digestAlgorithms", derparts.SET, True),
                ("encapContentInfo", derparts.SEQUENCE, True), ("certificates", derparts.context(0), False),
                ("crls", derparts.context(1), False), ("signerInfos", derparts.SET, True)]


def read_signed(data: bytes | memoryview, *, layer: Layer, digests: list[str], signatures: list[str],
                lookup: Callable[[cms.SignerIdentifier], list[x509.Certificate]],
                exactly_one: bool = False) -> SignedLayer:
    """Parse one SignedData layer and verify every SignerInfo in it."""
    buf, signed_data, _ = open_content_info(data, layer, ("signed_data",))
    with parsing(layer, "SignedData"):
        parts = derparts.fields(buf, signed_data, "SignedData", _SIGNED_DATA)
        eci = derparts.children(buf, parts["encapContentInfo"], limit=3)
        if not eci:
            raise derparts.DerError("encapContentInfo is empty")
        content_type = derparts.content_type(buf, eci[0], "eContentType")
        if content_type != "data":
            raise Refusal("WRONG_CONTENT_TYPE", layer, f"encapsulated content is {content_type}, expected data")
        if len(eci) > 2 or (len(eci) == 2 and eci[1].tag != derparts.context(0)):
            raise derparts.DerError("encapContentInfo: eContent must be [0] EXPLICIT")
        content = None
        if len(eci) == 2:
            content = derparts.body(buf, derparts.only_child(buf, eci[1], derparts.OCTET_STRING, "eContent"))
        if not content:
            raise Refusal("CONTENT_MISSING", layer, "the signed content is detached or empty")
        for alg in cms.DigestAlgorithms.load(derparts.whole(buf, parts["digestAlgorithms"])):
            if alg["algorithm"].native not in digests:
                raise Refusal("UNSUPPORTED_ALGORITHM", layer, f"digest {alg['algorithm'].native} not allowed")
        signer_infos = list(cms.SignerInfos.load(derparts.whole(buf, parts["signerInfos"])))
        if exactly_one and len(signer_infos) != 1:
            raise Refusal("SIGNER_COUNT", layer, f"{len(signer_infos)} signers, exactly one releaser is required")
        if not signer_infos:
            raise Refusal("APPROVALS_MISSING", layer, "no signatures")
        # CertificateChoices: a bare Certificate is a SEQUENCE; the other choices are tagged.
        choices = derparts.children(buf, parts["certificates"]) if "certificates" in parts else []
        certificates = [_carried(derparts.whole(buf, c), i, layer) for i, c in enumerate(choices)
                        if c.tag == derparts.SEQUENCE]
        checks = [verify_signer_info(si, i, layer=layer, content=content, content_type=content_type,
                                     certificates=certificates, lookup=lookup, digests=digests,
                                     signatures=signatures)
                  for i, si in enumerate(signer_infos)]
    return SignedLayer(content=content, signers=checks, certificates=certificates)


def _carried(encoded: bytes, index: int, layer: Layer) -> x509.Certificate:
    """One carried certificate, parsed whole now (cryptography parses names and extensions
    on first use): a damaged one is CERT_MALFORMED here, not an exception wherever its name
    is next needed (path validation, messages, the verdict)."""
    try:
        cert = certificate_from_der(encoded)
        cert.subject, cert.issuer, cert.extensions, cert.serial_number  # noqa: B018
        cert.subject.public_bytes(), cert.issuer.public_bytes()
    except PARSE_ERRORS as exc:
        raise Refusal("CERT_MALFORMED", layer, f"carried certificate {index + 1} does not parse: "
                                               f"{type(exc).__name__}: {short(exc)}") from None
    return cert


def _cert_choice(cert: x509.Certificate) -> cms.CertificateChoices:
    return cms.CertificateChoices({"certificate": x509_asn1.Certificate.load(der(cert))})


def sign_new(content: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey, *, digest: str = "sha256",
             pss: bool = False, signing_time: datetime | None = None,
             extra_certs: list[x509.Certificate] = ()) -> bytes:
    """A SignedData over `content` with one signature (the first approval, or the release)."""
    signer_info = make_signer_info(cert, key, content, digest=digest, pss=pss, signing_time=signing_time)
    certs = sorted_set([_cert_choice(c) for c in [cert, *extra_certs]])
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": certs,
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


def add_signature(signed: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey, *, digest: str = "sha256",
                  pss: bool = False, signing_time: datetime | None = None) -> bytes:
    """Add one more SignerInfo over the same content (the head after the accountant)."""
    info = load_content_info(signed, Layer.APPROVAL, ("signed_data",))
    sd = info["content"]
    content = sd["encap_content_info"]["content"].native
    if not content:
        raise ValueError("the SignedData carries no content to sign")
    signer_info = make_signer_info(cert, key, content, digest=digest, pss=pss, signing_time=signing_time)
    digests = {a["algorithm"].native for a in sd["digest_algorithms"]} | {digest}
    certs = {c.dump(): c for c in (sd["certificates"] or [])}
    certs.setdefault(_cert_choice(cert).dump(), _cert_choice(cert))
    new = cms.SignedData({
        "version": sd["version"].native,
        "digest_algorithms": sorted_set([cms.DigestAlgorithm({"algorithm": d}) for d in sorted(digests)]),
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": sorted_set([cms.CertificateChoices.load(k) for k in certs]),
        "signer_infos": sorted_set([*[cms.SignerInfo.load(si.dump()) for si in sd["signer_infos"]], signer_info]),
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": new}).dump()


def merge_signatures(approval: bytes | None, incoming: bytes) -> bytes:
    """The approval layer with `incoming`'s SignerInfos and certificates added.

    Both must encapsulate the same content (the caller has verified `incoming`); the result is
    what `add_signature` would have made had the new signer signed the layer itself, so a
    signature made elsewhere (a card, `openssl cms -sign`) joins the layer unchanged.
    """
    new_sd = load_content_info(incoming, Layer.APPROVAL, ("signed_data",))["content"]
    if approval is None:
        return cms.ContentInfo({"content_type": "signed_data", "content": _normalised(new_sd, new_sd)}).dump()
    old_sd = load_content_info(approval, Layer.APPROVAL, ("signed_data",))["content"]
    if old_sd["encap_content_info"]["content"].native != new_sd["encap_content_info"]["content"].native:
        raise ValueError("the two SignedData layers sign different content")
    return cms.ContentInfo({"content_type": "signed_data", "content": _normalised(old_sd, new_sd)}).dump()


def _normalised(old: cms.SignedData, new: cms.SignedData) -> cms.SignedData:
    """One SignedData from two over the same content: digests, certificates and signers united."""
    layers = (old, new) if old is not new else (old,)
    digests = {a["algorithm"].native for sd in layers for a in sd["digest_algorithms"]}
    certs = {c.dump(): c for sd in layers for c in (sd["certificates"] or []) if c.name == "certificate"}
    infos = {si.dump(): si for sd in layers for si in sd["signer_infos"]}
    # RFC 5652 5.1: v3 as soon as one SignerInfo names its signer by subjectKeyIdentifier.
    version = "v3" if any(si["version"].native == "v3" for si in infos.values()) else "v1"
    return cms.SignedData({
        "version": version,
        "digest_algorithms": sorted_set([cms.DigestAlgorithm({"algorithm": d}) for d in sorted(digests)]),
        "encap_content_info": {"content_type": "data", "content": old["encap_content_info"]["content"].native},
        "certificates": sorted_set([cms.CertificateChoices.load(k) for k in certs]),
        "signer_infos": sorted_set([cms.SignerInfo.load(k) for k in infos]),
    })
