"""The console's audit log: every change, sign-in and refused attempt (who, what, when, from where).

An entry is written in the caller's transaction when one is given, so a change and its
entry commit together or not at all. Changes to files (quarantine, CRLs, certificate
requests) cannot share the database transaction: their entry is written right after the
file operation succeeded, or with outcome `failed` when it did not. docs/console.md lists
every action.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tgw_common.db import transaction, utcnow
from tgw_common.web.actor import cli_actor as cli_actor  # re-exported: (who, where) of a CLI command

from .models import AuditEntry

# A typo must fail loudly, not go unaudited.
ACTIONS = frozenset({
    # signing in
    "login", "login_failed", "login_throttled", "logout", "session_expired", "password_changed", "forbidden", "csrf_refused",
    # envelopes
    "quarantine_retried", "quarantine_rejected",
    # registry and trust
    "signer_registered", "signer_revoked", "registry_imported", "certreq_uploaded", "certreq_approved", "certreq_dismissed",
    "crl_installed",
    # agencies
    "agency_updated",
    # reports (nothing changes, but data leaves the console)
    "report_exported",
    # accounts, from the CLI
    "user_added", "user_disabled", "user_enabled", "user_unlocked", "user_password_set",
})


def record(where: Session | Engine, action: str, *, actor: str, ip: str, role: str | None = None,
           target: str | None = None, outcome: str = "ok", **detail: Any) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    row = AuditEntry(at=utcnow(), actor=actor[:64], role=role, action=action,
                     target=target[:200] if target else None, ip=(ip or "-")[:64], outcome=outcome,
                     detail={k: v for k, v in detail.items() if v is not None})
    if isinstance(where, Session):
        where.add(row)
    else:
        with transaction(where) as s:
            s.add(row)


def record_cli_change(where: Session | Engine, action: str, *, target: str | None, before: Any, after: Any,
                      **detail: Any) -> None:
    """A change made with a CLI command: the OS user and host as actor and origin, and the
    values before and after (None before a creation), so the audit page can show the change."""
    from .models import create_tables

    if isinstance(where, Engine):
        create_tables(where)  # a zone whose console never ran has no audit table yet
    actor, origin = cli_actor()
    record(where, action, actor=actor, ip=origin, target=target, before=before, after=after, **detail)


def changes(detail: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each field an entry's before/after differ in, for the page."""
    if "before" not in detail and "after" not in detail:
        return []
    before, after = detail.get("before"), detail.get("after")
    if isinstance(before, dict | None) and isinstance(after, dict | None) and (before or after):
        keys = list(dict.fromkeys([*(before or {}), *(after or {})]))
        return [(k, (before or {}).get(k), (after or {}).get(k)) for k in keys
                if (before or {}).get(k) != (after or {}).get(k)]
    return [("", before, after)]


def search(engine: Engine, *, actor: str | None = None, action: str | None = None, since: datetime | None = None,
           until: datetime | None = None, limit: int = 200, offset: int = 0) -> tuple[list[dict], int]:
    """Newest first; returns (entries, total matching)."""
    conds = []
    if actor:
        conds.append(AuditEntry.actor == actor)
    if action:
        conds.append(AuditEntry.action == action)
    if since:
        conds.append(AuditEntry.at >= since)
    if until:
        conds.append(AuditEntry.at < until)
    with transaction(engine) as s:
        total = s.scalar(select(func.count()).select_from(AuditEntry).where(*conds)) or 0
        rows = s.scalars(select(AuditEntry).where(*conds).order_by(AuditEntry.id.desc())
                         .limit(limit).offset(offset)).all()
        return [r.as_dict() for r in rows], total
