"""Per-agency intake settings: live or parallel-test (雙軌平行作業), own e-payment limit, contact.

An agency without a row is judged with `inner.default_agency_mode` and
`documents.epayment_limit`, so a new agency needs no set-up to go live (or, with
default_agency_mode: parallel-test, cannot go live without one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, select

from tgw_common.db import transaction, utcnow

from .models import MODES, Agency

_AGENCY_CODE = re.compile(r"[0-9A-Z]{4,12}")  # as common.schema.json's agency_code
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class AgencyError(ValueError):
    """A setting that cannot be stored; the message says which and why."""


@dataclass(frozen=True)
class AgencyPolicy:
    """What the intake applies to one agency's envelope."""

    code: str
    mode: str
    epayment_limit: int
    own_limit: bool  # True when the limit is the agency's own, not documents.epayment_limit

    @property
    def is_test(self) -> bool:
        return self.mode == "parallel-test"


_POLICY = select(Agency.mode, Agency.epayment_limit).where(Agency.code == bindparam("code"))


def policy_for(conn: Connection, code: str, *, default_mode: str, default_limit: int) -> AgencyPolicy:
    """Read inside the load's transaction, so a mode change applies from the next envelope on."""
    row = conn.execute(_POLICY, {"code": code}).first()
    if row is None:
        return AgencyPolicy(code, default_mode, default_limit, False)
    limit = row.epayment_limit if row.epayment_limit is not None else default_limit
    return AgencyPolicy(code, row.mode, limit, row.epayment_limit is not None)


def set_agency(engine: Engine, code: str, *, mode: str | None, epayment_limit: int | None = None,
               clear_limit: bool = False, contact: str | None = None, default_mode: str = "live") -> Agency:
    """Create or change an agency's row; only the settings given change."""
    if not _AGENCY_CODE.fullmatch(code):
        raise AgencyError(f"agency code {code!r} must be 4 to 12 upper-case letters or digits")
    if mode is not None and mode not in MODES:
        raise AgencyError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if epayment_limit is not None and epayment_limit <= 0:
        raise AgencyError(f"--epayment-limit must be a positive whole NT$ amount, not {epayment_limit}")
    if contact is not None and contact != "" and not _EMAIL.fullmatch(contact):
        raise AgencyError(f"--contact {contact!r} is not an e-mail address")
    now = utcnow()
    with transaction(engine) as s:
        row = s.get(Agency, code)
        if row is None:
            row = Agency(code=code, mode=mode or default_mode, created_at=now)
            s.add(row)
        if mode is not None:
            row.mode = mode
        if epayment_limit is not None:
            row.epayment_limit = epayment_limit
        if clear_limit:
            row.epayment_limit = None
        if contact is not None:
            row.contact = contact or None
        row.updated_at = now
        s.flush()
        s.expunge(row)
        return row


def list_agencies(engine: Engine) -> list[Agency]:
    with transaction(engine) as s:
        rows = list(s.scalars(select(Agency).order_by(Agency.code)))
        for row in rows:
            s.expunge(row)
        return rows
