"""Test kit: builds valid TPE/1 envelopes with the demo PKI, and every kind of broken one.

The production builders only make correct envelopes; tests also need wrong ones (missing
attributes, wrong digests, detached content, odd archives), so this kit assembles CMS
structures with asn1crypto directly where it must.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import socket
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from asn1crypto import cms
from asn1crypto import x509 as ax
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tgw_common.pki.certs import der, load_certificate_file, load_private_key_file
from tgw_common.tpe import add_signature, build_payload, make_seal, sign_new
from tgw_common.tpe.cms import sorted_set

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Signer:
    cert: object
    key: object
    digest: str = "sha256"
    signing_time: datetime | None = None
    attrs: dict = field(default_factory=dict)  # name -> value override, or None to omit
    corrupt_signature: bool = False


class Kit:
    def __init__(self, pki: Path) -> None:
        self.pki = Path(pki)
        self.treasury = load_certificate_file(self.pki / "treasury" / "envelope.pem")
        self.treasury_key = load_private_key_file(self.pki / "treasury" / "envelope.key")

    # --- certificates
    def pair(self, agency: str, role: str) -> tuple:
        folder = self.pki / "agencies" / agency
        return load_certificate_file(folder / f"{role}.pem"), load_private_key_file(folder / f"{role}.key")

    def extra(self, name: str) -> tuple:
        return (load_certificate_file(self.pki / "extra" / f"{name}.pem"),
                load_private_key_file(self.pki / "extra" / f"{name}.key"))

    def signer(self, agency: str, role: str, **kw) -> Signer:
        return Signer(*self.pair(agency, role), **kw)

    # --- layers
    def documents(self, agency: str, count: int = 3, seed: int = 1) -> list[tuple[str, str, bytes]]:
        from tgw.demo.documents import generate_documents

        return [(f"documents/{p}", k, b) for p, k, b in generate_documents(agency, count, seed=seed)]

    def payload(self, agency: str = "A10001", *, docs=None, envelope_id: str | None = None) -> bytes:
        docs = docs if docs is not None else self.documents(agency)
        return build_payload(envelope_id or f"{agency}-TEST-{hashlib.sha256(repr(docs).encode()).hexdigest()[:16]}",
                             agency, docs)

    def approve(self, payload: bytes, agency: str = "A10001", roles=("accountant", "head")) -> bytes:
        signed = sign_new(payload, *self.pair(agency, roles[0]))
        for role in roles[1:]:
            signed = add_signature(signed, *self.pair(agency, role))
        return signed

    def seal(self, approved: bytes, recipients=None, cipher: str = "aes256_cbc") -> bytes:
        return make_seal(approved, recipients or [self.treasury], cipher=cipher)

    def release(self, sealed: bytes, agency: str = "A10001", role: str = "releaser") -> bytes:
        return sign_new(sealed, *self.pair(agency, role))

    def envelope(self, agency: str = "A10001", *, payload: bytes | None = None, approved: bytes | None = None,
                 sealed: bytes | None = None) -> bytes:
        if sealed is None:
            if approved is None:
                approved = self.approve(payload if payload is not None else self.payload(agency), agency)
            sealed = self.seal(approved)
        return self.release(sealed, agency)

    def wrap(self, approved: bytes, agency: str = "A10001") -> bytes:
        """Seal and release an approval layer (valid outer layers around a test's inner one)."""
        return self.release(self.seal(approved), agency)


def custom_signed(content: bytes | None, signers: list[Signer], *, digest_algorithms=None, carry_certs=True,
                  extra_certs=(), econtent_type: str = "data", outer_type: str = "signed_data") -> bytes:
    """A SignedData built field by field, so tests can break any one of them."""
    infos = []
    for s in signers:
        digest = s.digest
        md = hashlib.new(digest if digest in hashlib.algorithms_available else "sha256", content or b"").digest()
        when = s.signing_time or NOW
        values = {
            "content_type": "data",
            "signing_time": cms.Time({"utc_time": when}),
            "message_digest": md,
        }
        values.update(s.attrs)
        attrs = cms.CMSAttributes(sorted_set([
            cms.CMSAttribute({"type": name, "values": [value]}) for name, value in values.items() if value is not None
        ]))
        hash_cls = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
                    "sha1": hashes.SHA1, "md5": hashes.MD5}[digest]
        signature = s.key.sign(attrs.dump(), padding.PKCS1v15(), hash_cls())
        if s.corrupt_signature:
            signature = bytes([signature[0] ^ 0x01]) + signature[1:]
        infos.append(cms.SignerInfo({
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": ax.Name.load(s.cert.issuer.public_bytes()),
                                                 "serial_number": s.cert.serial_number}},
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }))
    certs = [s.cert for s in signers] if carry_certs else []
    certs += list(extra_certs)
    eci = {"content_type": econtent_type}
    if content is not None:
        eci["content"] = content
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": a} for a in (digest_algorithms or sorted({s.digest for s in signers}))],
        "encap_content_info": eci,
        "certificates": sorted_set([cms.CertificateChoices({"certificate": ax.Certificate.load(der(c))})
                                    for c in {der(c): c for c in certs}.values()]) if certs else None,
        "signer_infos": infos,
    })
    if sd["certificates"].native is None:
        del sd["certificates"]
    return cms.ContentInfo({"content_type": outer_type, "content": sd}).dump()


def zip_bytes(entries: list[tuple], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP from (name, data[, unix_mode]) tuples; names are written as given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as z:
        for entry in entries:
            name, data = entry[0], entry[1]
            mode = entry[2] if len(entry) > 2 else stat.S_IFREG | 0o644
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.create_system = 3
            info.external_attr = mode << 16
            z.writestr(info, data)
    return buffer.getvalue()


def manifest_for(agency: str, docs: list[tuple[str, str, bytes]], **overrides) -> dict:
    from tgw_common.documents import build_manifest

    manifest = build_manifest(f"{agency}-M-{hashlib.sha256(repr(docs).encode()).hexdigest()[:12]}", agency, NOW, docs)
    manifest.update(overrides)
    return manifest


def payload_zip(manifest: dict, docs: list[tuple[str, str, bytes]], extra: list[tuple] = ()) -> bytes:
    return zip_bytes([("manifest.json", json.dumps(manifest, ensure_ascii=False).encode()),
                      *[(p, b) for p, _k, b in docs], *extra])


def write_config(folder: Path, pki: Path, *, db_url: str | None = None, **sections) -> Path:
    """A config file for tests; `sections` override or add whole sections."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "node": {"zone": "inner", "data_dir": str(folder / "var")},
        "database": {"url": db_url or f"sqlite:///{folder / 'inner.db'}"},
        "trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                  "crl_dir": str(pki / "crl")},
        "treasury": {"certificate": str(pki / "treasury" / "envelope.pem"),
                     "private_key": str(pki / "treasury" / "envelope.key")},
    }
    for name, value in sections.items():
        if value is None:
            config.pop(name, None)
        elif isinstance(value, dict) and isinstance(config.get(name), dict):
            config[name] = {**config[name], **value}
        else:
            config[name] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def wait_until(pred, timeout: float, what: str, step: float = 0.05):
    """Poll `pred` until it returns something true (returned) or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (TCP by default, SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def later(days: float) -> datetime:
    return NOW + timedelta(days=days)
