"""The outer zone's tables (in the outer database, beside provenance_events and signers).

Only ORM models here, so every query in the zone is built by SQLAlchemy with bound
parameters: no SQL is ever assembled from strings (the MOVEit lesson).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tgw_common.db import Base, UTCDateTime

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Portal roles. The three signing roles match the signer registry's; "admin" is the
# agency administrator (權限管理者); preparer and reviewer only follow their uploads.
ROLES = ("admin", "preparer", "reviewer", "accountant", "head", "releaser")
ROLE_TITLES = {
    "admin": ("權限管理者", "agency administrator"),
    "preparer": ("承辦人", "preparer"),
    "reviewer": ("覆核人", "reviewer"),
    "accountant": ("主辦會計", "accountant"),
    "head": ("機關長官", "head"),
    "releaser": ("放行人", "releaser"),
}


class Agency(Base):
    __tablename__ = "outer_agencies"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgencyNetwork(Base):
    """One entry of an agency's public-address allow-list (公眾位址白名單)."""

    __tablename__ = "outer_agency_networks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(ForeignKey("outer_agencies.code"), index=True)
    cidr: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("agency", "cidr"),)


class User(Base):
    __tablename__ = "outer_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    agency: Mapped[str] = mapped_column(ForeignKey("outer_agencies.code"), index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserRole(Base):
    __tablename__ = "outer_user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("outer_users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class Delegation(Base):
    """代理設定: `delegate` acts in `principal`'s role in the portal during [starts_at, ends_at)."""

    __tablename__ = "outer_delegations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(ForeignKey("outer_agencies.code"), index=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("outer_users.id"))
    delegate_id: Mapped[int] = mapped_column(ForeignKey("outer_users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token of a releaser; only its SHA-256 is kept (the token is printed once)."""

    __tablename__ = "outer_api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("outer_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A signed-in browser. The cookie holds a random key; the row holds only its SHA-256."""

    __tablename__ = "outer_web_sessions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("outer_users.id"), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthFailure(Base):
    """A failed login or bearer-token attempt: the rate limiter counts these per address."""

    __tablename__ = "outer_auth_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(64))


class Upload(Base):
    """Every authenticated upload, accepted or refused. "sent" is not stored: it is the
    transfer sender's provenance event for the tracking id."""

    __tablename__ = "outer_uploads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tracking_id: Mapped[str] = mapped_column(String(64), unique=True)
    agency: Mapped[str] = mapped_column(String(16), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("outer_users.id"))
    username: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(8))
    client_ip: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    release_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # accepted | refused
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(1000))
    releaser: Mapped[str | None] = mapped_column(String(512))
    releaser_fingerprint: Mapped[str | None] = mapped_column(String(64))
    spooled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StoredReceipt(Base):
    """A receipt from the inner zone, verified (docs/receipts.md): its bytes, for the agency to
    download, and what it states. One row per distinct receipt: the return link may deliver
    the same file more than once."""

    __tablename__ = "outer_receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    der_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    tracking_id: Mapped[str] = mapped_column(String(64), index=True)
    agency: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[str] = mapped_column(String(16))  # loaded | refused | held | payments
    issued_at: Mapped[str] = mapped_column(String(32))  # as the receipt says (UTC, ISO 8601)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    document: Mapped[dict] = mapped_column(JSON)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class ReleaseSeen(Base):
    """The replay guard: one row per accepted release digest (primary key = uniqueness)."""

    __tablename__ = "outer_release_digests"

    release_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tracking_id: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class CertRequest(Base):
    """憑證註冊: an agency asks for a certificate to be registered; treasury staff decide."""

    __tablename__ = "outer_cert_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(ForeignKey("outer_agencies.code"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    delegate: Mapped[bool] = mapped_column(Boolean, default=False)
    window_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(512))
    issuer: Mapped[str] = mapped_column(String(512))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | approved | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(512))
    export_path: Mapped[str | None] = mapped_column(String(1024))
    # 更換註冊: the fingerprint of the registered certificate this one replaces for the role.
    replaces: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(Base):
    """Who did what, when, from where: logins, uploads and administrative actions."""

    __tablename__ = "outer_audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str | None] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "agency": self.agency,
                "action": self.action, "target": self.target, "ip": self.ip, "outcome": self.outcome,
                "reason": self.reason, "detail": self.detail or {}}


class Batch(Base):
    """批次: documents imported from one file, kept in the outer zone until it is released.

    `errors` stays empty for a stored batch: a file with errors is answered, never stored."""

    __tablename__ = "outer_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(ForeignKey("outer_agencies.code"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    # draft | returned | review | accountant | head | releaser | released (who acts next)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    document_count: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)


class BatchDocument(Base):
    """One document of a batch, in docs/documents.md's JSON format; `paper` marks one above
    documents.epayment_limit, which must be paid on paper (flagged, not refused)."""

    __tablename__ = "outer_batch_documents"

    batch_id: Mapped[int] = mapped_column(ForeignKey("outer_batches.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    paper: Mapped[bool] = mapped_column(Boolean, default=False)


class BatchEvent(Base):
    """A batch's history: who, in which role, did what, when, with what comment."""

    __tablename__ = "outer_batch_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("outer_batches.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(String(1000), default="")


class BatchEnvelope(Base):
    """A submitted batch's TPE/1 layers as they grow: the payload ZIP built at submit (the exact
    bytes every officer signs), the approval layer, the sealed layer, then the tracking id.

    Discarding the signatures deletes the row; after release the plaintext (payload and approval
    layer) is purged on outer.batch_plaintext_hours, the sealed layer and the hashes stay."""

    __tablename__ = "outer_batch_envelopes"

    batch_id: Mapped[int] = mapped_column(ForeignKey("outer_batches.id"), primary_key=True)
    envelope_id: Mapped[str] = mapped_column(String(128), unique=True)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    document_count: Mapped[int] = mapped_column(Integer)  # electronic documents in the payload
    total_amount: Mapped[int] = mapped_column(BigInteger)
    approval: Mapped[bytes | None] = mapped_column(LargeBinary)
    signers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    tracking_id: Mapped[str | None] = mapped_column(String(64), index=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
