"""The audit log: logins, uploads and administrative actions (who, what, when, from where).

docs/outer.md lists every action name. Entries are written in the caller's transaction when
one is given, so an administrative change and its audit entry commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tgw_common.db import transaction, utcnow
from tgw_common.web.actor import cli_actor as cli_actor  # re-exported: (who, where) of a CLI command

from .models import AuditEntry

# Every action the portal and the CLI write; a typo must fail loudly, not go unaudited.
ACTIONS = frozenset({
    # sign-in
    "login", "login_failed", "login_throttled", "logout", "session_expired", "password_changed",
    "ip_refused", "api_auth_failed", "forbidden",
    # uploads
    "upload_accepted", "upload_refused",
    # the agency administrator, on the web
    "user_created", "user_updated", "user_password_reset", "delegation_added", "delegation_revoked",
    "cert_request_submitted",
    # treasury staff, on the CLI
    "agency_added", "agency_ip_allowed", "agency_ip_removed", "cli_user_added", "cli_user_unlocked",
    "cli_password_set", "token_created", "token_revoked", "registration_approved", "registration_rejected",
    # `tgw registry` with an outer-zone config
    "signer_registered", "signer_revoked", "registry_imported",
})


def record(target_session: Session | Engine, action: str, *, actor: str, ip: str, agency: str | None = None,
           target: str | None = None, outcome: str = "ok", reason: str | None = None, **detail: Any) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    row = AuditEntry(at=utcnow(), actor=actor[:64], agency=agency, action=action,
                     target=(target or None) and target[:200], ip=ip[:64], outcome=outcome, reason=reason,
                     detail=detail)
    if isinstance(target_session, Session):
        target_session.add(row)
    else:
        with transaction(target_session) as s:
            s.add(row)


def recent(engine: Engine, *, limit: int = 50, agency: str | None = None, action: str | None = None) -> list[dict]:
    with transaction(engine) as s:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if agency:
            q = q.where(AuditEntry.agency == agency)
        if action:
            q = q.where(AuditEntry.action == action)
        return [r.as_dict() for r in s.scalars(q)]
