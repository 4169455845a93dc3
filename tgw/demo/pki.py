"""A demo PKI shaped like Taiwan's: a government root, a GCA-like intermediate, the
treasury's envelope and receipt certificates, and per agency an accountant, a head, a releaser and a
delegate, plus the awkward cases tests need (a revoked, an expired, a wrong-usage and an
untrusted certificate). docs/pki-demo.md lists every file written.

Not for production: keys are written unencrypted so demos and tests can use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tgw_common.pki.certs import load_certificate_file, load_private_key_file
from tgw_common.spool import write_atomic

DEMO_AGENCIES = (
    ("A10001", "財政部示範機關"),
    ("A10002", "內政部示範機關"),
    ("A10003", "教育部示範機關"),
    ("A10004", "交通部示範機關"),
    ("A10005", "衛生福利部示範機關"),
    ("A10006", "經濟部示範機關"),
    ("A10007", "法務部示範機關"),
    ("A10008", "文化部示範機關"),
    ("A10009", "勞動部示範機關"),
)
ROLES = ("accountant", "head", "releaser")
ROLE_TITLES = {"accountant": "主辦會計", "head": "機關長官", "releaser": "放行人", "delegate": "代理人"}


@dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(cn: str, org: str = "Demo Government", unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _usage(*, sign: bool = False, encipher: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=sign, key_encipherment=encipher, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


def issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: Issuer | None,
    *,
    not_before: datetime,
    not_after: datetime,
    usage: x509.KeyUsage,
    ca_path_length: int | None = -1,
    serial: int | None = None,
) -> x509.Certificate:
    """One certificate; `issuer=None` makes it self-signed; ca_path_length=-1 means an end entity."""
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(usage, critical=True)
    )
    is_ca = ca_path_length != -1
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length if is_ca else None),
                                    critical=True)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return builder.sign(signer_key, hashes.SHA256())


def make_crl(
    issuer: Issuer, revoked: list[tuple[int, datetime]], *, this_update: datetime, next_update: datetime,
    number: int,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(issuer.key, hashes.SHA256())


def _write_pair(folder: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    write_atomic(folder / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(folder / f"{stem}.key", pem)
    (folder / f"{stem}.key").chmod(0o600)


def build_demo_pki(out: Path, *, agencies: int = 3, key_size: int = 2048, crl_days: int = 7,
                   now: datetime | None = None) -> dict:
    """Write the demo PKI into `out`; return a summary (also written as out/pki.json)."""
    if not 1 <= agencies <= len(DEMO_AGENCIES):
        raise ValueError(f"--agencies must be between 1 and {len(DEMO_AGENCIES)}")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out = Path(out)
    start = now - timedelta(days=30)
    gca = _write_authorities(out, key_size, start, now)
    people = _People(gca, key_size, start, now)

    registry: list[dict] = []
    summary: dict = {"created_at": now.isoformat(), "agencies": {}, "extra": {}}
    for code, name in DEMO_AGENCIES[:agencies]:
        summary["agencies"][code] = {"name": name}
        registry += _write_agency(out / "agencies" / code, people, code, name)
    revoked_cert, awkward = _write_awkward_cases(out / "extra", people)
    registry += awkward
    summary["extra"] = dict(AWKWARD_CASES)

    state = {"gca": [[revoked_cert.serial_number, (now - timedelta(hours=1)).isoformat()]], "root": [],
             "number": 0}
    write_atomic(out / "crl" / "state.json", json.dumps(state, indent=2).encode())
    issue_crls(out, days=crl_days, now=now)

    write_atomic(out / "registry.yaml", yaml.safe_dump({"signers": registry}, allow_unicode=True,
                                                       sort_keys=False).encode())
    write_atomic(out / "pki.json", json.dumps(summary, ensure_ascii=False, indent=2).encode())
    return summary


def _write_authorities(out: Path, key_size: int, start: datetime, now: datetime) -> Issuer:
    """The root, the GCA it certifies, the treasury's envelope and receipt certificates; returns the GCA."""
    root_key = _key(key_size)
    root = Issuer(issue(_name("Demo Government Root CA 示範政府憑證總管理中心"), root_key, None,
                        not_before=start, not_after=now + timedelta(days=3650), usage=_usage(ca=True),
                        ca_path_length=1), root_key)
    gca_key = _key(key_size)
    gca = Issuer(issue(_name("Demo GCA 示範政府憑證管理中心"), gca_key, root,
                       not_before=start, not_after=now + timedelta(days=1825), usage=_usage(ca=True),
                       ca_path_length=0), gca_key)
    _write_pair(out, "root", root.cert, root.key)
    _write_pair(out, "gca", gca.cert, gca.key)

    treasury_key = _key(key_size)
    treasury = issue(_name("國庫署電子支付信封 Treasury e-Payment Envelope", "National Treasury Administration"),
                     treasury_key, gca, not_before=start, not_after=now + timedelta(days=730),
                     usage=_usage(encipher=True))
    _write_pair(out / "treasury", "envelope", treasury, treasury_key)
    # The receipts' signer: a key of its own, so the envelope key never signs anything.
    _write_receipt_pair(out, gca, key_size, start, now)
    return gca


def _write_receipt_pair(out: Path, gca: Issuer, key_size: int, start: datetime, now: datetime) -> None:
    receipt_key = _key(key_size)
    receipt = issue(_name("國庫署電子支付收據 Treasury e-Payment Receipts", "National Treasury Administration"),
                    receipt_key, gca, not_before=start, not_after=now + timedelta(days=730), usage=_usage(sign=True))
    _write_pair(out / "treasury", "receipt", receipt, receipt_key)


