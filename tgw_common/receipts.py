"""Receipts (TPR/1): the inner zone's signed word on an envelope's fate, read by the outer zone.

A receipt is a CMS SignedData (DER) with exactly one signer, the treasury's receipt
certificate, over a small JSON document (docs/receipts.md). It is signed with a key of its
own, never the envelope decryption key, and carries its signer's certificate and the
intermediates so that `openssl cms -verify -CAfile root.pem -purpose any` verifies it alone.

The outer end trusts nothing but the pinned receipt certificate: a receipt from any other
signer, with a broken signature, an invalid path or a document outside the schema is
rejected with a `ReceiptRejected` naming why, and the caller drops it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files

import jsonschema
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tgw_common.config import DIGESTS, SIGNATURES
from tgw_common.pki.certs import fingerprint
from tgw_common.pki.trust import TrustStore
from tgw_common.reasons import Layer, Refusal
from tgw_common.tpe.signed import read_signed, sign_new

FORMAT = "TPR/1"
STATES = ("loaded", "refused", "held", "payments")
MAX_RECEIPT_BYTES = 4 * 1024 * 1024  # a payments receipt of a large envelope, with room; nothing near this is sane


class ReceiptRejected(Exception):
    """A receipt the outer end must drop; `why` is a short stable label (logs and counters)."""

    def __init__(self, why: str, detail: str) -> None:
        super().__init__(f"{why}: {detail}")
        self.why = why
        self.detail = detail


@dataclass(frozen=True)
class Payment:
    document_id: str
    result: str  # paid | failed
    date: str  # YYYY-MM-DD, the payment system's value date
    bank_reference: str = ""
    failure_reason: str = ""


@dataclass(frozen=True)
class Receipt:
    tracking_id: str
    envelope_sha256: str
    agency: str
    state: str
    issued_at: str
    reason: str | None = None
    layer: str | None = None
    message: str | None = None
    documents: int | None = None
    control_total: int | None = None
    document_ids: tuple[str, ...] = ()
    payments: tuple[Payment, ...] = ()
    format: str = field(default=FORMAT)

    def to_json(self) -> bytes:
        """The canonical bytes signed: sorted keys, no spaces, UTF-8, empty parts left out."""
        body = {key: value for key, value in asdict(self).items() if value not in (None, (), [])}
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Receipt:
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReceiptRejected("not_json", f"the signed content is not JSON: {exc}") from None
        problems = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
        if problems:
            where = "/".join(str(p) for p in problems[0].absolute_path) or "(top)"
            raise ReceiptRejected("bad_document", f"{where}: {problems[0].message}")
        payments = tuple(Payment(**p) for p in body.pop("payments", ()))
        return cls(**{**body, "document_ids": tuple(body.get("document_ids", ())), "payments": payments})


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(files("tgw_common").joinpath("receipt.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def now_text() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def issue_receipt(receipt: Receipt, cert: x509.Certificate, key: rsa.RSAPrivateKey,
                  chain: list[x509.Certificate] = ()) -> bytes:
    """The receipt signed with the receipt key, carrying its certificate and `chain`."""
    content = receipt.to_json()
    Receipt.from_json(content)  # never sign what the outer end would drop
    return sign_new(content, cert, key, extra_certs=list(chain))


def read_receipt(der: bytes, *, signer: x509.Certificate, trust: TrustStore | None,
                 moment: datetime | None = None) -> Receipt:
    """Verify a receipt against the pinned `signer` (and its path and revocation in `trust`)."""
    if len(der) > MAX_RECEIPT_BYTES:
        raise ReceiptRejected("too_large", f"{len(der)} bytes, the limit is {MAX_RECEIPT_BYTES}")
    try:
        layer = read_signed(der, layer=Layer.RELEASE, digests=list(DIGESTS), signatures=list(SIGNATURES),
                            lookup=lambda _sid: [signer], exactly_one=True)
    except Refusal as refusal:
        raise ReceiptRejected("bad_signature", f"{refusal.code}: {refusal.message}") from None
    check = layer.signers[0]
    if fingerprint(check.certificate) != fingerprint(signer):
        raise ReceiptRejected("wrong_signer", "signed by a certificate that is not the receipt certificate")
    if trust is not None:
        try:
            trust.validate(signer, layer=Layer.RELEASE, moment=moment or datetime.now(UTC),
                           signing_time=check.signing_time, extra_certs=layer.certificates)
        except Refusal as refusal:
            raise ReceiptRejected("untrusted_signer", f"{refusal.code}: {refusal.message}") from None
    return Receipt.from_json(bytes(layer.content))


def content_of(der: bytes) -> Receipt:
    """The statement of a receipt this zone signed itself (no verification: for its own notices)."""
    from asn1crypto import cms

    return Receipt.from_json(cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native)
