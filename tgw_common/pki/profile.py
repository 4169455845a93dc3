"""What a certificate must be to take part in a TPE/1 signature, judged with cryptography alone.

pyhanko-certvalidator answers one question (is there a valid path from this certificate to
an anchor?) and answers everything else with a handful of exception types whose text is
the only difference. The faults an agency's certificate can have are judged here first,
each with its own reason code: the signer's own profile (a CA, the wrong key usage, a weak
key, a critical extension nobody here understands) and the soundness of every certificate
the SignedData carries (altered, duplicated, looping, unrelated to any signer). A carried
certificate plays a part in the judgement or the envelope is refused: nothing an agency
sends is silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID

from ..reasons import Layer, Refusal
from .certs import common_name, fingerprint

MIN_RSA_BITS = 2048
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
# The extensions RFC 5280 path validation (and so pyhanko-certvalidator) acts on; anything
# else marked critical must make the certificate unusable (RFC 5280 4.2).
UNDERSTOOD_CRITICAL = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.ISSUER_ALTERNATIVE_NAME, ExtensionOID.NAME_CONSTRAINTS,
    ExtensionOID.CERTIFICATE_POLICIES, ExtensionOID.POLICY_MAPPINGS, ExtensionOID.POLICY_CONSTRAINTS,
    ExtensionOID.INHIBIT_ANY_POLICY, ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
})


def _cn(cert: x509.Certificate) -> str:
    return f'"{common_name(cert.subject)}"'


def key_problem(cert: x509.Certificate) -> str | None:
    """Why the certificate's key is too weak or of a type outside the allow-list, or None.

    A key type cryptography cannot load at all is not judged here: the signer check names it
    UNSUPPORTED_ALGORITHM, and as a CA it cannot verify anything.
    """
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= MIN_RSA_BITS else f"an RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})"
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = key.curve.name
        return None if name in ALLOWED_CURVES else f"an EC key on {name} (allowed: {', '.join(sorted(ALLOWED_CURVES))})"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    return f"a {type(key).__name__.removeprefix('_')} key, a type outside the allow-list"


def check_strength(cert: x509.Certificate, layer: Layer) -> None:
    problem = key_problem(cert)
    if problem:
        raise Refusal("CERT_WEAK_KEY", layer, f"{_cn(cert)} has {problem}")


def check_critical_extensions(cert: x509.Certificate, layer: Layer) -> None:
    unknown = sorted(e.oid.dotted_string for e in cert.extensions if e.critical and e.oid not in UNDERSTOOD_CRITICAL)
    if unknown:
        raise Refusal("CERT_CRITICAL_EXTENSION", layer,
                      f"{_cn(cert)} has critical extension(s) the gateway does not understand: {', '.join(unknown)}")


def ca_problem(cert: x509.Certificate) -> str | None:
    """Why the certificate is a CA's (and so may not sign a payment), or None."""
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "basicConstraints CA:TRUE"
    except x509.ExtensionNotFound:
        pass
    usage = _key_usage(cert)
    if usage is not None and (usage.key_cert_sign or usage.crl_sign):
        return "keyUsage keyCertSign/cRLSign"
    return None


def usage_problem(cert: x509.Certificate) -> str | None:
    """Why the certificate's key usage does not allow signing, or None."""
    usage = _key_usage(cert)
    if usage is None:
        return "no keyUsage extension"
    if not (usage.digital_signature or usage.content_commitment):
        return "keyUsage has neither digitalSignature nor nonRepudiation"
    return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def signing_problem(cert: x509.Certificate) -> tuple[str, str] | None:
    """(reason code, why) when the certificate may not sign for TPE/1; for `registry add` too."""
    try:
        cert.extensions  # noqa: B018 (parsed here so a damaged one is named, not raised later)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        return "CERT_MALFORMED", f"its extensions do not parse: {exc}"
    if cert.issuer == cert.subject:
        return "CERT_SELF_SIGNED", "it is self-signed"
    if (problem := key_problem(cert)) is not None:
        return "CERT_WEAK_KEY", f"it has {problem}"
    unknown = [e.oid.dotted_string for e in cert.extensions if e.critical and e.oid not in UNDERSTOOD_CRITICAL]
    if unknown:
        return "CERT_CRITICAL_EXTENSION", f"critical extension(s) not understood: {', '.join(sorted(unknown))}"
    if (problem := ca_problem(cert)) is not None:
        return "CERT_IS_CA", f"it is a CA certificate ({problem})"
    if (problem := usage_problem(cert)) is not None:
        return "CERT_KEY_USAGE", f"it is not for signing ({problem})"
    return None


def check_signer(cert: x509.Certificate, layer: Layer) -> None:
    """The signer's own certificate, before any path is built."""
    found = signing_problem(cert)
    if found is not None:
        code, why = found
        raise Refusal(code, layer, f"{_cn(cert)}: {why}")


# --------------------------------------------------------------------- carried certificates


