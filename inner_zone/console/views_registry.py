"""The signer registry (certificates, delegations, registration requests) and the trust store (CRLs)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tgw_common.db import utcnow
from tgw_common.pki.certs import common_name, load_certificate
from tgw_common.registry import ROLES, RegistryError

from . import certreqs, trustops
from .timefmt import TAIPEI
from .web import console, me, record, require

bp = Blueprint("registry", __name__)
AGENCY = re.compile(r"^[0-9A-Z]{4,12}$")
MAX_CERT_BYTES = 64 * 1024
ROLE_TITLES = {"accountant": "主辦會計 accountant", "head": "機關長官 head", "releaser": "放行人 releaser"}


def _local_dt(value: str | None) -> datetime | None:
    """A datetime-local field, read as Taipei time."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RegistryError(f"時間格式不符 / {value!r} is not a date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=TAIPEI)


@bp.get("/registry")
def index():
    c = console()
    agency = request.args.get("agency", "").strip().upper()[:12]
    now = utcnow()
    warn_days = c.cfg.cert_expiry_warning_days
    signers = []
    for s in c.registry.list(agency=agency or None):
        days = (s.not_after - now).days
        if s.revoked_at:
            status = "revoked"
        elif s.not_after <= now:
            status = "expired"
        elif days < warn_days:
            status = "expiring"
        else:
            status = "ok"
        window = None
        if s.delegate:
            window = "active" if s.window_from <= now <= s.window_until else "future" if now < s.window_from else "past"
        signers.append({"s": s, "days_left": days, "status": status, "window": window,
                        "cn": common_name(s.certificate.subject)})
    delegations = [x for x in signers if x["s"].delegate]
    return render_template("registry.html", signers=signers, delegations=delegations, agency=agency,
                           pending=certreqs.pending(c), roles=ROLES, role_titles=ROLE_TITLES, warn_days=warn_days,
                           import_dir=certreqs.folder(c))


@bp.post("/registry/signers")
@require("operator", "註冊憑證", "register certificates")
def add_signer():
    c = console()
    form = request.form
    agency, role = form.get("agency", "").strip().upper(), form.get("role", "")
    upload = request.files.get("certificate")
    data = upload.read(MAX_CERT_BYTES + 1) if upload else b""
    try:
        if not AGENCY.match(agency):
            raise RegistryError("機關代號須為 4 至 12 個大寫英數字 / the agency code is 4 to 12 upper-case letters or digits")
        if role not in ROLES:
            raise RegistryError(f"請選擇角色 / choose a role: {', '.join(ROLES)}")
        if not data:
            raise RegistryError("請選擇憑證檔 / choose a certificate file")
        if len(data) > MAX_CERT_BYTES:
            raise RegistryError("憑證檔過大 / a certificate file is at most 64 KiB")
        try:
            cert = load_certificate(data)
        except ValueError:
            raise RegistryError("不是 PEM 或 DER 格式的 X.509 憑證 / not an X.509 certificate in PEM or DER") from None
        delegate = form.get("delegate") == "1"
        certreqs.check_certificate(c, cert, role)
        signer = c.registry.add(cert, agency=agency, role=role, delegate=delegate,
                                window_from=_local_dt(form.get("from")) if delegate else None,
                                window_until=_local_dt(form.get("until")) if delegate else None,
                                note=(form.get("note", "").strip()[:400] or None))
    except (RegistryError, certreqs.CertReqError) as exc:
        record("signer_registered", target=agency or None, outcome="refused", role_requested=role, error=str(exc))
        flash(f"未註冊 / not registered: {exc}", "error")
        return redirect(url_for("registry.index"))
    record("signer_registered", target=signer.fingerprint, agency=agency, signer_role=role, delegate=signer.delegate,
           subject=signer.subject, window_from=signer.window_from.isoformat() if signer.window_from else None,
           window_until=signer.window_until.isoformat() if signer.window_until else None)
    flash(f"已註冊 / registered: {common_name(cert.subject)} ({agency}, {ROLE_TITLES[role]}) "
          f"{signer.fingerprint[:16]}…", "ok")
    return redirect(url_for("registry.index", agency=agency))


