"""A corpus of good and bad envelopes built with the `openssl` command line only, judged by the
real `tgw inner process` and by a real `tgw inner run`.

The inner zone is to be checked against such a corpus made by someone else with openssl,
through its documented CLI and config only; this is our own. Every CMS layer comes from
`openssl cms` (and certificates from `openssl genpkey/req/x509`); payloads are zipped
with the `zip` command, or Python's zipfile where `zip` cannot make the flaw; documents
come from the demo generator and are edited as JSON. Byte-level damage (trailing bytes,
truncation, a flipped bit) is done to openssl's output files, as a careless or hostile
sender would. Each case names the exact reason code and layer the profile and
docs/reason-codes.md give for its flaw.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from shutil import which

import pytest

from tgw.demo.documents import encode
from tgw_common.documents import build_manifest

from .ikit import TGW, RunnerProc, Zone, cli, make_zone, numbered_documents, wait_until

pytestmark = pytest.mark.skipif(which("openssl") is None or which("zip") is None,
                                reason="needs the openssl and zip commands")

A, B = "A10001", "A10002"
OAEP = ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
PSS = ("-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32")
SECRET = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


class Builder:
    """Envelope layers made with `openssl cms`, one file per step in a work folder."""

    def __init__(self, pki: Path, work: Path) -> None:
        self.pki, self.work = pki, work
        self.treasury = pki / "treasury" / "envelope.pem"
        self.steps = 0
        self.number = 0
        self._shared: Path | None = None
        self._made: dict[str, tuple[Path, Path]] = {}
        self.good: Path | None = None
        self.good_payload: Path | None = None
        self.good_number = 0

    def openssl(self, *args: object, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["openssl", *map(str, args)], cwd=self.work, capture_output=True, text=True,
                                check=False)
        assert not check or result.returncode == 0, f"openssl {' '.join(map(str, args))}\n{result.stderr}"
        return result

    def out(self, what: str) -> Path:
        self.steps += 1
        return self.work / f"{self.steps:04d}-{what}"

    def make(self, what: str, *args: object) -> Path:
        """`openssl ARGS -out FILE`; returns FILE."""
        out = self.out(what)
        self.openssl(*args, "-out", out)
        return out

    def who(self, role: str, agency: str = A) -> tuple[Path, Path]:
        folder = self.pki / "agencies" / agency
        return folder / f"{role}.pem", folder / f"{role}.key"

    def extra(self, name: str) -> tuple[Path, Path]:
        return self.pki / "extra" / f"{name}.pem", self.pki / "extra" / f"{name}.key"

    # --- certificates made with openssl
    def issued(self, name: str, *, ca: str = "gca", key_usage: str = "critical,digitalSignature,nonRepudiation",
               ec: bool = False, basic: str = "critical,CA:FALSE") -> tuple[Path, Path]:
        """A fresh key (RSA, or EC P-256) and certificate; `ca` "gca" is the demo GCA (trusted;
        registered only where the zone's set-up says so), anything else a throwaway self-signed
        CA of that name outside the trust anchors."""
        if name in self._made:
            return self._made[name]
        if ca == "gca":
            ca_cert, ca_key = self.pki / "gca.pem", self.pki / "gca.key"
        else:
            ca_cert, ca_key = self.work / f"{ca}.pem", self.work / f"{ca}.key"
            if not ca_cert.exists():
                self.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", ca_key)
                self.openssl("req", "-x509", "-new", "-key", ca_key, "-subj", f"/C=TW/O=Throwaway/CN={ca}",
                             "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
                             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", ca_cert)
        key, csr, cert = (self.work / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = self.work / f"{name}.ext"
        ext.write_text(f"basicConstraints={basic}\nkeyUsage={key_usage}\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        keygen = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256") if ec else \
            ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        self.openssl("genpkey", *keygen, "-out", key)
        self.openssl("req", "-new", "-key", key, "-subj", f"/C=TW/O=Demo/OU={A}/CN={name}", "-out", csr)
        self.openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
                     str(0x7E000000 + len(self._made)), "-days", "30", "-extfile", ext, "-out", cert)
        self._made[name] = (cert, key)
        return cert, key

    def self_signed(self, name: str) -> tuple[Path, Path]:
        """`openssl req -x509` as a newcomer would run it: self-signed, openssl's default extensions."""
        if name not in self._made:
            key, cert = self.work / f"{name}.key", self.work / f"{name}.pem"
            self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj",
                         f"/C=TW/O=Demo/OU={A}/CN={name}", "-days", "30", "-out", cert)
            self._made[name] = (cert, key)
        return self._made[name]

    # --- CMS layers
    def sign(self, content: Path, signers: list[tuple[Path, Path]], *, md: str = "sha256", attached: bool = True,
             per_signer: tuple[str, ...] = (), opts: tuple[str, ...] = (), outform: str = "DER") -> Path:
        out = self.out("signed.der")
        args: list[object] = ["cms", "-sign", "-binary", "-md", md, "-in", content, "-outform", outform, "-out", out]
        if attached:
            args.append("-nodetach")
        for cert, key in signers:
            args += ["-signer", cert, "-inkey", key, *per_signer]
        self.openssl(*args, *opts)
        return out

    def resign(self, signed: Path, signer: tuple[Path, Path], *, md: str = "sha256",
               opts: tuple[str, ...] = ()) -> Path:
        out = self.out("resigned.der")
        self.openssl("cms", "-resign", "-binary", "-nodetach", "-md", md, "-inform", "DER", "-in", signed,
                     "-signer", signer[0], "-inkey", signer[1], *opts, "-outform", "DER", "-out", out)
        return out

    def approve(self, payload: Path, roles: tuple = ("accountant", "head"), *, agency: str = A, md: str = "sha256",
                opts: tuple[str, ...] = ()) -> Path:
        """The accountant signs, each further role adds a signature with -resign (two machines)."""
        who = [r if isinstance(r, tuple) else self.who(r, agency) for r in roles]
        signed = self.sign(payload, who[:1], md=md, opts=opts)
        for signer in who[1:]:
            signed = self.resign(signed, signer, md=md, opts=opts)
        return signed

    def seal(self, content: Path, recipients: list[tuple[Path, tuple[str, ...]]] | None = None, *,
             cipher: str = "-aes-256-cbc", opts: tuple[str, ...] = (), outform: str = "DER") -> Path:
        out = self.out("sealed.der")
        args: list[object] = ["cms", "-encrypt", "-binary", cipher, "-in", content, "-outform", outform, "-out", out]
        for cert, keyopts in recipients if recipients is not None else [(self.treasury, OAEP)]:
            args += ["-recip", cert, *keyopts]
        self.openssl(*args, *opts)
        return out

    def release(self, sealed: Path, releaser: tuple[Path, Path] | None = None, **kw) -> Path:
        return self.sign(sealed, [releaser or self.who("releaser")], **kw)

    def envelope(self, payload: Path | None = None) -> Path:
        return self.release(self.seal(self.approve(payload or self.payload())))

    def remember_good(self) -> Path:
        """The profile's four commands verbatim; later cases replay its id and vouchers."""
        self.good_payload = self.payload()
        self.good_number = self.number
        self.good = self.envelope(self.good_payload)
        return self.good

    @property
    def approved(self) -> Path:
        """One approval layer shared by the cases that break only an outer layer."""
        if self._shared is None:
            self._shared = self.approve(self.payload())
        return self._shared

    # --- payloads: demo documents, edited as JSON, zipped with the zip command
    def payload(self, *, agency: str = A, number: int | None = None, envelope_id: str | None = None,
                edit: Callable[[list[dict]], None] | None = None, raw: dict[int, bytes] | None = None,
                manifest: Callable[[dict], None] | None = None, extra: dict[str, bytes] | None = None,
                links: dict[str, str] | None = None, entries: list[tuple[str, bytes]] | None = None,
                manifest_bytes: bytes | None = None, folders: tuple[str, ...] = (),
                zip_opts: tuple[str, ...] = ()) -> Path:
        """A payload ZIP of two payment vouchers whose numbers no other payload shares.

        `edit` changes the parsed documents, `raw` replaces a document's bytes (both before
        the manifest is computed); `manifest` changes the manifest afterwards; `extra` adds
        files, `folders` empty folders, `links` symbolic links (zip -y), `zip_opts` options of
        the zip command, and `entries` (name, bytes) pairs written with Python's zipfile, for
        names the zip command will not store.
        """
        if number is None:
            self.number += 1
            number = self.number
        folder = self.work / f"payload-{self.steps:04d}-{number}"
        self.steps += 1
        docs = [[p, k, json.loads(b)] for p, k, b in
                numbered_documents(agency, 2, number=number, kinds=["payment_voucher"])]
        if edit:
            edit([d[2] for d in docs])
        files = [(p, k, encode(d)) for p, k, d in docs]
        for i, data in (raw or {}).items():
            files[i] = (files[i][0], files[i][1], data)
        content = build_manifest(envelope_id or f"{agency}-OSSL-{number:06d}", agency,
                                 datetime.now(UTC).replace(microsecond=0), files)
        if manifest:
            manifest(content)
        for path, _kind, data in files:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
        (folder / "manifest.json").write_bytes(
            manifest_bytes if manifest_bytes is not None else json.dumps(content, ensure_ascii=False).encode())
        for name, data in (extra or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        for name, target in (links or {}).items():
            os.symlink(target, folder / name)
        for name in folders:
            (folder / name).mkdir()
        out = self.out("payload.zip")
        names = ["manifest.json", "documents", *(extra or {}), *(links or {}), *folders]
        subprocess.run(["zip", "-q", "-X", "-r", *(["-y"] if links else []), *zip_opts, str(out), *names],
                       cwd=folder, check=True)
        if entries:
            with zipfile.ZipFile(out, "a") as archive, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" is the point of one case
                for name, data in entries:
                    archive.writestr(name, data)
        return out


# ------------------------------------------------------------------------------- helpers


def wrap(b: Builder, approved: Path) -> Path:
    """Seal and release an approval layer: good outer layers around a bad inner one."""
    return b.release(b.seal(approved))


def same_cert_twice(b: Builder) -> Path:
    first = b.sign(b.payload(), [b.who("accountant")])
    return b.resign(first, b.who("accountant"), opts=("-nocerts",))  # the certificate is in already


def without_manifest(b: Builder) -> Path:
    archive = b.payload()
    subprocess.run(["zip", "-q", "-d", str(archive), "manifest.json"], check=True)
    return archive


def damaged_certificate(old: bytes, new: bytes):
    """openssl's approval layer with bytes of a carried certificate changed: the signatures
    over the attributes still verify, the certificate itself is broken."""
    def build(b: Builder) -> Path:
        data = b.approve(b.payload()).read_bytes()
        assert data.count(old) >= 1
        return wrap(b, written(b, data.replace(old, new, 1)))
    return build


def release_cert_altered(b: Builder) -> Path:
    """One byte of the serial number changed in the releaser's carried certificate, outside
    every signature of the envelope: the releaser is then found by the registry's copy."""
    data = b.envelope().read_bytes()
    pem = b.who("releaser")[0].read_text()
    cert = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem.encode(), capture_output=True,
                          check=True).stdout
    from asn1crypto import x509 as asn1_x509

    serial = asn1_x509.Certificate.load(cert)["tbs_certificate"]["serial_number"].contents
    last = data.index(cert) + cert.index(serial) + len(serial) - 1
    changed = bytearray(data)
    changed[last] ^= 0x01
    return written(b, bytes(changed))


