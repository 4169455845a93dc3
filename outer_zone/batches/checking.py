"""Every document of a batch judged by the inner zone's validators, every problem collected.

The inner zone stops at an envelope's first problem; an agency fixing a file wants them
all. So, per document: a malformed structure is reported alone (rules judged on a
malformed document would mislead), otherwise each field-rule finding of the schema pass
(check digits, bank codes, ROC dates); a schema-clean document then goes through
validate_documents itself for agency, fiscal year and totals. Amounts above the
electronic-payment limit only flag the document for paper (the inner zone refuses them).
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from typing import Any

from tgw_common.config import DocumentsConfig
from tgw_common.documents import KINDS, ValidDocument, parse_amount, schema, validate_documents
from tgw_common.documents.checks import mask_ids_in
from tgw_common.reasons import Refusal

from .errors import FieldError


@dataclass(frozen=True)
class Checked:
    document: ValidDocument
    paper: bool


def check_documents(docs: list[Any], *, agency: str, limits: DocumentsConfig,
                    today: dt.date) -> tuple[list[Checked], list[FieldError]]:
    """The documents that pass, and the errors of those that do not (JSON paths; the CSV
    reader translates them to cells)."""
    bank_file = str(limits.bank_codes_file) if limits.bank_codes_file else None
    # The limit is lifted for the shared validator: above it is a flag here, not a refusal.
    unlimited = limits.model_copy(update={"epayment_limit": sys.maxsize})
    passed: list[Checked] = []
    errors: list[FieldError] = []
    seen: dict[tuple[int, str], int] = {}
    for index, doc in enumerate(docs):
        found = _schema_errors(index, doc, bank_file)
        if found:
            errors += found
            continue
        try:
            valid = validate_documents(_manifest_of(agency, doc), None, agency=agency, limits=unlimited, today=today,
                                       manifest_checked=True, parsed={"doc": doc})[0]
        except Refusal as refusal:
            errors.append(_from_refusal(index, refusal))
            continue
        if valid.voucher_no is not None:
            key = (doc["fiscal_year"], valid.voucher_no)
            if key in seen:
                errors.append(FieldError(index, "$.voucher_no", "DUPLICATE_VOUCHER",
                                         f"憑單號碼 {valid.voucher_no} 與第 {seen[key]} 筆重複 / voucher "
                                         f"{valid.voucher_no} of fiscal year {key[0]} is also document {seen[key]}"))
                continue
            seen[key] = index
        passed.append(Checked(valid, over_limit(valid, limits.epayment_limit)))
    return passed, errors


def over_limit(valid: ValidDocument, limit: int) -> bool:
    """The inner zone's OVER_EPAYMENT_LIMIT rule, as a question: a payee or a limited field above it."""
    spec = KINDS[valid.kind]
    amounts = [p.amount for p in valid.payees] + [parse_amount(valid.data[name]) for name in spec.limit_fields]
    return any(amount > limit for amount in amounts)


def _schema_errors(index: int, doc: Any, bank_file: str | None) -> list[FieldError]:
    if not isinstance(doc, dict):
        return [FieldError(index, "$", "DOCUMENT_INVALID", "文件必須是 JSON 物件 / a document must be a JSON object")]
    kind = doc.get("kind")
    if kind not in KINDS:
        return [FieldError(index, "$.kind", "UNKNOWN_DOCUMENT_KIND",
                           f"不認得的文件種類 / unknown kind {str(kind)[:40]!r}; one of {', '.join(KINDS)}")]
    return [FieldError(index, f.path, f.code or "DOCUMENT_INVALID", _titled(kind, f.path, f.message))
            for f in schema.all_problems(kind, doc, bank_file)]


def _titled(kind: str, path: str, message: str) -> str:
    title = schema.title_of(kind, path)
    return mask_ids_in(f"{title}: {message}" if title else message)  # the inner zone never echoes an ID either


def _from_refusal(index: int, refusal: Refusal) -> FieldError:
    field = str(refusal.detail.get("field") or "$")
    # The shared validator names the file ("doc: $.path (title): problem"); here the index does.
    message = refusal.message.split(": ", 1)[-1] if refusal.message.startswith("doc: ") else refusal.message
    return FieldError(index, field, refusal.code, message)


def _manifest_of(agency: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"agency": agency, "documents": [{"path": "doc", "kind": doc["kind"]}]}
