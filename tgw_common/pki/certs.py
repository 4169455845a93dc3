"""Loading certificates, keys and CRLs in either encoding, and naming them."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def load_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_certificate_file(path: Path) -> x509.Certificate:
    return load_certificate(Path(path).read_bytes())


def load_certificates_file(path: Path) -> list[x509.Certificate]:
    """A PEM bundle (several certificates) or a single DER certificate."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def load_private_key_file(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(data, password)
    return serialization.load_der_private_key(data, password)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: the registry's key. Hashed by the
    library over its own copy of the DER (it is asked a dozen times per envelope)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def issuer_der(cert: x509.Certificate) -> bytes:
    """The issuer Name's DER, as signer and recipient identifiers name it."""
    return cert.issuer.public_bytes()


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()