def check_carried(certs: list[x509.Certificate], layer: Layer, *, issuers: Iterable[x509.Certificate],
                  max_depth: int) -> None:
    """Every certificate the SignedData carries, before any is used: none twice, none
    altered, none of a weak key or with a critical extension not understood, no loops and no
    issuer chain longer than the path may be."""
    seen: set[str] = set()
    for cert in certs:
        fp = fingerprint(cert)
        if fp in seen:
            raise Refusal("CERT_DUPLICATE", layer, f"{_cn(cert)} is carried more than once")
        seen.add(fp)
    known = [*issuers, *certs]
    for cert in certs:
        _check_signed_by_issuer(cert, known, layer)
        check_strength(cert, layer)
        check_critical_extensions(cert, layer)
    _check_links(certs, layer, max_depth)


def _check_signed_by_issuer(cert: x509.Certificate, known: list[x509.Certificate], layer: Layer) -> None:
    """A certificate whose named issuer is at hand must verify under it: otherwise its bytes
    were changed after issue (a changed serial, validity or extension)."""
    candidates = [c for c in known if c.subject == cert.issuer]
    if not candidates:
        return  # no issuer to judge by: the path validation names it untrusted
    for issuer in candidates:
        try:
            cert.verify_directly_issued_by(issuer)
            return
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            continue
    raise Refusal("CERT_ALTERED", layer,
                  f"{_cn(cert)}: its signature does not verify under its issuer {_cn(candidates[0])}")


def _check_links(certs: list[x509.Certificate], layer: Layer, max_depth: int) -> None:
    """Follow issuer names through the carried certificates: a loop, or a chain deeper than
    any allowed path, is refused before path building has to explore it."""
    by_subject: dict[bytes, list[x509.Certificate]] = {}
    for c in certs:
        by_subject.setdefault(c.subject.public_bytes(), []).append(c)

    def parents(c: x509.Certificate) -> list[x509.Certificate]:
        if c.issuer == c.subject:
            return []
        return by_subject.get(c.issuer.public_bytes(), [])

    height: dict[str, int] = {}  # certificates in the longest issuer chain from here up
    on_trail: set[str] = set()

    def climb(cert: x509.Certificate) -> int:
        fp = fingerprint(cert)
        if fp in height:
            return height[fp]
        on_trail.add(fp)
        tallest = 0
        for parent in parents(cert):
            if fingerprint(parent) in on_trail:
                raise Refusal("CERT_LOOP", layer, f"{_cn(cert)} and {_cn(parent)} issue each other in a loop")
            tallest = max(tallest, climb(parent))
        on_trail.discard(fp)
        height[fp] = tallest + 1
        if height[fp] > max_depth:
            raise Refusal("CERT_CHAIN_TOO_LONG", layer, f"{_cn(cert)}: the carried certificates chain deeper "
                                                        f"than {max_depth} (trust.max_chain_depth)")
        return height[fp]

    for cert in certs:
        climb(cert)


def foreign_root(cert: x509.Certificate, carried: list[x509.Certificate], anchors: list[x509.Certificate],
                 max_depth: int) -> x509.Certificate | None:
    """The self-signed root the carried certificates lead `cert` to, when it is not an anchor."""
    anchor_prints = {fingerprint(a) for a in anchors}
    current = cert
    for _ in range(max_depth):
        parent = next((c for c in carried if c.subject == current.issuer and c is not current), None)
        if parent is None:
            return None
        if parent.issuer == parent.subject:
            return None if fingerprint(parent) in anchor_prints else parent
        current = parent
    return None


def check_all_used(carried: list[x509.Certificate], used: set[str], layer: Layer) -> None:
    """After every signer is judged: each carried certificate was a signer's or on a path."""
    spki = {}
    for cert in carried:
        if fingerprint(cert) in used:
            spki[_public_key_bytes(cert)] = cert
    for cert in carried:
        if fingerprint(cert) in used:
            continue
        twin = spki.get(_public_key_bytes(cert))
        if twin is not None:
            raise Refusal("CERT_ALTERED", layer,
                          f"{_cn(cert)} carries the key of {_cn(twin)} with other bytes (an altered copy)")
        raise Refusal("CERT_SUPERFLUOUS", layer,
                      f"{_cn(cert)} is carried but is neither a signer's certificate nor on a signer's path")


def _public_key_bytes(cert: x509.Certificate) -> bytes:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (UnsupportedAlgorithm, ValueError):
        return b"unloadable:" + fingerprint(cert).encode()


# --------------------------------------------------------------------- the trust configuration


def authority_problem(cert: x509.Certificate) -> str | None:
    """Why a configured anchor or intermediate cannot issue certificates, or None."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "not a CA certificate (no basicConstraints)"
    if not bc.ca:
        return "not a CA certificate (basicConstraints CA:FALSE)"
    usage = _key_usage(cert)
    if usage is not None and not usage.key_cert_sign:
        return "its keyUsage lacks keyCertSign"
    return None
