"""Certificates with faults, made with cryptography's builder, and the envelopes that carry them.

Shared by the certificate-fault scenarios (one per reason code), the hypothesis strategy
that generates hostile certificates, and the inner zone's tests. Keys come from a small pool
made once per process: generating RSA keys per example would be most of a test's time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.kit import NOW, Kit, Signer, custom_signed
from tgw_common.pki.certs import der, load_certificate_file, load_private_key_file
from tgw_common.tpe.cms import sorted_set

A = "A10001"
KEY_KINDS = ("rsa2048", "rsa2048b", "rsa1024", "p256", "p192", "secp256k1", "ed25519")


@cache
def key(kind: str):
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:7]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"p256": ec.SECP256R1(), "p192": ec.SECP192R1(), "secp256k1": ec.SECP256K1()}[kind]
    return ec.generate_private_key(curve)


def name(cn: str, unit: str = A) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Demo Government"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def usage(*, sign: bool = True, ca: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=sign, key_encipherment=encipher,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def gca(kit: Kit) -> tuple[x509.Certificate, object]:
    return load_certificate_file(kit.pki / "gca.pem"), load_private_key_file(kit.pki / "gca.key")


def build(subject: x509.Name, public_key, issuer_name: x509.Name, issuer_key, *, ca: bool | None = False,
          key_usage: x509.KeyUsage | None = None, extensions=(), not_before: datetime | None = None,
          not_after: datetime | None = None, serial: int | None = None) -> x509.Certificate:
    """One certificate; ca None leaves basicConstraints out, `extensions` are (value, critical)."""
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(not_before or NOW - timedelta(days=1))
               .not_valid_after(not_after or NOW + timedelta(days=30)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    signer_is_ed = isinstance(issuer_key, ed25519.Ed25519PrivateKey)
    return builder.sign(issuer_key, None if signer_is_ed else hashes.SHA256())


def by_gca(kit: Kit, cn: str, key_kind: str = "rsa2048", **kw) -> tuple[x509.Certificate, object]:
    """A certificate the demo GCA issued (trusted, registered nowhere) and its private key."""
    ca_cert, ca_key = gca(kit)
    private = key(key_kind)
    kw.setdefault("key_usage", usage())
    return build(name(cn), private.public_key(), ca_cert.subject, ca_key, **kw), private


def self_signed(cn: str, key_kind: str = "rsa2048", **kw) -> tuple[x509.Certificate, object]:
    private = key(key_kind)
    kw.setdefault("key_usage", usage())
    return build(name(cn), private.public_key(), name(cn), private, **kw), private


def with_certificates(data: bytes, certificates: list[bytes], *, drop_own: bool = False) -> bytes:
    """The outermost SignedData of `data` with DER `certificates` carried beside (or instead of) its own."""
    sd = cms.ContentInfo.load(data)["content"]
    own = [] if drop_own else list(sd["certificates"] or [])
    carried = own + [cms.CertificateChoices.load(c) for c in certificates]
    fields = {"version": sd["version"].native, "digest_algorithms": sd["digest_algorithms"],
              "encap_content_info": sd["encap_content_info"], "signer_infos": sd["signer_infos"]}
    if carried:
        fields["certificates"] = sorted_set(carried)
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(fields)}).dump(force=True)


def choice(cert: x509.Certificate) -> bytes:
    return cms.CertificateChoices({"certificate": cms.Certificate.load(der(cert))}).dump()


def head_signed_by(kit: Kit, cert: x509.Certificate, private, *, extra: list[x509.Certificate] = ()) -> bytes:
    """A whole envelope whose approval layer has the real accountant and `cert` as the head.

    A key that cannot make an RSA signature (EC, Ed25519) signs with the accountant's key:
    the signer check refuses such a certificate before the signature is looked at.
    """
    signing_key = private if isinstance(private, rsa.RSAPrivateKey) else kit.pair(A, "accountant")[1]
    approved = custom_signed(kit.payload(A), [kit.signer(A, "accountant"), Signer(cert, signing_key)],
                             extra_certs=list(extra))
    return kit.wrap(approved)


def released_by(kit: Kit, cert: x509.Certificate, private, *, extra: list[x509.Certificate] = ()) -> bytes:
    """A whole envelope (valid inner layers) released by `cert`."""
    signing_key = private if isinstance(private, rsa.RSAPrivateKey) else kit.pair(A, "releaser")[1]
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [Signer(cert, signing_key)], extra_certs=list(extra))
