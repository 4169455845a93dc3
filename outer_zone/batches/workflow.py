"""A batch's way from draft to release (docs/agency-workflow.md, "Routing").

    draft / returned --submit--> [review --submit-->] accountant --sign--> head --sign--> releaser --release--> released
    review, accountant, head, releaser --return (comment)--> returned

The state names who acts next. Every step checks, in one transaction holding the batch's row,
that the batch is at that step, that it belongs to the actor's agency and that the actor holds
the step's role (own or delegated right now). What is signed is the payload ZIP built at submit:
changing the documents or returning the batch deletes that payload with its signatures, so no
signature ever covers bytes other than the ones the officers saw.

Signatures are judged with the inner zone's own rules (EnvelopeOpener.check_approval); the
release goes through the upload intake exactly as an uploaded envelope does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tgw_common.config import Config
from tgw_common.db import transaction, utcnow
from tgw_common.pki.certs import load_certificate_file
from tgw_common.reasons import Layer, Refusal
from tgw_common.tpe import MANIFEST, build_payload, make_seal
from tgw_common.tpe.cms import load_content_info
from tgw_common.tpe.opener import EnvelopeOpener, SignerSummary
from tgw_common.tpe.signed import merge_signatures

from ..accounts import Principal
from ..intake import Uploader, UploadIntake
from ..models import Batch, BatchDocument, BatchEnvelope, BatchEvent, ReleaseSeen, User, UserRole
from .store import BatchImport, add_documents, read_documents

# Who acts at each step; the preparer's steps (draft, returned) may also be taken by a
# releaser, who holds the agency's API token in setups that import from an accounting system.
STEP_ROLE = {"review": "reviewer", "accountant": "accountant", "head": "head", "releaser": "releaser"}
PREPARERS = ("preparer", "releaser")
EDITABLE = ("draft", "returned", "review", "accountant", "head", "releaser")
MAX_COMMENT = 1000


class BatchNotFound(LookupError):
    """No such batch in the actor's agency (another agency's batch is not admitted to exist)."""


def _refuse(code: str, message: str, layer: Layer = Layer.BATCH) -> Refusal:
    return Refusal(code, layer, message)


def _must_hold(actor: Principal, roles: tuple[str, ...], what: str) -> None:
    if not any(actor.has(r) for r in roles):
        raise _refuse("FORBIDDEN", f"您的角色不能{what[0]} / your role may not {what[1]} "
                                   f"(needs {' or '.join(roles)})")


def _must_be_at(batch: Batch, states: tuple[str, ...], what: str) -> None:
    if batch.state not in states:
        raise _refuse("BATCH_WRONG_STATE", f"批次 {batch.id} 目前為 {batch.state}，不能{what[0]} / batch {batch.id} is "
                                           f"{batch.state}: cannot {what[1]} (only when {' or '.join(states)})")


def _event(s: Session, batch: Batch, actor: Principal, role: str, action: str, comment: str = "") -> None:
    s.add(BatchEvent(batch_id=batch.id, actor=actor.username, role=role, at=utcnow(), action=action,
                     comment=comment[:MAX_COMMENT]))


def _acting_role(actor: Principal, roles: tuple[str, ...]) -> str:
    return next(r for r in roles if actor.has(r))


class Workflow:
    def __init__(self, engine: Engine, config: Config, opener: Callable[[], EnvelopeOpener],
                 intake: UploadIntake) -> None:
        self.engine = engine
        self.config = config
        self.opener = opener
        self.intake = intake
        self._treasury: x509.Certificate | None = None

    # --- one batch, locked, in the actor's agency
    @contextmanager
    def _batch(self, actor: Principal, batch_id: int) -> Iterator[tuple[Session, Batch, BatchEnvelope | None]]:
        with transaction(self.engine) as s:
            batch = s.get(Batch, batch_id, with_for_update=True)
            if batch is None or batch.agency != actor.agency:
                raise BatchNotFound(batch_id)
            yield s, batch, s.get(BatchEnvelope, batch_id)

    def _discard(self, s: Session, batch: Batch, env: BatchEnvelope | None, actor: Principal, role: str) -> None:
        """Drop the payload and every signature over it: the next submit builds a new payload."""
        if env is None:
            return
        if env.signers:
            names = ", ".join(f"{x['role']}: {x['subject']}" for x in env.signers)
            _event(s, batch, actor, role, "signatures_discarded", names)
        s.delete(env)

    # --- the preparer
    def replace_documents(self, actor: Principal, batch_id: int, data: bytes, content_type: str, *,
                          today: dt.date) -> BatchImport:
        """New documents for a batch not yet released: back to draft, signatures discarded.
        With errors nothing changes (the errors are the answer)."""
        _must_hold(actor, PREPARERS, ("修改批次", "change a batch"))
        with self._batch(actor, batch_id) as (_s, batch, _env):  # another agency's batch: 404 before any check
            _must_be_at(batch, EDITABLE, ("修改", "change it"))
        passed, errors = read_documents(data, content_type, agency=actor.agency, limits=self.config.documents,
                                        today=today)
        if errors:
            return BatchImport(batch_id=batch_id, errors=errors)
        with self._batch(actor, batch_id) as (s, batch, env):
            _must_be_at(batch, EDITABLE, ("修改", "change it"))
            role = _acting_role(actor, PREPARERS)
            self._discard(s, batch, env, actor, role)
            for old in s.scalars(select(BatchDocument).where(BatchDocument.batch_id == batch_id)):
                s.delete(old)
            s.flush()
            add_documents(s, batch, passed)
            batch.state = "draft"
            _event(s, batch, actor, role, "changed", f"{len(passed)} documents")
        return BatchImport(batch_id=batch_id)

    def submit(self, actor: Principal, batch_id: int) -> str:
        """送出: the preparer's draft to the reviewer (if the agency has one) or the accountant;
        the reviewer's pass to the accountant. Returns the new state."""
        with self._batch(actor, batch_id) as (s, batch, env):
            if batch.state == "review":
                _must_hold(actor, ("reviewer",), ("覆核", "review"))
                batch.state = "accountant"
                _event(s, batch, actor, "reviewer", "reviewed")
                return batch.state
            _must_hold(actor, PREPARERS, ("送出批次", "submit a batch"))
            _must_be_at(batch, ("draft", "returned"), ("送出", "submit it"))
            if env is not None:
                s.delete(env)
                s.flush()
            s.add(self._build_envelope(s, batch))
            batch.state = "review" if self._has_reviewer(s, batch.agency) else "accountant"
            _event(s, batch, actor, _acting_role(actor, PREPARERS), "submitted")
            return batch.state

    def _build_envelope(self, s: Session, batch: Batch) -> BatchEnvelope:
        docs = s.scalars(select(BatchDocument).where(BatchDocument.batch_id == batch.id, BatchDocument.paper.is_(False))
                         .order_by(BatchDocument.position)).all()
        if not docs:
            raise _refuse("BATCH_ALL_PAPER", f"批次 {batch.id} 的文件都超過電子支付限額，請列印紙本 / every document of batch "
                                             f"{batch.id} is above the electronic-payment limit: print them as paper vouchers")
        now = utcnow()
        envelope_id = f"{batch.agency}-{now:%Y%m%d%H%M%S}-B{batch.id}-{secrets.token_hex(4)}"
        files = [(f"documents/{d.position + 1:04d}-{d.kind}.json", d.kind,
                  json.dumps(d.document, ensure_ascii=False, indent=2).encode()) for d in docs]
        payload = build_payload(envelope_id, batch.agency, files)
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:  # our own bytes: the control totals as built
            control = json.loads(archive.read(MANIFEST))["control"]
        return BatchEnvelope(batch_id=batch.id, envelope_id=envelope_id, payload=payload,
                             payload_sha256=hashlib.sha256(payload).hexdigest(), document_count=len(docs),
                             total_amount=int(control["total_amount"]), signers=[])

    @staticmethod
    def _has_reviewer(s: Session, agency: str) -> bool:
        found = s.scalars(select(User.id).join(UserRole, UserRole.user_id == User.id)
                          .where(User.agency == agency, User.active.is_(True), UserRole.role == "reviewer")
                          .limit(1)).first()
        return found is not None

    # --- any reviewing step
    def return_batch(self, actor: Principal, batch_id: int, comment: str) -> None:
        """退回: back to the preparer with a comment; the payload and its signatures are discarded."""
        comment = (comment or "").strip()
        if not comment or len(comment) > MAX_COMMENT:
            raise _refuse("RETURN_COMMENT_REQUIRED", f"退回須附說明（1 至 {MAX_COMMENT} 字）/ a return needs a comment "
                                                     f"of 1 to {MAX_COMMENT} characters (got {len(comment)})")
        with self._batch(actor, batch_id) as (s, batch, env):
            _must_be_at(batch, tuple(STEP_ROLE), ("退回", "return it"))
            role = STEP_ROLE[batch.state]
            _must_hold(actor, (role,), ("退回此步驟的批次", f"return a batch at the {batch.state} step"))
            self._discard(s, batch, env, actor, role)
            batch.state = "returned"
            _event(s, batch, actor, role, "returned", comment)

    # --- the signing steps
    def payload(self, actor: Principal, batch_id: int) -> bytes:
        """The exact payload ZIP the officers sign (available from submit until purged)."""
        with self._batch(actor, batch_id) as (_s, batch, env):
            if env is None or env.payload is None:
                raise _refuse("BATCH_WRONG_STATE", f"批次 {batch_id} 目前沒有待簽的 payload / batch {batch_id} has no payload "
                                                   f"now (state {batch.state}; a payload exists from submit to purge)")
            return env.payload

    def add_signature(self, actor: Principal, batch_id: int, der: bytes) -> SignerSummary:
        """核章: one approval signature (DER SignedData over the payload) for the current step."""
        with self._batch(actor, batch_id) as (_s, batch, env):
            _must_be_at(batch, ("accountant", "head"), ("核章", "sign it"))
            step = batch.state
            _must_hold(actor, (step,), ("在此步驟核章", f"sign at the {step} step"))
            payload, agency = env.payload, batch.agency
        # Judged outside the row lock: path building and CRLs take time, the lock is re-taken below.
        summary = self.opener().check_approval(der, content=payload, role=step, agency=agency)
        with self._batch(actor, batch_id) as (s, batch, env):
            if batch.state != step or env is None or env.payload != payload:
                raise _refuse("BATCH_WRONG_STATE", f"批次 {batch_id} 在核章期間已變更 / batch {batch_id} changed while the "
                                                   "signature was being checked; fetch the payload again")
            if any(x["fingerprint"] == summary.fingerprint for x in env.signers):
                raise Refusal("APPROVALS_SAME_CERT", Layer.APPROVAL, f'"{summary.subject}" has already signed this batch')
            env.approval = merge_signatures(env.approval, der)
            env.signers = [*env.signers, asdict(summary)]
            delegate = " (代理 delegate)" if summary.delegate else ""
            _event(s, batch, actor, step, "signed", f"{summary.subject}{delegate} {summary.fingerprint[:16]}")
            if step == "accountant":
                batch.state = "head"
            else:
                env.sealed = make_seal(env.approval, [self._treasury_certificate()])
                env.sealed_sha256 = hashlib.sha256(env.sealed).hexdigest()
                batch.state = "releaser"
                _event(s, batch, actor, step, "sealed", f"SHA-256 {env.sealed_sha256}")
        return summary

    def _treasury_certificate(self) -> x509.Certificate:
        if self._treasury is None:
            treasury = self.config.treasury
            if treasury is None:
                raise _refuse("BATCH_CANNOT_SEAL", "入口網站未設定 treasury.certificate / the portal's config has no "
                                                   "treasury.certificate to seal batches for")
            self._treasury = load_certificate_file(treasury.certificate)
        return self._treasury

    # --- the releaser
    def sealed(self, actor: Principal, batch_id: int) -> bytes:
        """The sealed layer (the approval layer encrypted for the treasury) to be release-signed."""
        with self._batch(actor, batch_id) as (_s, batch, env):
            _must_be_at(batch, ("releaser",), ("取得加密信封", "fetch the sealed layer"))
            _must_hold(actor, ("releaser",), ("放行", "release"))
            return env.sealed

    def release(self, actor: Principal, batch_id: int, der: bytes, client_ip: str) -> dict[str, Any]:
        """放行: the release-signed envelope through the upload intake; the batch is then released."""
        with self._batch(actor, batch_id) as (_s, batch, env):
            _must_be_at(batch, ("releaser",), ("放行", "release it"))
            _must_hold(actor, ("releaser",), ("放行", "release"))
            sealed, digest = env.sealed, env.sealed_sha256
        content = load_content_info(der, Layer.RELEASE, ("signed_data",))["content"]["encap_content_info"]["content"]
        if content.native != sealed:
            raise _refuse("RELEASE_WRONG_CONTENT", f"放行簽章所簽的不是批次 {batch_id} 的加密信封 / the release signature does "
                                                   f"not cover batch {batch_id}'s sealed layer (SHA-256 {digest})")
        answer = self._earlier_release(digest)
        if answer is None:
            try:
                answer = self.intake.receive(io.BytesIO(der), content_length=len(der),
                                             who=Uploader(actor.id, actor.username, actor.agency, client_ip, "batch"))
            except Refusal as refusal:
                answer = self._earlier_release(digest) if refusal.code == "REPLAY" else None
                if answer is None:
                    raise
        with self._batch(actor, batch_id) as (s, batch, env):
            if batch.state != "released":
                env.tracking_id, env.released_at = answer["tracking_id"], utcnow()
                batch.state = "released"
                _event(s, batch, actor, "releaser", "released", answer["tracking_id"])
        return answer

    def _earlier_release(self, digest: str) -> dict[str, Any] | None:
        """A release of this very sealed layer already accepted (an interrupted earlier try)."""
        with transaction(self.engine) as s:
            seen = s.get(ReleaseSeen, digest)
            return None if seen is None else {"tracking_id": seen.tracking_id, "received_at": seen.at.isoformat(),
                                              "state": "accepted", "again": True}

    # --- housekeeping
    def purge_plaintext(self, now: dt.datetime | None = None) -> int:
        """Released batches older than outer.batch_plaintext_hours lose their plaintext."""
        cutoff = (now or utcnow()) - dt.timedelta(hours=self.config.outer.batch_plaintext_hours)
        with transaction(self.engine) as s:
            due = s.scalars(select(BatchEnvelope).where(BatchEnvelope.released_at <= cutoff,
                                                        BatchEnvelope.purged_at.is_(None))).all()
            for env in due:
                env.payload = env.approval = None
                env.purged_at = utcnow()
                for doc in s.scalars(select(BatchDocument).where(BatchDocument.batch_id == env.batch_id)):
                    doc.document = {}
                s.add(BatchEvent(batch_id=env.batch_id, actor="system", role="system", at=env.purged_at,
                                 action="purged", comment="payload, approval layer and documents removed"))
            return len(due)