@bp.post("/registry/signers/<fp>/revoke")
@require("administrator", "撤銷憑證註冊", "revoke registrations")
def revoke(fp: str):
    c = console()
    note = request.form.get("note", "").strip()[:400]
    if not note:
        flash("撤銷須填寫原因 / a revocation needs a note saying why", "error")
        return redirect(url_for("registry.index"))
    try:
        signer = c.registry.revoke(fp, note=note)
    except RegistryError as exc:
        record("signer_revoked", target=fp[:64], outcome="failed", error=str(exc))
        flash(str(exc), "error")
        return redirect(url_for("registry.index"))
    record("signer_revoked", target=signer.fingerprint, agency=signer.agency, signer_role=signer.role, note=note)
    flash(f"已撤銷註冊 / registration revoked: {signer.subject}", "ok")
    return redirect(url_for("registry.index", agency=signer.agency))


@bp.post("/registry/certreqs")
@require("operator", "上傳註冊申請", "upload registration requests")
def upload_certreq():
    upload = request.files.get("request_file")
    data = upload.read(certreqs.MAX_BYTES + 1) if upload else b""
    try:
        if not data:
            raise certreqs.CertReqError("請選擇申請檔 / choose a .certreq.json file")
        name = certreqs.store_upload(console(), upload.filename or "", data)
    except certreqs.CertReqError as exc:
        record("certreq_uploaded", target=(upload.filename if upload else None), outcome="refused", error=str(exc))
        flash(f"未接受 / not accepted: {exc}", "error")
        return redirect(url_for("registry.index"))
    record("certreq_uploaded", target=name)
    flash(f"已列入待審 / waiting for approval: {name}", "ok")
    return redirect(url_for("registry.index") + "#certreqs")


@bp.post("/registry/certreqs/<name>/approve")
@require("operator", "核准註冊申請", "approve registration requests")
def approve_certreq(name: str):
    try:
        done = certreqs.approve(console(), name, by=me().username)
    except certreqs.CertReqError as exc:
        record("certreq_approved", target=name, outcome="refused", error=str(exc))
        flash(f"未核准 / not approved: {exc}", "error")
        return redirect(url_for("registry.index") + "#certreqs")
    record("certreq_approved", target=name, fingerprint=done["fingerprint"], agency=done["agency"],
           signer_role=done["role"], delegate=done["delegate"], request_id=done["request_id"])
    flash(f"已核准並註冊 / approved and registered: {done['agency']} {ROLE_TITLES[done['role']]} "
          f"{done['fingerprint'][:16]}…", "ok")
    return redirect(url_for("registry.index", agency=done["agency"]))


@bp.post("/registry/certreqs/<name>/dismiss")
@require("operator", "退回註冊申請", "dismiss registration requests")
def dismiss_certreq(name: str):
    note = request.form.get("note", "").strip()[:400] or None
    try:
        filed = certreqs.dismiss(console(), name)
    except certreqs.CertReqError as exc:
        flash(str(exc), "error")
        return redirect(url_for("registry.index") + "#certreqs")
    record("certreq_dismissed", target=name, note=note, filed_as=filed)
    flash(f"已退回 / dismissed: {name}", "ok")
    return redirect(url_for("registry.index") + "#certreqs")


@bp.get("/trust")
def trust():
    c = console()
    store = c.trust()
    rows = trustops.freshness(c.config, store.crl_status())
    return render_template("trust.html", rows=rows, crl_dir=c.config.trust.crl_dir)


@bp.post("/trust/crl")
@require("operator", "安裝憑證廢止清冊", "install CRLs")
def upload_crl():
    upload = request.files.get("crl")
    data = upload.read(trustops.MAX_CRL_BYTES + 1) if upload else b""
    try:
        done = trustops.install_crl(console().config, data)
    except trustops.TrustError as exc:
        record("crl_installed", target=(upload.filename if upload else None), outcome="refused", error=str(exc))
        flash(f"未安裝 / not installed: {exc}", "error")
        return redirect(url_for("registry.trust"))
    record("crl_installed", target=done["issuer"][:200], file=done["file"], this_update=done["this_update"],
           next_update=done["next_update"], revoked=done["revoked"], replaced=done["replaced"])
    flash(f"已安裝 CRL / CRL installed: {done['issuer']} (next update {done['next_update']}); "
          "處理程序將重新載入並重試暫停件 / the runner reloads it and retries held envelopes", "ok")
    return redirect(url_for("registry.trust"))
