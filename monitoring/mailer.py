"""Alert mail: Traditional Chinese first, English second; what is wrong, since when, what to check.

Plain text (UTF-8) only: it reads the same in every mail client the operators use, and a
pager gateway that forwards the subject line gets the essentials there.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from tgw_common.config import SmtpConfig
from tgw_common.mail import MailError as MailError  # re-exported: the engine and CLI catch it here
from tgw_common.mail import send as send

from .catalog import CHECKS
from .model import AlertState, Notice
from .text import duration_en, duration_zh, local_time

SEVERITY_ZH = {"critical": "嚴重", "warning": "警告"}
REASON_TEXT = {"new": "新告警 new alert", "changed": "告警有變動 alerts changed",
               "repeat": "仍未解決（重複通知） still firing (repeat)", "resolved": "全部恢復 all resolved"}


def subject_line(notice: Notice, prefix: str, zone: str) -> str:
    where = " ".join(v for k, v in notice.group_labels.items() if k != "zone" and v)
    if notice.kind == "resolved":
        first = notice.resolved[0] if notice.resolved else None
        info = CHECKS.get(first.check) if first else None
        what = f" {info.title_zh} / {info.title_en}" if info else ""
        more = f" (+{len(notice.resolved) - 1})" if len(notice.resolved) > 1 else ""
        return f"{prefix}[{zone}] 已恢復 RESOLVED {where}:{what}{more}"
    first = notice.firing[0]
    worst = "CRITICAL" if any(a.severity == "critical" for a in notice.firing) else "WARNING"
    more = f" (+{len(notice.firing) - 1})" if len(notice.firing) > 1 else ""
    return f"{prefix}[{zone}] 告警 FIRING {worst} {where}: {first.summary_zh} / {first.summary_en}{more}"


def _alert_block(a: AlertState, display_tz: str, now, *, resolved: bool) -> list[str]:
    info = CHECKS.get(a.check)
    sev = f"[{SEVERITY_ZH.get(a.severity, a.severity)} {a.severity.upper()}]"
    title = f"{info.title_zh} {info.title_en}" if info else a.check
    began = a.began
    lines = [f"{sev} {title}",
             f"  問題：{a.summary_zh}",
             f"  What: {a.summary_en}",
             f"  開始時間 Since: {local_time(began, display_tz)}"
             f"（{duration_zh((now - began).total_seconds())}前 / {duration_en((now - began).total_seconds())} ago）"]
    if resolved and a.resolved_at:
        lines.append(f"  恢復時間 Resolved: {local_time(a.resolved_at, display_tz)}")
    labels = " ".join(f"{k}={v}" for k, v in a.labels.items() if v)
    lines.append(f"  標籤 Labels: {labels}")
    if info and not resolved:
        lines.append(f"  先檢查：{info.runbook_zh}")
        lines.append(f"  Check first: {info.runbook_en}")
    facts = {k: v for k, v in (a.facts or {}).items() if v not in (None, "", [], {})}
    if facts:
        lines.append("  詳細 Facts:")
        lines.extend(f"    {k}: {v}" for k, v in facts.items())
    return lines


def compose(notice: Notice, smtp: SmtpConfig, *, zone: str, display_tz: str) -> EmailMessage:
    now = notice.at
    body = ["國庫電子支付閘道 監控通知 / Treasury e-Payment Gateway monitor", "",
            f"區域 Zone: {zone}",
            f"群組 Group: {notice.group_key}",
            f"原因 Reason: {REASON_TEXT.get(notice.reason, notice.reason)}",
            f"時間 Time: {local_time(now, display_tz)}", ""]
    if notice.firing:
        body.append(f"=== 告警中 FIRING ({len(notice.firing)}) ===")
        for a in notice.firing:
            body += [*_alert_block(a, display_tz, now, resolved=False), ""]
    if notice.resolved:
        body.append(f"=== 已恢復 RESOLVED ({len(notice.resolved)}) ===")
        for a in notice.resolved:
            body += [*_alert_block(a, display_tz, now, resolved=True), ""]
    body += ["--", "tgw monitor status / tgw monitor alerts 可查看目前狀態與歷史 (current state and history).",
             "說明 Docs: docs/monitoring.md"]
    msg = EmailMessage()
    msg["Subject"] = subject_line(notice, smtp.subject_prefix, zone)
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or "localhost")
    msg["X-TGW-Zone"] = zone
    msg["X-TGW-Group"] = notice.group_key
    msg["X-TGW-Kind"] = notice.kind
    msg.set_content("\n".join(body), charset="utf-8")
    return msg