def written(b: Builder, data: bytes, what: str = "file.der") -> Path:
    out = b.out(what)
    out.write_bytes(data)
    return out


def flip(path: Path, at: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    return bytes(data)


def flip_last(path: Path) -> bytes:
    """The last byte of openssl's SignedData is in its last signature; of AuthEnvelopedData, in the tag."""
    return flip(path, len(path.read_bytes()) - 1)


def release_content_changed(b: Builder) -> bytes:
    sealed = b.seal(b.approved)
    envelope = b.release(sealed)
    return flip(envelope, envelope.read_bytes().find(sealed.read_bytes()) + 200)


def approval_content_changed(b: Builder) -> Path:
    payload = b.payload()
    approved = b.approve(payload)
    return wrap(b, written(b, flip(approved, approved.read_bytes().find(payload.read_bytes()) + 40)))


def set_payee(field: str, value):
    def edit(docs: list[dict]) -> None:
        docs[0]["payees"][0][field] = value
    return edit


def break_total(docs: list[dict]) -> None:
    docs[0]["payees"][0]["amount"] = int(docs[0]["payees"][0]["amount"]) + 1


def over_limit(docs: list[dict]) -> None:
    docs[0]["payees"] = docs[0]["payees"][:1]
    docs[0]["payees"][0]["amount"] = docs[0]["total_amount"] = 100_000_001


def same_voucher(docs: list[dict]) -> None:
    docs[1]["voucher_no"] = docs[0]["voucher_no"]


def bad_json(b: Builder) -> Path:
    return b.payload(raw={1: b'{"kind": "payment_voucher", "voucher_no": '})


def set_manifest(**changes):
    def edit(m: dict) -> None:
        for key, value in changes.items():
            target = m
            *parents, last = key.split("__")
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            target[last] = value
    return edit


def manifest_duplicate_key(b: Builder) -> Path:
    """The agency twice: some JSON readers take the first, Python the last."""
    probe = b.payload()
    with zipfile.ZipFile(probe) as z:
        text = z.read("manifest.json").decode()
    doubled = text.replace('"agency": "A10001"', '"agency": "A10002", "agency": "A10001"', 1)
    assert doubled != text
    return b.payload(number=b.number, manifest_bytes=doubled.encode())


def manifest_with_bom(b: Builder) -> Path:
    probe = b.payload()
    with zipfile.ZipFile(probe) as z:
        text = z.read("manifest.json")
    return b.payload(number=b.number, manifest_bytes=b"\xef\xbb\xbf" + text)


def smime_release(b: Builder, sealed: Path) -> Path:
    """The older `openssl smime` command writes PKCS #7 SignedData, which is CMS v1."""
    out = b.out("smime.der")
    cert, key = b.who("releaser")
    b.openssl("smime", "-sign", "-binary", "-nodetach", "-md", "sha256", "-in", sealed, "-signer", cert,
              "-inkey", key, "-outform", "DER", "-out", out)
    return out


def compressed_seal(b: Builder) -> Path | None:
    out = b.out("compressed.der")
    result = b.openssl("cms", "-compress", "-binary", "-in", b.approved, "-outform", "DER", "-out", out,
                       check=False)
    if result.returncode != 0:
        assert "unsupported compression" in result.stderr, result.stderr
        return None  # this openssl was built without zlib
    return b.release(out)


def detached_approval(b: Builder) -> Path:
    return b.sign(b.payload(), [b.who("accountant"), b.who("head")], attached=False)


# ------------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    name: str
    code: str | None  # None: accepted
    layer: str | None
    build: Callable[[Builder], Path | bytes | None]  # None: this openssl cannot make it (skipped)
    status: str = ""  # "loaded" / "refused" / "duplicate"; derived from `code` if empty
    after_good: bool = False  # judged after "good" was loaded (replay, duplicate voucher, copy)

    @property
    def expected_status(self) -> str:
        return self.status or ("loaded" if self.code is None else "refused")


CASES = [
    # --- accepted: the profile's own commands and the variations it allows
    Case("good", None, None, lambda b: b.remember_good()),
    Case("aes128_cbc", None, None, lambda b: b.release(b.seal(b.approve(b.payload()), cipher="-aes-128-cbc"))),
    Case("aes256_gcm", None, None, lambda b: b.release(b.seal(b.approve(b.payload()), cipher="-aes-256-gcm"))),
    Case("extra_recipients_incl_treasury", None, None, lambda b: b.release(b.seal(
        b.approve(b.payload()), [(b.who("releaser")[0], ()), (b.issued("ec-recipient", ec=True, key_usage=
                                 "critical,keyAgreement")[0], ()), (b.treasury, OAEP)],
        opts=("-pwri_password", "agency-secret", "-secretkey", SECRET, "-secretkeyid", "0a0b")))),
    Case("treasury_by_ski", None, None, lambda b: b.release(b.seal(b.approve(b.payload()), opts=("-keyid",)))),
    Case("signers_by_ski_no_certs", None, None, lambda b: b.release(
        b.seal(b.approve(b.payload(), opts=("-keyid",))), opts=("-keyid", "-nocerts"))),
    Case("sha512_pss", None, None, lambda b: b.release(b.seal(b.resign(b.sign(
        b.payload(), [b.who("accountant")], md="sha512", per_signer=PSS), b.who("head"), md="sha512")),
        md="sha384", per_signer=PSS)),
    Case("two_signers_one_command", None, None, lambda b: wrap(
        b, b.sign(b.payload(), [b.who("accountant"), b.who("head")]))),
    Case("delegate_and_head", None, None, lambda b: wrap(b, b.approve(b.payload(), ("delegate", "head")))),
    Case("manifest_with_bom", None, None, lambda b: b.envelope(manifest_with_bom(b))),
    Case("release_cades", None, None, lambda b: b.release(b.seal(b.approve(b.payload())), opts=("-cades",))),
    Case("release_certfile_chain", None, None, lambda b: b.release(b.seal(b.approve(b.payload())), opts=(
        "-certfile", written(b, (b.pki / "gca.pem").read_bytes() + (b.pki / "root.pem").read_bytes(), "chain.pem")))),
    Case("release_by_openssl_smime", None, None, lambda b: smime_release(b, b.seal(b.approve(b.payload())))),
    Case("release_openssl_cert_registered", None, None, lambda b: b.release(
        b.seal(b.approve(b.payload())), b.issued("registered-releaser"))),
    Case("zip64", None, None, lambda b: b.envelope(b.payload(zip_opts=("-fz",)))),
    # --- layer 1, release
    Case("release_ber_stream", "MALFORMED_DER", "release", lambda b: b.release(b.seal(b.approved), opts=("-stream",))),
    Case("release_detached", "CONTENT_MISSING", "release", lambda b: b.release(b.seal(b.approved), attached=False)),
    Case("release_noattr", "SIGNED_ATTRS_MISSING", "release", lambda b: b.release(b.seal(b.approved),
                                                                                   opts=("-noattr",))),
    Case("release_sha1", "UNSUPPORTED_ALGORITHM", "release", lambda b: b.release(b.seal(b.approved), md="sha1")),
    Case("release_two_signers", "SIGNER_COUNT", "release", lambda b: b.sign(
        b.seal(b.approved), [b.who("releaser"), b.who("accountant")])),
    Case("release_by_accountant", "SIGNER_WRONG_ROLE", "release", lambda b: b.release(
        b.seal(b.approved), b.who("accountant"))),
    Case("release_other_agency", "SIGNER_WRONG_AGENCY", "release", lambda b: b.release(
        b.seal(b.approved), b.who("releaser", B))),
    Case("release_throwaway_ca", "CERT_UNTRUSTED", "release", lambda b: b.release(
        b.seal(b.approved), b.issued("stranger-releaser", ca="throwaway-ca"))),
    Case("release_throwaway_nocerts", "SIGNER_CERT_MISSING", "release", lambda b: b.release(
        b.seal(b.approved), b.issued("stranger-releaser", ca="throwaway-ca"), opts=("-nocerts",))),
    Case("release_gca_unregistered", "SIGNER_NOT_REGISTERED", "release", lambda b: b.release(
        b.seal(b.approved), b.issued("unregistered-releaser"))),
    Case("release_ecdsa", "UNSUPPORTED_ALGORITHM", "release", lambda b: b.release(
        b.seal(b.approved), b.issued("ec-releaser", ec=True, key_usage="critical,digitalSignature"))),
    Case("release_data_only", "WRONG_CONTENT_TYPE", "release", lambda b: b.make(
        "data.der", "cms", "-data_create", "-binary", "-in", b.seal(b.approved), "-outform", "DER")),
    Case("certs_only_p7", "CONTENT_MISSING", "release", lambda b: b.make(
        "certs.p7b", "crl2pkcs7", "-nocrl", "-certfile", b.who("releaser")[0], "-outform", "DER")),
    Case("pkcs12_file", "MALFORMED_DER", "release", lambda b: b.make(
        "releaser.p12", "pkcs12", "-export", "-in", b.who("releaser")[0], "-inkey", b.who("releaser")[1],
        "-passout", "pass:x")),
    Case("certificate_file", "MALFORMED_DER", "release", lambda b: b.make(
        "releaser.cer", "x509", "-in", b.who("releaser")[0], "-outform", "DER")),
    Case("release_revoked", "CERT_REVOKED", "release", lambda b: b.release(
        b.seal(b.approved), b.extra("revoked-releaser"))),
    Case("release_econtent_type", "WRONG_CONTENT_TYPE", "release", lambda b: b.release(
        b.seal(b.approved), opts=("-econtent_type", "1.2.840.113549.1.7.3"))),
    Case("release_pem", "MALFORMED_DER", "release", lambda b: b.release(b.seal(b.approved), outform="PEM")),
    Case("release_smime", "MALFORMED_DER", "release", lambda b: b.release(b.seal(b.approved), outform="SMIME")),
    Case("release_trailing_garbage", "TRAILING_DATA", "release", lambda b: b.envelope().read_bytes() + b"garbage"),
    Case("release_trailing_newline", "TRAILING_DATA", "release", lambda b: b.envelope().read_bytes() + b"\n"),
    Case("release_truncated", "MALFORMED_DER", "release", lambda b: b.envelope().read_bytes()[:3000]),
    Case("empty_file", "MALFORMED_DER", "release", lambda b: b""),
    Case("release_bad_signature", "BAD_SIGNATURE", "release", lambda b: flip_last(b.envelope())),
    Case("release_content_changed", "DIGEST_MISMATCH", "release", release_content_changed),
    Case("seal_outermost", "WRONG_CONTENT_TYPE", "release", lambda b: b.seal(b.release(b.approved))),
    # --- layer 2, seal
    Case("seal_ber_stream", "MALFORMED_DER", "seal", lambda b: b.release(b.seal(b.approved, opts=("-stream",)))),
    Case("seal_pkcs1v15", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, [(b.treasury, ())]))),
    Case("seal_oaep_sha1", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, [(b.treasury, ("-keyopt", "rsa_padding_mode:oaep"))]))),
    Case("seal_oaep_mgf1_sha1", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, [(b.treasury, (*OAEP, "-keyopt", "rsa_mgf1_md:sha1"))]))),
    Case("seal_oaep_label", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, [(b.treasury, (*OAEP, "-keyopt", "rsa_oaep_label:74726561737572"))]))),
    Case("seal_des_ede3_cbc", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, cipher="-des-ede3-cbc"))),
    Case("seal_camellia256_cbc", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, cipher="-camellia-256-cbc"))),
    Case("seal_aes256_ofb", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, cipher="-aes-256-ofb"))),
    Case("seal_aes128_gcm", "UNSUPPORTED_ALGORITHM", "seal", lambda b: b.release(
        b.seal(b.approved, cipher="-aes-128-gcm"))),
    Case("seal_other_recipient", "NOT_FOR_TREASURY", "seal", lambda b: b.release(
        b.seal(b.approved, [(b.who("releaser")[0], OAEP)]))),
    Case("seal_password_only", "NOT_FOR_TREASURY", "seal", lambda b: b.release(
        b.seal(b.approved, [], opts=("-pwri_password", "agency-secret")))),
    Case("seal_kek_only", "NOT_FOR_TREASURY", "seal", lambda b: b.release(
        b.seal(b.approved, [], opts=("-secretkey", SECRET, "-secretkeyid", "0a0b")))),
    Case("seal_compressed", "WRONG_CONTENT_TYPE", "seal", compressed_seal),
    Case("seal_digested", "WRONG_CONTENT_TYPE", "seal", lambda b: b.release(b.make(
        "digested.der", "cms", "-digest_create", "-binary", "-md", "sha256", "-in", b.approved, "-outform", "DER"))),
    Case("seal_encrypted_data", "WRONG_CONTENT_TYPE", "seal", lambda b: b.release(b.make(
        "encrypted.der", "cms", "-EncryptedData_encrypt", "-binary", "-aes-256-cbc", "-secretkey", SECRET,
        "-in", b.approved, "-outform", "DER"))),
    Case("no_seal", "WRONG_CONTENT_TYPE", "seal", lambda b: b.release(b.approved)),
    Case("no_seal_no_approval", "MALFORMED_DER", "seal", lambda b: b.release(b.payload())),
    Case("seal_pem", "MALFORMED_DER", "seal", lambda b: b.release(b.seal(b.approved, outform="PEM"))),
    Case("seal_trailing_garbage", "TRAILING_DATA", "seal", lambda b: b.release(
        written(b, b.seal(b.approved).read_bytes() + b"\0\0"))),
    Case("seal_truncated", "MALFORMED_DER", "seal", lambda b: b.release(
        written(b, b.seal(b.approved).read_bytes()[:-40]))),
    Case("seal_gcm_tag_changed", "DECRYPT_FAILED", "seal", lambda b: b.release(
        written(b, flip_last(b.seal(b.approved, cipher="-aes-256-gcm"))))),
    # --- layer 3, approval
    Case("approval_ber_stream", "MALFORMED_DER", "approval", lambda b: wrap(
        b, b.sign(b.payload(), [b.who("accountant"), b.who("head")], opts=("-stream",)))),
    Case("approval_detached", "CONTENT_MISSING", "approval", lambda b: wrap(b, detached_approval(b))),
    Case("approval_noattr", "SIGNED_ATTRS_MISSING", "approval", lambda b: wrap(
        b, b.sign(b.payload(), [b.who("accountant"), b.who("head")], opts=("-noattr",)))),
    Case("approval_sha1", "UNSUPPORTED_ALGORITHM", "approval", lambda b: wrap(b, b.approve(b.payload(), md="sha1"))),
    Case("approval_by_releaser", "SIGNER_WRONG_ROLE", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", "releaser")))),
    Case("approval_one_signer", "APPROVALS_MISSING", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant",)))),
    Case("approval_same_cert_twice", "APPROVALS_SAME_CERT", "approval", lambda b: wrap(b, same_cert_twice(b))),
    Case("approval_accountant_and_delegate", "APPROVALS_MISSING", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", "delegate")))),
    Case("approval_throwaway_ca", "CERT_UNTRUSTED", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.issued("stranger-head", ca="throwaway-ca"))))),
    Case("approval_gca_unregistered", "SIGNER_NOT_REGISTERED", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.issued("unregistered-head"))))),
    Case("approval_key_encipherment_only", "CERT_KEY_USAGE", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.issued("encipher-head", key_usage="critical,keyEncipherment"))))),
    Case("approval_pss_mgf1_sha1", "UNSUPPORTED_ALGORITHM", "approval", lambda b: wrap(b, b.resign(b.sign(
        b.payload(), [b.who("accountant")], per_signer=(*PSS, "-keyopt", "rsa_mgf1_md:sha1")), b.who("head")))),
    Case("approval_registration_revoked", "SIGNER_REGISTRATION_REVOKED", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.issued("revoked-registration-head"))))),
    Case("approval_delegate_outside_window", "DELEGATE_OUTSIDE_WINDOW", "approval", lambda b: wrap(
        b, b.approve(b.payload(), (b.issued("past-delegate"), "head")))),
    Case("approval_expired", "CERT_EXPIRED", "approval", lambda b: wrap(
        b, b.approve(b.payload(), (b.extra("expired-accountant"), "head")))),
    Case("approval_other_agency", "SIGNER_WRONG_AGENCY", "approval", lambda b: wrap(
        b, b.approve(b.payload(), agency=B))),
    Case("approval_econtent_type", "WRONG_CONTENT_TYPE", "approval", lambda b: wrap(b, b.sign(
        b.payload(), [b.who("accountant"), b.who("head")], opts=("-econtent_type", "1.2.840.113549.1.7.1.9")))),
    Case("approval_trailing_garbage", "TRAILING_DATA", "approval", lambda b: wrap(
        b, written(b, b.approve(b.payload()).read_bytes() + b"garbage"))),
    Case("approval_truncated", "MALFORMED_DER", "approval", lambda b: wrap(
        b, written(b, b.approve(b.payload()).read_bytes()[:-100]))),
    Case("approval_pem", "MALFORMED_DER", "approval", lambda b: wrap(b, b.sign(
        b.payload(), [b.who("accountant"), b.who("head")], outform="PEM"))),
    Case("approval_bad_signature", "BAD_SIGNATURE", "approval", lambda b: wrap(
        b, written(b, flip_last(b.approve(b.payload()))))),
    Case("approval_content_changed", "DIGEST_MISMATCH", "approval", approval_content_changed),
    # rsaEncryption -> md2WithRSAEncryption in the first certificate's key: an unknown key type
    Case("approval_cert_unknown_key_type", "UNSUPPORTED_ALGORITHM", "approval", damaged_certificate(
        bytes.fromhex("06092a864886f70d010101"), bytes.fromhex("06092a864886f70d010102"))),
    # OU=A10001 as a UTF8String that is not UTF-8
    Case("approval_cert_bad_subject", "CERT_MALFORMED", "approval", damaged_certificate(
        b"\x0c\x06A10001", b"\x0c\x06\xffA0001")),
    # --- reported: an approval signer self-signed (openssl req -x509), a GCA-issued CA as head,
    # a byte changed in the releaser's carried certificate
    Case("approval_self_signed_head", "CERT_SELF_SIGNED", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.self_signed("self-signed-head"))))),
    Case("approval_ca_head", "CERT_IS_CA", "approval", lambda b: wrap(
        b, b.approve(b.payload(), ("accountant", b.issued("ca-head", basic="critical,CA:TRUE"))))),
    Case("release_cert_altered", "CERT_ALTERED", "release", release_cert_altered),
    Case("approval_of_empty_file", "CONTENT_MISSING", "approval", lambda b: wrap(
        b, b.approve(written(b, b"", "empty.zip")))),
    Case("sealed_twice", "WRONG_CONTENT_TYPE", "approval", lambda b: b.release(b.seal(b.seal(b.approved)))),
    Case("seal_without_approval", "MALFORMED_DER", "approval", lambda b: b.release(b.seal(b.payload()))),
    # --- layer 4, payload
    Case("payload_not_zip", "ARCHIVE_INVALID", "payload", lambda b: b.envelope(written(b, b"%PDF-1.4 not a zip\n"))),
    Case("zip_path_traversal", "ARCHIVE_PATH_TRAVERSAL", "payload", lambda b: b.envelope(
        b.payload(extra={"../evil.json": b"{}"}))),
    Case("zip_absolute_path", "ARCHIVE_ABSOLUTE_PATH", "payload", lambda b: b.envelope(
        b.payload(entries=[("/etc/cron.d/evil", b"* * * * * root true\n")]))),
    Case("zip_duplicate_name", "ARCHIVE_DUPLICATE_NAME", "payload", lambda b: b.envelope(
        b.payload(entries=[("manifest.json", b"{}")]))),
    Case("zip_symlink", "ARCHIVE_SYMLINK", "payload", lambda b: b.envelope(
        b.payload(links={"documents/passwd.json": "/etc/passwd"}))),
    Case("zip_case_duplicate", "ARCHIVE_DUPLICATE_NAME", "payload", lambda b: b.envelope(
        b.payload(extra={"MANIFEST.JSON": b"{}"}))),
    Case("zip_empty_folder", "ARCHIVE_UNLISTED_ENTRY", "payload", lambda b: b.envelope(
        b.payload(folders=("attachments",)))),
    Case("zip_encrypted", "ARCHIVE_INVALID", "payload", lambda b: b.envelope(b.payload(zip_opts=("-P", "pw")))),
    Case("zip_bzip2", "ARCHIVE_INVALID", "payload", lambda b: b.envelope(b.payload(zip_opts=("-Z", "bzip2")))),
    Case("zip_unlisted_file", "ARCHIVE_UNLISTED_ENTRY", "payload", lambda b: b.envelope(
        b.payload(extra={"documents/notes.txt": b"not listed\n"}))),
    Case("zip_bomb_ratio", "ARCHIVE_RATIO", "payload", lambda b: b.envelope(
        b.payload(extra={"documents/zeros.json": bytes(4_000_000)}))),
    Case("manifest_missing", "MANIFEST_MISSING", "payload", lambda b: b.envelope(without_manifest(b))),
    Case("manifest_not_json", "MANIFEST_INVALID", "payload", lambda b: b.envelope(
        b.payload(manifest_bytes=b"{'profile': 'TPE/1'}"))),
    Case("manifest_duplicate_key", "MANIFEST_INVALID", "payload", lambda b: b.envelope(manifest_duplicate_key(b))),
    Case("manifest_profile_2", "UNSUPPORTED_PROFILE", "payload", lambda b: b.envelope(
        b.payload(manifest=set_manifest(profile="TPE/2")))),
    Case("manifest_unknown_kind", "UNKNOWN_DOCUMENT_KIND", "payload", lambda b: b.envelope(
        b.payload(manifest=set_manifest(documents__0__kind="gift_voucher")))),
    Case("manifest_wrong_hash", "MANIFEST_HASH_MISMATCH", "payload", lambda b: b.envelope(
        b.payload(manifest=set_manifest(documents__1__sha256="0" * 64)))),
    Case("manifest_lists_missing_file", "MANIFEST_FILE_MISSING", "payload", lambda b: b.envelope(
        b.payload(manifest=lambda m: m["documents"].append({**m["documents"][1], "path": "documents/absent.json"})))),
    Case("control_count_wrong", "CONTROL_COUNT_MISMATCH", "payload", lambda b: b.envelope(
        b.payload(manifest=set_manifest(control__document_count=3)))),
    Case("control_total_wrong", "CONTROL_TOTAL_MISMATCH", "payload", lambda b: b.envelope(
        b.payload(manifest=lambda m: m["control"].update(total_amount=int(m["control"]["total_amount"]) + 1)))),
    # --- documents
    Case("document_bad_json", "DOCUMENT_INVALID", "documents", lambda b: b.envelope(bad_json(b))),
    Case("document_bad_national_id", "BAD_NATIONAL_ID", "documents", lambda b: b.envelope(
        b.payload(edit=set_payee("id_number", "A123456788")))),
    Case("document_bad_business_number", "BAD_BUSINESS_NUMBER", "documents", lambda b: b.envelope(
        b.payload(edit=set_payee("id_number", "12345678")))),
    Case("document_bad_bank_code", "BAD_BANK_CODE", "documents", lambda b: b.envelope(
        b.payload(edit=set_payee("bank_code", "9990001")))),
    Case("voucher_total_wrong", "VOUCHER_TOTAL_MISMATCH", "documents", lambda b: b.envelope(
        b.payload(edit=break_total))),
    Case("over_epayment_limit", "OVER_EPAYMENT_LIMIT", "documents", lambda b: b.envelope(b.payload(edit=over_limit))),
    Case("voucher_twice_in_envelope", "DUPLICATE_VOUCHER", "documents", lambda b: b.envelope(
        b.payload(edit=same_voucher))),
    Case("document_other_agency", "AGENCY_MISMATCH", "documents", lambda b: b.envelope(
        b.payload(edit=lambda docs: docs[1].update(agency_code=B)))),
    # --- the payment database, after "good" was loaded
    Case("identical_copy", None, None, lambda b: b.good.read_bytes(), status="duplicate", after_good=True),
    Case("replay_same_envelope_id", "REPLAY", "intake", lambda b: b.envelope(b.good_payload), after_good=True),
    Case("voucher_loaded_before", "DUPLICATE_VOUCHER", "intake", lambda b: b.envelope(
        b.payload(number=b.good_number, envelope_id=f"{A}-OSSL-AGAIN")), after_good=True),
]


