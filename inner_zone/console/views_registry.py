"""The signer registry (certificates, delegations, registration requests) and the trust store (CRLs)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tgw_common.db import utcnow
from tgw_common.pki.certs import common_name, load_certificate
from tgw_common.registry import ROLES, RegistryError

from . import certreqs, trustops
from .timefmt import TAIPEI
from .web import console, me, record, require

bp = Blueprint("registry", __name__)
AGENCY = re.compile(r"^[0-9A-Z]{4,12}$")
MAX_CERT_BYTES = 64 * 1024
# An agency's signer roles (tgw_common.registry.ROLES) by their titles in the page's language.
ROLE_TITLES = {"accountant": _l("accountant"), "head": _l("head of agency"), "releaser": _l("releaser")}


def _local_dt(value: str | None) -> datetime | None:
    """A datetime-local field, read as Taipei time."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RegistryError(_("%(value)s is not a date and time", value=repr(value))) from None
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
@require("operator", _l("register certificates"))
def add_signer():
    c = console()
    form = request.form
    agency, role = form.get("agency", "").strip().upper(), form.get("role", "")
    upload = request.files.get("certificate")
    data = upload.read(MAX_CERT_BYTES + 1) if upload else b""
    try:
        if not AGENCY.match(agency):
            raise RegistryError(_("the agency code is 4 to 12 upper-case letters or digits"))
        if role not in ROLES:
            raise RegistryError(_("choose a role: %(roles)s", roles=", ".join(ROLES)))
        if not data:
            raise RegistryError(_("choose a certificate file"))
        if len(data) > MAX_CERT_BYTES:
            raise RegistryError(_("a certificate file is at most 64 KiB"))
        try:
            cert = load_certificate(data)
        except ValueError:
            raise RegistryError(_("not an X.509 certificate in PEM or DER")) from None
        delegate = form.get("delegate") == "1"
        certreqs.check_certificate(c, cert, role)
        signer = c.registry.add(cert, agency=agency, role=role, delegate=delegate,
                                window_from=_local_dt(form.get("from")) if delegate else None,
                                window_until=_local_dt(form.get("until")) if delegate else None,
                                note=(form.get("note", "").strip()[:400] or None))
    except (RegistryError, certreqs.CertReqError) as exc:
        record("signer_registered", target=agency or None, outcome="refused", role_requested=role, error=str(exc))
        flash(_("Not registered: %(error)s", error=exc), "error")
        return redirect(url_for("registry.index"))
    record("signer_registered", target=signer.fingerprint, agency=agency, signer_role=role, delegate=signer.delegate,
           subject=signer.subject, window_from=signer.window_from.isoformat() if signer.window_from else None,
           window_until=signer.window_until.isoformat() if signer.window_until else None)
    flash(_("Registered: %(name)s (%(agency)s, %(role)s) %(fingerprint)s…", name=common_name(cert.subject),
            agency=agency, role=ROLE_TITLES[role], fingerprint=signer.fingerprint[:16]), "ok")
    return redirect(url_for("registry.index", agency=agency))


@bp.post("/registry/signers/<fp>/revoke")
@require("administrator", _l("revoke registrations"))
def revoke(fp: str):
    c = console()
    note = request.form.get("note", "").strip()[:400]
    if not note:
        flash(_("A revocation needs a note saying why."), "error")
        return redirect(url_for("registry.index"))
    try:
        signer = c.registry.revoke(fp, note=note)
    except RegistryError as exc:
        record("signer_revoked", target=fp[:64], outcome="failed", error=str(exc))
        flash(str(exc), "error")
        return redirect(url_for("registry.index"))
    record("signer_revoked", target=signer.fingerprint, agency=signer.agency, signer_role=signer.role, note=note)
    flash(_("Registration revoked: %(subject)s", subject=signer.subject), "ok")
    return redirect(url_for("registry.index", agency=signer.agency))


@bp.post("/registry/certreqs")
@require("operator", _l("upload registration requests"))
def upload_certreq():
    upload = request.files.get("request_file")
    data = upload.read(certreqs.MAX_BYTES + 1) if upload else b""
    try:
        if not data:
            raise certreqs.CertReqError(_("choose a .certreq.json file"))
        name = certreqs.store_upload(console(), upload.filename or "", data)
    except certreqs.CertReqError as exc:
        record("certreq_uploaded", target=(upload.filename if upload else None), outcome="refused", error=str(exc))
        flash(_("Not accepted: %(error)s", error=exc), "error")
        return redirect(url_for("registry.index"))
    record("certreq_uploaded", target=name)
    flash(_("Waiting for approval: %(name)s", name=name), "ok")
    return redirect(url_for("registry.index") + "#certreqs")


@bp.post("/registry/certreqs/<name>/approve")
@require("operator", _l("approve registration requests"))
def approve_certreq(name: str):
    try:
        done = certreqs.approve(console(), name, by=me().username)
    except certreqs.CertReqError as exc:
        record("certreq_approved", target=name, outcome="refused", error=str(exc))
        flash(_("Not approved: %(error)s", error=exc), "error")
        return redirect(url_for("registry.index") + "#certreqs")
    record("certreq_approved", target=name, fingerprint=done["fingerprint"], agency=done["agency"],
           signer_role=done["role"], delegate=done["delegate"], request_id=done["request_id"])
    flash(_("Approved and registered: %(agency)s %(role)s %(fingerprint)s…", agency=done["agency"],
            role=ROLE_TITLES[done["role"]], fingerprint=done["fingerprint"][:16]), "ok")
    return redirect(url_for("registry.index", agency=done["agency"]))


@bp.post("/registry/certreqs/<name>/dismiss")
@require("operator", _l("dismiss registration requests"))
def dismiss_certreq(name: str):
    note = request.form.get("note", "").strip()[:400] or None
    try:
        filed = certreqs.dismiss(console(), name)
    except certreqs.CertReqError as exc:
        flash(str(exc), "error")
        return redirect(url_for("registry.index") + "#certreqs")
    record("certreq_dismissed", target=name, note=note, filed_as=filed)
    flash(_("Dismissed: %(name)s", name=name), "ok")
    return redirect(url_for("registry.index") + "#certreqs")


@bp.get("/trust")
def trust():
    c = console()
    store = c.trust()
    rows = trustops.freshness(c.config, store.crl_status())
    return render_template("trust.html", rows=rows, crl_dir=c.config.trust.crl_dir)


@bp.post("/trust/crl")
@require("operator", _l("install CRLs"))
def upload_crl():
    upload = request.files.get("crl")
    data = upload.read(trustops.MAX_CRL_BYTES + 1) if upload else b""
    try:
        done = trustops.install_crl(console().config, data)
    except trustops.TrustError as exc:
        record("crl_installed", target=(upload.filename if upload else None), outcome="refused", error=str(exc))
        flash(_("Not installed: %(error)s", error=exc), "error")
        return redirect(url_for("registry.trust"))
    record("crl_installed", target=done["issuer"][:200], file=done["file"], this_update=done["this_update"],
           next_update=done["next_update"], revoked=done["revoked"], replaced=done["replaced"])
    flash(_("CRL installed: %(issuer)s (next update %(next)s); the runner reloads it and retries held envelopes.",
            issuer=done["issuer"], next=done["next_update"]), "ok")
    return redirect(url_for("registry.trust"))
