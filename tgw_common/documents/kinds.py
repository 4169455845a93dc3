"""The document kinds the gateway accepts, and what the rest of the code needs to know about each.

The JSON Schema of a kind (schemas/<kind>.schema.json) says what a document looks like;
this table says where its money is: which field is its amount for the control total,
which number identifies it, and where its payees are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    key: str
    zh: str  # the seed system's name of the form
    en: str
    number_field: str  # the document's own number
    amount_field: str | None  # what it adds to the control total; None adds 0
    payees_field: str | None = None  # list of payees, or a single payee object (payee_single)
    payee_single: bool = False
    is_voucher: bool = False  # voucher numbers must be unique (DUPLICATE_VOUCHER)
    # Amounts above DocumentsConfig.epayment_limit are refused: the electronic path may not carry them.
    limit_fields: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {k.key: k for k in (
    Kind("payment_voucher", "付款憑單", "payment voucher", "voucher_no", "total_amount",
         payees_field="payees", is_voucher=True, limit_fields=("total_amount",)),
    Kind("transfer_voucher", "轉帳憑單", "transfer voucher", "voucher_no", "total_amount",
         payees_field="recipients", is_voucher=True, limit_fields=("total_amount",)),
    Kind("correction_request", "更正委託書", "correction request", "document_no", None),
    Kind("stop_payment_notice", "付款憑單止付通知書", "stop-payment notice", "document_no", "amount"),
    Kind("cheque_cancellation", "國庫支票註銷申請書", "treasury cheque cancellation", "document_no", "amount"),
    Kind("expenditure_recovery", "支出收回書", "expenditure recovery", "document_no", "amount"),
    Kind("payment_slip", "繳款書", "payment slip", "document_no", "amount"),
    Kind("revenue_refund", "收入退還書", "revenue refund", "document_no", "amount",
         payees_field="payee", payee_single=True, limit_fields=("amount",)),
)}

VOUCHER_KINDS = tuple(k for k, v in KINDS.items() if v.is_voucher)