# ------------------------------------------------------------------------------- judging


def file_name(index: int, case: Case) -> str:
    # The runner takes files in name order: "good" first, the cases that need it loaded last.
    return f"{index:03d}-{case.name}.p7m"


@dataclass
class Corpus:
    files: dict[str, Path]  # case name -> envelope file
    certs: dict[str, tuple[Path, Path]]  # the certificates openssl made, by name


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_pki) -> Corpus:
    """Every case's envelope file, built once for the module; a case this openssl cannot
    make (CompressedData without zlib) is left out."""
    work = tmp_path_factory.mktemp("openssl-work")
    out = tmp_path_factory.mktemp("openssl-corpus")
    b = Builder(demo_pki, work)
    files = {}
    for index, case in enumerate(CASES):
        made = case.build(b)
        if made is None:
            continue
        data = made if isinstance(made, bytes) else made.read_bytes()
        files[case.name] = out / file_name(index, case)
        files[case.name].write_bytes(data)
    return Corpus(files, b._made)


def zone_for(root: Path, pki: Path, corpus: Corpus, **sections) -> Zone:
    """A zone with the demo registry, plus openssl-made certificates registered with the
    documented `tgw registry` commands: one releaser, one head whose registration is then
    revoked, and one delegate whose window is long past."""
    zone = make_zone(root, pki, **sections)
    cfg = ("--config", str(zone.config))
    certs = {name: str(pair[0]) for name, pair in corpus.certs.items()}
    for args in (["--cert", certs["registered-releaser"], "--agency", A, "--role", "releaser"],
                 ["--cert", certs["revoked-registration-head"], "--agency", A, "--role", "head"],
                 ["--cert", certs["past-delegate"], "--agency", A, "--role", "accountant", "--delegate",
                  "--from", "2020-01-01T00:00:00+08:00", "--until", "2020-02-01T00:00:00+08:00"]):
        code, out = cli("registry", "add", *cfg, *args)
        assert code == 0, out
    print_fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                               certs["revoked-registration-head"]], capture_output=True, text=True, check=True)
    fp = print_fp.stdout.strip().split("=", 1)[1].replace(":", "").lower()
    code, out = cli("registry", "revoke", *cfg, fp, "--note", "card lost")
    assert code == 0, out
    # The CA certificate the report had registered as the head is refused, with why.
    code, out = cli("registry", "add", *cfg, "--cert", certs["ca-head"], "--agency", A, "--role", "head")
    assert code != 0 and "CA certificate" in out, out
    return zone


