"""Certificate registration requests (憑證註冊).

An agency administrator (any role) or an officer (their own role) gives a certificate on the
web, as a file or read from the officer's IC card through the local signing service, either
as a new registration or as 更換註冊 (noting which registered certificate of the role it
replaces); it is checked (parses, valid now, chains to the trust anchors, not revoked, right
key usage) and waits. Treasury staff approve it with the CLI, which registers it in the outer
signer registry and writes `<id>.certreq.json` into outer.registration_export_dir: the file an
operator carries to the inner zone, where `tgw registry add` registers the same certificate
(docs/outer.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, select

from tgw_common.db import transaction, utcnow
from tgw_common.pki.certs import common_name, der, fingerprint, load_certificate
from tgw_common.pki.trust import TrustStore
from tgw_common.reasons import Layer, Refusal
from tgw_common.registry import ROLES as SIGNER_ROLES
from tgw_common.registry import RegistryError, SignerRegistry
from tgw_common.spool import write_atomic

from . import audit
from .models import CertRequest

MAX_CERT_BYTES = 64 * 1024
EXPORT_SUFFIX = ".certreq.json"


class RegistrationError(ValueError):
    pass


def parse_certificate(data: bytes) -> x509.Certificate:
    if not data:
        raise RegistrationError("請選擇憑證檔 / choose a certificate file")
    if len(data) > MAX_CERT_BYTES:
        raise RegistrationError(f"憑證檔過大 / a certificate file is at most {MAX_CERT_BYTES} bytes")
    try:
        return load_certificate(data)
    except ValueError:
        raise RegistrationError("不是 PEM 或 DER 格式的 X.509 憑證 / not an X.509 certificate in PEM or DER") from None


def replaced_certificate(engine: Engine, *, agency: str, role: str, delegate: bool, chosen: str | None) -> str | None:
    """更換註冊: the fingerprint of the live registration of the agency's role the new one replaces.

    `chosen` names it; without it, the role's only live registration, or None when it has none.
    """
    live = {s.fingerprint for s in SignerRegistry(engine).list(agency=agency, role=role, include_revoked=False)
            if s.delegate == delegate}
    if chosen:
        if chosen.strip().lower() not in live:
            raise RegistrationError("要更換的憑證不是此角色已註冊的憑證 / the certificate to replace is not one "
                                    "registered for this role")
        return chosen.strip().lower()
    if len(live) > 1:
        raise RegistrationError("此角色有多張已註冊憑證，請選擇要更換哪一張 / the role has several registered "
                                "certificates: choose the one this replaces")
    return next(iter(live), None)


def submit(engine: Engine, trust: TrustStore, *, agency: str, role: str, cert_data: bytes, requested_by: str,
           ip: str, delegate: bool = False, window_from: datetime | None = None,
           window_until: datetime | None = None, replacing: bool = False, replaces: str | None = None,
           via: str = "file") -> CertRequest:
    if role not in SIGNER_ROLES:
        raise RegistrationError(f"角色須為 {', '.join(SIGNER_ROLES)} / role must be one of {', '.join(SIGNER_ROLES)}")
    if delegate and role == "releaser":
        raise RegistrationError("代理人只能代理主辦會計或機關長官 / a delegate stands in for an accountant or a head")
    if delegate and not (window_from and window_until and window_until > window_from):
        raise RegistrationError("代理人須填代理期間 / a delegate needs a period whose end is after its start")
    if not delegate:
        window_from = window_until = None
    cert = parse_certificate(cert_data)
    now = utcnow()
    try:
        trust.validate(cert, layer=Layer.RELEASE if role == "releaser" else Layer.APPROVAL, moment=now,
                       signing_time=now)
    except Refusal as refusal:
        raise RegistrationError(f"憑證未通過檢查 / the certificate fails its check: {refusal.code}: "
                                f"{refusal.message}") from None
    fp = fingerprint(cert)
    if SignerRegistry(engine).get(fp) is not None:
        raise RegistrationError("此憑證已註冊 / this certificate is already registered")
    replaces = replaced_certificate(engine, agency=agency, role=role, delegate=delegate,
                                    chosen=replaces) if replacing else None
    with transaction(engine) as s:
        if s.scalar(select(CertRequest.id).where(CertRequest.fingerprint == fp, CertRequest.status == "pending")):
            raise RegistrationError("此憑證已有待審核的申請 / a request for this certificate is already pending")
        row = CertRequest(agency=agency, role=role, delegate=delegate, window_from=window_from,
                          window_until=window_until, fingerprint=fp, subject=cert.subject.rfc4514_string()[:512],
                          issuer=cert.issuer.rfc4514_string()[:512], not_after=cert.not_valid_after_utc,
                          certificate=der(cert), requested_by=requested_by, requested_at=now, status="pending",
                          replaces=replaces)
        s.add(row)
        s.flush()
        audit.record(s, "cert_request_submitted", actor=requested_by, agency=agency, ip=ip, target=str(row.id),
                     fingerprint=fp, role=role, delegate=delegate, replaces=replaces, via=via)
        return row


def describe(row: CertRequest) -> dict[str, Any]:
    def iso(v):
        return v.isoformat() if v else None

    return {"id": row.id, "agency": row.agency, "role": row.role, "delegate": row.delegate,
            "window_from": iso(row.window_from), "window_until": iso(row.window_until),
            "fingerprint": row.fingerprint, "subject": row.subject, "issuer": row.issuer,
            "not_after": iso(row.not_after), "requested_by": row.requested_by, "requested_at": iso(row.requested_at),
            "status": row.status, "decided_by": row.decided_by, "decided_at": iso(row.decided_at), "note": row.note,
            "export_path": row.export_path, "replaces": row.replaces}


def list_requests(engine: Engine, *, status: str | None = "pending", agency: str | None = None) -> list[dict]:
    with transaction(engine) as s:
        q = select(CertRequest).order_by(CertRequest.id)
        if status:
            q = q.where(CertRequest.status == status)
        if agency:
            q = q.where(CertRequest.agency == agency)
        return [describe(r) for r in s.scalars(q)]


def _pending(s, request_id: int) -> CertRequest:
    row = s.get(CertRequest, request_id)
    if row is None:
        raise RegistrationError(f"沒有申請 {request_id} / no registration request {request_id}")
    if row.status != "pending":
        raise RegistrationError(f"申請 {request_id} 已{row.status} / request {request_id} is already {row.status}")
    return row


def export_document(row: CertRequest, cert: x509.Certificate, *, approved_by: str, approved_at: datetime) -> dict:
    """The JSON carried to the inner zone: everything `tgw registry add` needs, and the PEM."""
    return {
        "format": "tgw-certreq/1",
        "id": row.id, "agency": row.agency, "role": row.role, "delegate": row.delegate,
        "window_from": row.window_from.isoformat() if row.window_from else None,
        "window_until": row.window_until.isoformat() if row.window_until else None,
        "fingerprint_sha256": row.fingerprint, "subject": row.subject, "common_name": common_name(cert.subject),
        "issuer": row.issuer, "not_after": row.not_after.isoformat(),
        "requested_by": row.requested_by, "requested_at": row.requested_at.isoformat(),
        "approved_by": approved_by, "approved_at": approved_at.isoformat(),
        "replaces_fingerprint_sha256": row.replaces,
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def approve(engine: Engine, request_id: int, *, export_dir: Path, actor: str, where: str,
            note: str | None = None) -> dict[str, Any]:
    with transaction(engine) as s:
        row = _pending(s, request_id)
    cert = load_certificate(row.certificate)
    registry = SignerRegistry(engine)
    existing = registry.get(row.fingerprint)
    same = existing is not None and (existing.agency, existing.role, existing.delegate) == (
        row.agency, row.role, row.delegate)
    if not same:  # `same` is a re-run after an interrupted approval: the registration is already there
        try:
            registry.add(cert, agency=row.agency, role=row.role, delegate=row.delegate,
                         window_from=row.window_from, window_until=row.window_until,
                         note=f"certreq {row.id} by {row.requested_by}")
        except RegistryError as exc:
            raise RegistrationError(str(exc)) from None
    now = utcnow()
    path = Path(export_dir) / f"{row.id}{EXPORT_SUFFIX}"
    document = export_document(row, cert, approved_by=actor, approved_at=now)
    write_atomic(path, (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode())
    with transaction(engine) as s:
        row = _pending(s, request_id)
        row.status, row.decided_by, row.decided_at, row.note, row.export_path = "approved", actor, now, note, str(path)
        audit.record(s, "registration_approved", actor=actor, agency=row.agency, ip=where, target=str(row.id),
                     fingerprint=row.fingerprint, role=row.role, export=str(path))
        return describe(row)


def reject(engine: Engine, request_id: int, *, actor: str, where: str, note: str | None = None) -> dict[str, Any]:
    with transaction(engine) as s:
        row = _pending(s, request_id)
        row.status, row.decided_by, row.decided_at, row.note = "rejected", actor, utcnow(), note
        audit.record(s, "registration_rejected", actor=actor, agency=row.agency, ip=where, target=str(row.id),
                     fingerprint=row.fingerprint, note=note)
        return describe(row)
