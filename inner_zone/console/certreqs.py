"""Registration requests approved in the outer zone (`<id>.certreq.json`, format tgw-certreq/1).

The outer zone cannot send anything to the inner zone but envelopes, so an operator carries
the approved request file across by the offline procedure and drops it into
`console.certreq_import_dir` (or uploads it on the registry page, which puts it there). The
console lists the files in that folder as pending requests. Approving one checks it again
here (the fingerprint matches the certificate, the certificate chains to this zone's trust
anchors and is not revoked) and registers it in the INNER registry; the file then moves to
`done/`, or to `dismissed/` when an operator turns it down.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from flask_babel import gettext as _

from tgw_common.db import utcnow
from tgw_common.pki.certs import fingerprint, load_certificate
from tgw_common.reasons import Layer, Refusal
from tgw_common.registry import ROLES, RegistryError, SignerRegistry
from tgw_common.spool import publish, write_atomic

from .state import Console

SUFFIX = ".certreq.json"
FORMAT = "tgw-certreq/1"
MAX_BYTES = 256 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.certreq\.json$")


class CertReqError(ValueError):
    """A request file that cannot be used; the message says why (zh-TW / English)."""


def _when(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise CertReqError(_("%(what)s is not an ISO 8601 time: %(value)s", what=what, value=repr(value))) from None
    if when.tzinfo is None:
        raise CertReqError(_("%(what)s needs a UTC offset", what=what))
    return when


def parse(data: bytes) -> dict[str, Any]:
    """Check a request file's content; returns it with the certificate parsed."""
    if len(data) > MAX_BYTES:
        raise CertReqError(_("a request file is at most %(kib)s KiB", kib=MAX_BYTES // 1024))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertReqError(_("not a JSON file")) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CertReqError(_("not a registration request file (format %(format)s)", format=FORMAT))
    for key in ("agency", "role", "fingerprint_sha256", "certificate_pem"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise CertReqError(_("the field %(key)s is missing", key=key))
    if doc["role"] not in ROLES:
        raise CertReqError(_("role %(role)s: must be one of %(roles)s", role=repr(doc["role"]), roles=", ".join(ROLES)))
    try:
        cert = load_certificate(doc["certificate_pem"].encode())
    except ValueError:
        raise CertReqError(_("certificate_pem is not a certificate")) from None
    if fingerprint(cert) != doc["fingerprint_sha256"].lower():
        raise CertReqError(_("fingerprint_sha256 does not match the certificate: the file was altered"))
    doc["delegate"] = bool(doc.get("delegate"))
    doc["window_from_dt"] = _when(doc.get("window_from"), "window_from")
    doc["window_until_dt"] = _when(doc.get("window_until"), "window_until")
    doc["cert"] = cert
    return doc


def folder(console: Console) -> Path:
    return console.cfg.certreq_import_dir


def pending(console: Console) -> list[dict[str, Any]]:
    """The request files waiting in the import folder, each checked (problems are shown, not hidden)."""
    out = []
    for p in sorted(folder(console).glob(f"*{SUFFIX}")):
        item: dict[str, Any] = {"name": p.name}
        try:
            doc = parse(p.read_bytes())
        except (OSError, CertReqError) as exc:
            item["error"] = str(exc)
            out.append(item)
            continue
        cert = doc.pop("cert")
        existing = console.registry.get(doc["fingerprint_sha256"])
        item.update(doc, not_after_dt=cert.not_valid_after_utc, registered=existing is not None,
                    days_left=(cert.not_valid_after_utc - utcnow()).days)
        out.append(item)
    return out


def store_upload(console: Console, filename: str, data: bytes) -> str:
    """Check an uploaded request file and put it into the import folder; returns its name there."""
    doc = parse(data)
    base = Path(filename or "").name
    name = base if _NAME.match(base) else f"{doc.get('id', 'upload')}-{doc['fingerprint_sha256'][:12]}{SUFFIX}"
    if not _NAME.match(name):
        name = f"upload-{doc['fingerprint_sha256'][:12]}{SUFFIX}"
    if (folder(console) / name).exists():
        raise CertReqError(_("%(name)s is already waiting", name=name))
    write_atomic(folder(console) / name, data, tmp_dir=folder(console) / ".tmp")
    return name


def _file(console: Console, name: str) -> Path:
    if not _NAME.match(name):
        raise CertReqError(_("%(name)s: not a request file name", name=repr(name)))
    path = folder(console) / name
    if not path.is_file():
        raise CertReqError(_("%(name)s is not waiting (approved or dismissed already?)", name=name))
    return path


def _move(path: Path, sub: str) -> Path:
    return publish(path, path.parent / sub / f"{utcnow():%Y%m%dT%H%M%S}-{path.name}")


def approve(console: Console, name: str, *, by: str) -> dict[str, Any]:
    """Register the request's certificate in the inner registry, then file the request as done."""
    path = _file(console, name)
    doc = parse(path.read_bytes())
    cert: x509.Certificate = doc["cert"]
    check_certificate(console, cert, doc["role"])
    registry: SignerRegistry = console.registry
    existing = registry.get(doc["fingerprint_sha256"])
    same = existing is not None and existing.revoked_at is None and (
        existing.agency, existing.role, existing.delegate) == (doc["agency"], doc["role"], doc["delegate"])
    if not same:  # a re-run after an interrupted approval finds the registration already there
        try:
            registry.add(cert, agency=doc["agency"], role=doc["role"], delegate=doc["delegate"],
                         window_from=doc["window_from_dt"], window_until=doc["window_until_dt"],
                         note=f"certreq {doc.get('id')} approved in the console by {by}")
        except RegistryError as exc:
            raise CertReqError(str(exc)) from None
    done = _move(path, "done")
    return {"name": name, "agency": doc["agency"], "role": doc["role"], "delegate": doc["delegate"],
            "fingerprint": doc["fingerprint_sha256"], "request_id": doc.get("id"), "filed_as": str(done)}


def dismiss(console: Console, name: str) -> str:
    return str(_move(_file(console, name), "dismissed"))


def check_certificate(console: Console, cert: x509.Certificate, role: str) -> None:
    """The certificate must be usable for signing here and now: path, validity, CRL, key usage."""
    now = utcnow()
    try:
        console.trust().validate(cert, layer=Layer.RELEASE if role == "releaser" else Layer.APPROVAL, moment=now,
                                 signing_time=now)
    except Refusal as refusal:
        raise CertReqError(_("the certificate fails its check: %(code)s: %(message)s", code=refusal.code,
                             message=refusal.message)) from None
