"""Certificates that will expire (the treasury's, the portal's TLS, the CAs', every registered
signer's) and CRLs that are, or soon will be, past their nextUpdate."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..hops import PKI_HOP
from ..model import Alert
from ..snapshot import Snapshot
from ..text import duration_en, duration_zh
from .base import CheckEnv

KIND_ZH = {"treasury": "國庫署信封憑證", "tls": "入口網站 TLS 憑證", "anchor": "信任根憑證",
           "intermediate": "中繼 CA 憑證", "signer": "機關簽章憑證"}


def cert_expiry(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    if snap.pki is None:
        return []
    m = env.monitor
    alerts = []
    for c in snap.pki.certificates:
        left = (c.not_after - now).total_seconds()
        if left <= m.cert_critical_days * 86400:
            sev = "critical"
        elif left <= m.cert_warning_days * 86400:
            sev = "warning"
        else:
            continue
        kind_zh = KIND_ZH.get(c.kind, c.kind)
        if left <= 0:
            zh, en = f"{kind_zh}「{c.subject}」已於 {duration_zh(-left)} 前到期", f"{c.kind} certificate \"{c.subject}\" expired {duration_en(-left)} ago"
        else:
            zh, en = f"{kind_zh}「{c.subject}」將於 {duration_zh(left)} 後到期", f"{c.kind} certificate \"{c.subject}\" expires in {duration_en(left)}"
        alerts.append(Alert(
            zone=env.zone, hop=PKI_HOP, check="cert_expiry", host=env.host, subject=f"{c.kind}:{c.fingerprint[:16]}",
            severity=sev, since=c.not_after - timedelta(days=m.cert_warning_days), summary_zh=zh, summary_en=en,
            facts={"kind": c.kind, "subject": c.subject, "fingerprint": c.fingerprint,
                   "not_after": c.not_after.isoformat(), "days_left": round(left / 86400, 1), **c.detail},
        ))
    return alerts


def crl_freshness(snap: Snapshot, env: CheckEnv, now: datetime) -> list[Alert]:
    if snap.pki is None or not snap.pki.trust_configured:
        return []
    warn = timedelta(hours=env.monitor.crl_warning_hours)
    alerts = []
    for crl in snap.pki.crls:
        if crl.next_update is None:
            continue
        left = (crl.next_update - now).total_seconds()
        if crl.next_update <= now:
            sev, zh, en = ("critical", f"「{crl.issuer}」的 CRL 已於 {duration_zh(-left)} 前過期",
                           f"CRL of \"{crl.issuer}\" went stale {duration_en(-left)} ago")
        elif crl.next_update - now <= warn:
            sev, zh, en = ("warning", f"「{crl.issuer}」的 CRL 將於 {duration_zh(left)} 後過期",
                           f"CRL of \"{crl.issuer}\" goes stale in {duration_en(left)}")
        else:
            continue
        alerts.append(Alert(
            zone=env.zone, hop=PKI_HOP, check="crl_stale", host=env.host, subject=crl.issuer, severity=sev,
            since=crl.next_update - warn if sev == "warning" else crl.next_update, summary_zh=zh, summary_en=en,
            facts={"issuer": crl.issuer, "this_update": crl.this_update.isoformat(),
                   "next_update": crl.next_update.isoformat()},
        ))
    for issuer in snap.pki.cas_without_crl:
        alerts.append(Alert(
            zone=env.zone, hop=PKI_HOP, check="crl_missing", host=env.host, subject=issuer, severity="critical",
            summary_zh=f"找不到「{issuer}」的 CRL", summary_en=f"no CRL for \"{issuer}\"", facts={"issuer": issuer},
        ))
    return alerts