def ensure_receipt_certificate(out: Path) -> bool:
    """Issue treasury/receipt.* in a demo PKI made before receipts existed; True if it did."""
    out = Path(out)
    if (out / "treasury" / "receipt.pem").is_file() and (out / "treasury" / "receipt.key").is_file():
        return False
    gca = Issuer(load_certificate_file(out / "gca.pem"), load_private_key_file(out / "gca.key"))
    now = datetime.now(UTC).replace(microsecond=0)
    _write_receipt_pair(out, gca, gca.key.key_size, now - timedelta(days=1), now)
    return True


class _People:
    """Issues agency staff certificates: by the GCA, valid from `start` for two years, unless told otherwise."""

    def __init__(self, gca: Issuer, key_size: int, start: datetime, now: datetime) -> None:
        self.gca, self.key_size, self.start, self.now = gca, key_size, start, now

    def issue(self, code: str, name: str, role: str, *, issuer: Issuer | None = None,
              not_before: datetime | None = None, not_after: datetime | None = None,
              usage: x509.KeyUsage | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = _key(self.key_size)
        cert = issue(_name(f"{name} {ROLE_TITLES.get(role.split('-')[0], role)} {role}", "Demo Government", code),
                     key, issuer or self.gca, not_before=not_before or self.start,
                     not_after=not_after or self.now + timedelta(days=730), usage=usage or _usage(sign=True))
        return cert, key


def _write_agency(folder: Path, people: _People, code: str, name: str) -> list[dict]:
    """An agency's accountant, head, releaser and delegate; returns their registry entries."""
    registry = []
    for role in ROLES:
        cert, key = people.issue(code, name, role)
        _write_pair(folder, role, cert, key)
        registry.append({"certificate": f"agencies/{code}/{role}.pem", "agency": code, "role": role})
    cert, key = people.issue(code, name, "delegate")
    _write_pair(folder, "delegate", cert, key)
    now = people.now
    registry.append({"certificate": f"agencies/{code}/delegate.pem", "agency": code, "role": "accountant",
                     "delegate": True, "from": (now - timedelta(days=1)).isoformat(),
                     "until": (now + timedelta(days=30)).isoformat()})
    return registry


AWKWARD_CASES = (
    ("revoked-releaser", "in the registry, revoked in crl/gca.crl"),
    ("expired-accountant", "in the registry, expired 35 days ago"),
    ("wrong-usage-head", "keyUsage keyEncipherment only (registry add refuses it)"),
    ("untrusted-releaser", "in the registry, issued by a CA outside the trust anchors"),
    ("unregistered-releaser", "valid certificate, not in the registry"),
)


def _write_awkward_cases(extra: Path, people: _People) -> tuple[x509.Certificate, list[dict]]:
    """The certificates tests need refused, all of the first agency so one registry covers them.

    Returns the certificate to revoke and the registry entries of those that are registered.
    """
    code, name = DEMO_AGENCIES[0]
    now, start = people.now, people.start
    registry = []
    revoked_cert, key = people.issue(code, name, "releaser")
    _write_pair(extra, "revoked-releaser", revoked_cert, key)
    registry.append({"certificate": "extra/revoked-releaser.pem", "agency": code, "role": "releaser"})
    expired_cert, key = people.issue(code, name, "accountant", not_before=now - timedelta(days=400),
                                     not_after=now - timedelta(days=35))
    _write_pair(extra, "expired-accountant", expired_cert, key)
    registry.append({"certificate": "extra/expired-accountant.pem", "agency": code, "role": "accountant"})
    wrong_usage, key = people.issue(code, name, "head", usage=_usage(encipher=True))
    _write_pair(extra, "wrong-usage-head", wrong_usage, key)
    rogue_key = _key(people.key_size)
    rogue = Issuer(issue(_name("Rogue CA"), rogue_key, None, not_before=start, not_after=now + timedelta(days=3650),
                         usage=_usage(ca=True), ca_path_length=0), rogue_key)
    untrusted, key = people.issue(code, name, "releaser", issuer=rogue)
    _write_pair(extra, "untrusted-releaser", untrusted, key)
    registry.append({"certificate": "extra/untrusted-releaser.pem", "agency": code, "role": "releaser"})
    unregistered, key = people.issue(code, name, "releaser")
    _write_pair(extra, "unregistered-releaser", unregistered, key)
    return revoked_cert, registry


def issue_crls(out: Path, *, days: int = 7, revoke: list[Path] = (), now: datetime | None = None) -> list[Path]:
    """Issue fresh CRLs for the demo GCA and root (the root's covers the GCA), revoking more if asked."""
    out = Path(out)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    state = json.loads((out / "crl" / "state.json").read_text())
    gca = Issuer(load_certificate_file(out / "gca.pem"), load_private_key_file(out / "gca.key"))
    root = Issuer(load_certificate_file(out / "root.pem"), load_private_key_file(out / "root.key"))
    for pem in revoke:
        cert = load_certificate_file(pem)
        which = "root" if cert.issuer == root.cert.subject else "gca"
        if cert.issuer not in (root.cert.subject, gca.cert.subject):
            raise ValueError(f"{pem}: not issued by the demo GCA or root")
        if cert.serial_number not in [s for s, _ in state[which]]:
            state[which].append([cert.serial_number, now.isoformat()])
    state["number"] += 1
    written = []
    for which, issuer in (("gca", gca), ("root", root)):
        revoked = [(serial, datetime.fromisoformat(when)) for serial, when in state[which]]
        crl = make_crl(issuer, revoked, this_update=now - timedelta(minutes=5), next_update=now + timedelta(days=days),
                       number=state["number"])
        written.append(write_atomic(out / "crl" / f"{which}.crl", crl.public_bytes(serialization.Encoding.DER)))
    write_atomic(out / "crl" / "state.json", json.dumps(state, indent=2).encode())
    return written
