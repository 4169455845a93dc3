"""Hostile certificates, object identifiers and structures in the CMS layers.

Each must end in a Refusal (never another exception), and none may make the process keep
what an attacker sent: the reader's caches are for the few real certificates that come
back in every envelope.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tgw_common.config import LimitsConfig
from tgw_common.reasons import Layer, Refusal
from tgw_common.tpe import cms as tpe_cms
from tgw_common.tpe.cms import ber_problem, open_content_info, sorted_set
from tgw_common.tpe.payload import unpack_payload


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _with_certificates(envelope: bytes, certificates: list[bytes]) -> bytes:
    """The release layer of `envelope` with `certificates` (DER) carried beside its own."""
    sd = cms.ContentInfo.load(envelope)["content"]
    carried = list(sd["certificates"]) + [cms.CertificateChoices.load(c) for c in certificates]
    rebuilt = cms.SignedData({
        "version": sd["version"].native, "digest_algorithms": sd["digest_algorithms"],
        "encap_content_info": sd["encap_content_info"], "certificates": sorted_set(carried),
        "signer_infos": sd["signer_infos"]})
    return cms.ContentInfo({"content_type": "signed_data", "content": rebuilt}).dump(force=True)


def _refusal(fn, *args, **kw) -> Refusal:
    with pytest.raises(Refusal) as caught:
        fn(*args, **kw)
    return caught.value


def test_a_carried_certificate_with_an_impossible_version_is_cert_malformed(kit, opener):
    envelope = kit.envelope()
    own = cms.ContentInfo.load(envelope)["content"]["certificates"][0].chosen.dump()
    raw = bytearray(own)
    at = raw.find(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] version v3 (2)
    raw[at + 4] = 0x03  # there is no v4
    refusal = _refusal(opener.check_release, _with_certificates(envelope, [bytes(raw)]))
    assert (refusal.code, refusal.layer) == ("CERT_MALFORMED", Layer.RELEASE)


def test_a_signer_certificate_with_an_extension_twice_is_refused(kit, opener):
    envelope = kit.envelope()
    sd = cms.ContentInfo.load(envelope)["content"]
    doubled = []
    for choice in sd["certificates"]:
        cert = asn1_x509.Certificate.load(choice.chosen.dump())
        tbs = cert["tbs_certificate"]
        fields = {name: tbs[name] for name, *_ in asn1_x509.TbsCertificate._fields
                  if tbs[name].__class__.__name__ != "Void"}
        extensions = [asn1_x509.Extension.load(e.dump()) for e in tbs["extensions"]]
        fields["extensions"] = asn1_x509.Extensions([*extensions, asn1_x509.Extension.load(extensions[0].dump())])
        doubled.append(cms.CertificateChoices({"certificate": asn1_x509.Certificate({
            "tbs_certificate": asn1_x509.TbsCertificate(fields), "signature_algorithm": cert["signature_algorithm"],
            "signature_value": cert["signature_value"]})}))
    rebuilt = cms.SignedData({
        "version": sd["version"].native, "digest_algorithms": sd["digest_algorithms"],
        "encap_content_info": sd["encap_content_info"], "certificates": sorted_set(doubled),
        "signer_infos": sd["signer_infos"]})
    data = cms.ContentInfo({"content_type": "signed_data", "content": rebuilt}).dump(force=True)
    refusal = _refusal(opener.check_release, data)
    assert (refusal.code, refusal.layer) == ("CERT_MALFORMED", Layer.RELEASE)


@pytest.mark.parametrize("arcs", [b"\x01" * 100_000, b"\x81" * 1_000_000 + b"\x01"], ids=["many-arcs", "one-huge-arc"])
def test_a_huge_object_identifier_is_refused_unread(arcs):
    # asn1crypto decodes a 1 MB arc in minutes; it must never be asked to.
    data = _tlv(0x30, _tlv(0x06, b"\x2a" + arcs) + _tlv(0xA0, _tlv(0x30, b"")))
    refusal = _refusal(open_content_info, data, Layer.RELEASE, ("signed_data",))
    assert refusal.code == "MALFORMED_DER" and "OBJECT IDENTIFIER" in refusal.message


def test_a_content_info_with_a_million_fields_is_malformed_der():
    signed_data = bytes.fromhex("06092a864886f70d010702")
    data = _tlv(0x30, signed_data + _tlv(0xA0, _tlv(0x30, b"")) + b"\x05\x00" * 1_000_000)
    refusal = _refusal(open_content_info, data, Layer.RELEASE, ("signed_data",))
    assert refusal.code == "MALFORMED_DER" and "more than 3 values" in refusal.message


def _junk_certificate(size: int) -> bytes:
    """A well-formed self-signed certificate made `size` bytes large by one private extension."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "junk")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\0" * size),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_large_carried_certificate_is_not_kept_by_the_cache(kit, opener):
    envelope = kit.envelope()
    opener.check_release(envelope)  # the real certificates are cached now
    before = tpe_cms._cached_certificate.cache_info().currsize
    # Carried beside the releaser's own certificates, it is on no signer's path: refused.
    refusal = _refusal(opener.check_release, _with_certificates(envelope, [_junk_certificate(64 * 1024)]))
    assert refusal.code == "CERT_SUPERFLUOUS"
    assert tpe_cms._cached_certificate.cache_info().currsize == before
    small = _junk_certificate(100)
    tpe_cms.certificate_from_der(small)
    assert tpe_cms._cached_certificate.cache_info().currsize == before + 1


def test_an_empty_zip_is_missing_its_manifest():
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    refusal = _refusal(unpack_payload, buffer.getvalue(), LimitsConfig())
    assert refusal.code == "MANIFEST_MISSING"


def test_a_long_object_identifier_deep_inside_a_layer_is_a_der_problem():
    # Deeper OIDs (algorithms, attributes) are read by asn1crypto only after ber_problem ran.
    body = _tlv(0x30, _tlv(0x06, b"\x2a" + b"\x81" * 200 + b"\x01"))
    assert "OBJECT IDENTIFIER of" in ber_problem(_tlv(0x30, body))