def tgw_process(zone: Zone, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([TGW, "inner", "process", str(path), "--config", str(zone.config), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def judged(corpus, tmp_path_factory, demo_pki) -> dict[str, subprocess.CompletedProcess]:
    """`tgw inner process` on every file, a few at a time (each command starts a Python),
    into one zone; the cases that need "good" loaded go after it."""
    zone = zone_for(tmp_path_factory.mktemp("process-zone"), demo_pki, corpus)
    results = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for later in (False, True):
            names = [c.name for c in CASES if c.after_good == later and c.name in corpus.files]
            results.update(zip(names, pool.map(lambda n: tgw_process(zone, corpus.files[n]), names), strict=True))
    return results


def check_verdict(case: Case, result: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{result.stderr}"
    verdict = json.loads(result.stdout)
    assert (verdict["status"], verdict["reason"], verdict["layer"]) == (case.expected_status, case.code,
                                                                        case.layer), verdict
    assert result.returncode == (0 if verdict["accepted"] else 1)
    assert verdict["accepted"] is (case.code is None)
    return verdict


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tgw_inner_process_gives_the_documented_code(case, corpus, judged):
    if case.name not in corpus.files:
        pytest.skip("this openssl cannot make it (openssl cms -compress needs zlib)")
    verdict = check_verdict(case, judged[case.name])
    if verdict["status"] == "loaded":
        assert verdict["loaded_documents"] == 2
    else:
        assert verdict["loaded_documents"] == 0


def test_pkcs1v15_seal_loads_in_legacy_mode(corpus, tmp_path, demo_pki):
    zone = make_zone(tmp_path / "legacy", demo_pki, treasury={"legacy_pkcs1v15": True})
    result = tgw_process(zone, corpus.files["seal_pkcs1v15"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "loaded"


def test_runner_files_every_case_and_survives(corpus, tmp_path, demo_pki):
    """The whole corpus dropped into the inbound spool of a real `tgw inner run` at once."""
    zone = zone_for(tmp_path / "zone", demo_pki, corpus)
    cases = [c for c in CASES if c.name in corpus.files]
    for case in cases:
        zone.drop(corpus.files[case.name].name, corpus.files[case.name].read_bytes())
    db = zone.db_url.removeprefix("sqlite:///")

    def settled() -> dict[str, str] | None:
        if list(zone.inbound.glob("*.p7m")) or not Path(db).exists():
            return None
        with sqlite3.connect(db) as conn:
            outcome = dict(conn.execute("SELECT tracking_id, event FROM provenance_events "
                                        "WHERE event IN ('archived', 'quarantined', 'duplicate')").fetchall())
        return outcome if len(outcome) == len(cases) else None

    runner = RunnerProc(zone, tmp_path / "runner.log")
    try:
        outcome = wait_until(lambda: settled() or not runner.alive(), 90, "the runner to settle every file")
        assert runner.alive(), (tmp_path / "runner.log").read_text()[-3000:]
    finally:
        code = runner.stop()
    assert code == 0, (tmp_path / "runner.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "runner.log").read_text()
    quarantined = {e["id"]: e for e in zone.quarantine_entries()}
    for case in cases:
        tracking_id = corpus.files[case.name].stem
        expected = {"loaded": "archived", "refused": "quarantined", "duplicate": "duplicate"}[case.expected_status]
        assert outcome[tracking_id] == expected, case.name
        if case.code is not None:
            entry = quarantined[tracking_id]
            assert (entry["reason"], entry["layer"]) == (case.code, case.layer), (case.name, entry["message"])
    assert len(zone.archived()) == sum(c.expected_status == "loaded" for c in cases)


REPORTED = ("approval_self_signed_head", "approval_ca_head", "release_cert_altered")


def test_tgw_envelope_open_json_refuses_the_reported_certificates(corpus, tmp_path, demo_pki):
    """The issue's report, replayed as a new user would: `tgw envelope open FILE --config ... --json`."""
    zone = zone_for(tmp_path / "zone", demo_pki, corpus)
    by_name = {c.name: c for c in CASES}
    for name in REPORTED:
        result = subprocess.run([TGW, "envelope", "open", str(corpus.files[name]), "--config", str(zone.config),
                                 "--json"], capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in result.stderr, result.stderr
        verdict = json.loads(result.stdout)
        assert (verdict["accepted"], verdict["reason"], verdict["layer"]) == (
            False, by_name[name].code, by_name[name].layer), verdict
        assert result.returncode == 1
