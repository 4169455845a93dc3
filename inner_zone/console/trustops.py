"""Trust anchors and CRLs as operators see them, and installing a CRL safely.

A CRL uploaded here is installed only when it parses, is signed by one of the configured
CAs (anchor or intermediate), and is not older than the one already installed for that
issuer (no rollback to a list that misses recent revocations). It is written atomically
into `trust.crl_dir`, replacing that issuer's file, so the runner's CRL check (file names,
sizes, mtimes every `inner.rescan_seconds`) reloads its trust store and puts held
envelopes back by itself.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask_babel import gettext as _

from tgw_common.config import Config
from tgw_common.db import utcnow
from tgw_common.pki.certs import common_name, fingerprint, load_certificates_file, load_crl
from tgw_common.spool import write_atomic

MAX_CRL_BYTES = 8 * 1024 * 1024
CRL_SUFFIXES = (".crl", ".der", ".pem")
DUE_SOON = timedelta(hours=24)


class TrustError(ValueError):
    """An upload that cannot be installed; the message says why (zh-TW / English)."""


def authorities(config: Config) -> list[tuple[str, x509.Certificate]]:
    out = [("anchor", c) for p in config.trust.anchors for c in load_certificates_file(p)]
    out += [("intermediate", c) for p in config.trust.intermediates for c in load_certificates_file(p)]
    return out


def _crl_files(config: Config) -> list[Path]:
    files = list(config.trust.crls)
    crl_dir = config.trust.crl_dir
    if crl_dir is not None and Path(crl_dir).is_dir():
        files += sorted(p for p in Path(crl_dir).iterdir()
                        if p.is_file() and p.suffix.lower() in CRL_SUFFIXES and not p.name.startswith("."))
    return files


def installed(config: Config) -> dict[bytes, tuple[Path, x509.CertificateRevocationList]]:
    """The newest CRL file per issuer, as the trust store will load them."""
    newest: dict[bytes, tuple[Path, x509.CertificateRevocationList]] = {}
    for p in _crl_files(config):
        try:
            crl = load_crl(p.read_bytes())
        except (OSError, ValueError):
            continue
        key = crl.issuer.public_bytes()
        if key not in newest or crl.last_update_utc > newest[key][1].last_update_utc:
            newest[key] = (p, crl)
    return newest


def freshness(config: Config, crl_status: list[dict]) -> list[dict[str, Any]]:
    """Each CA with its newest CRL (TrustStore.crl_status()) and how fresh it is."""
    now = utcnow()
    by_issuer = {s["issuer"]: s for s in crl_status}
    files = {crl.issuer.rfc4514_string(): p for p, crl in installed(config).values()}
    out = []
    for kind, ca in authorities(config):
        name = ca.subject.rfc4514_string()
        st = by_issuer.get(name)
        row: dict[str, Any] = {"kind": kind, "issuer": name, "common_name": common_name(ca.subject),
                               "fingerprint": fingerprint(ca), "ca_not_after": ca.not_valid_after_utc,
                               "ca_days_left": (ca.not_valid_after_utc - now).days, "file": files.get(name)}
        if st is None:
            row.update(status="missing", this_update=None, next_update=None, revoked=None, hours_left=None)
        else:
            nu = datetime.fromisoformat(st["next_update"]) if st["next_update"] else None
            hours = (nu - now).total_seconds() / 3600 if nu else None
            status = "stale" if nu and nu <= now else "due" if nu and nu - now <= DUE_SOON else "fresh"
            row.update(status=status, this_update=datetime.fromisoformat(st["this_update"]), next_update=nu,
                       revoked=st["revoked"], hours_left=hours)
        out.append(row)
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "ca"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%MZ")


def install_crl(config: Config, data: bytes) -> dict[str, Any]:
    """Validate an uploaded CRL and write it into trust.crl_dir; returns what was installed."""
    crl_dir = config.trust.crl_dir
    if crl_dir is None:
        raise TrustError(_("trust.crl_dir is not set in the config: there is no folder to install CRLs into"))
    if not data:
        raise TrustError(_("choose a CRL file"))
    if len(data) > MAX_CRL_BYTES:
        raise TrustError(_("a CRL file is at most %(mib)s MiB", mib=MAX_CRL_BYTES // (1024 * 1024)))
    try:
        crl = load_crl(data)
    except ValueError:
        raise TrustError(_("not a CRL in PEM or DER")) from None
    issuer = next((ca for _kind, ca in authorities(config) if ca.subject == crl.issuer), None)
    if issuer is None:
        raise TrustError(_("the issuer %(issuer)s is not one of the configured trust anchors or intermediates",
                           issuer=crl.issuer.rfc4514_string()))
    try:
        valid = crl.is_signature_valid(issuer.public_key())
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise TrustError(_("the CRL's signature does not verify with %(issuer)s's key", issuer=common_name(issuer.subject)))
    now = utcnow()
    if crl.next_update_utc is not None and crl.next_update_utc <= now:
        raise TrustError(_("this CRL is already stale (nextUpdate %(next)s): installing it would not release held "
                           "envelopes", next=_utc(crl.next_update_utc)))
    current = installed(config).get(crl.issuer.public_bytes())
    if current is not None and crl.last_update_utc < current[1].last_update_utc:
        raise TrustError(_("older than the installed CRL of this issuer (%(new)s < %(old)s)",
                           new=_utc(crl.last_update_utc), old=_utc(current[1].last_update_utc)))
    folder = Path(crl_dir)
    if current is not None and current[0].parent == folder:
        dest = current[0]  # replace the issuer's own file, so the folder keeps one list per CA
    else:
        dest = folder / f"{_slug(common_name(issuer.subject))}.crl"
    der = crl.public_bytes(serialization.Encoding.DER)
    if dest.suffix.lower() == ".pem":
        der = crl.public_bytes(serialization.Encoding.PEM)
    write_atomic(dest, der, tmp_dir=folder)
    return {"issuer": crl.issuer.rfc4514_string(), "file": str(dest), "this_update": crl.last_update_utc.isoformat(),
            "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None, "revoked": len(crl),
            "replaced": str(current[0]) if current is not None else None}
