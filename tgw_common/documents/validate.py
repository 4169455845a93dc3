"""Business validation of the documents of one envelope.

Order of judgement, per document in manifest order (the first failure refuses the whole
envelope, and only it is reported):
  1. UTF-8 strict JSON object whose "kind" equals the manifest entry's kind (DOCUMENT_INVALID)
  2. the kind's schema: structure first (DOCUMENT_INVALID), then the field rules in
     document order (BAD_ROC_DATE, BAD_BUSINESS_NUMBER, BAD_NATIONAL_ID, BAD_BANK_CODE)
  3. agency (AGENCY_MISMATCH), fiscal year window (BAD_FISCAL_YEAR)
  4. money: each payee amount and the total within the e-payment limit
     (OVER_EPAYMENT_LIMIT), the total equal to the sum of the payees (VOUCHER_TOTAL_MISMATCH)
then across documents: a voucher number used twice (DUPLICATE_VOUCHER).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tgw_common.config import DocumentsConfig
from tgw_common.reasons import Layer, Refusal

from . import schema
from .checks import mask_ids_in, parse_amount, roc_year
from .jsonparse import JsonProblem, parse_json_bytes
from .kinds import KINDS
from .manifest import validate_manifest


@dataclass(frozen=True)
class Payee:
    """One payee (or credited account) of a document, amounts as ints."""

    name: str
    id_number: str | None
    bank_code: str | None
    account_no: str | None
    amount: int


@dataclass(frozen=True)
class ValidDocument:
    path: str
    kind: str
    data: dict[str, Any]  # the parsed document as sent (amounts may still be digit strings)
    amount: int  # what it adds to the control total (document_amount)
    voucher_no: str | None  # vouchers only
    payees: list[Payee] = field(default_factory=list)
    fiscal_year: int | None = None
    document_no: str | None = None  # the document's own number (voucher_no for vouchers)


def document_amount(kind: str, doc: Mapping[str, Any]) -> int:
    """The amount a document adds to the manifest's control total.

    Vouchers: total_amount. Stop-payment notices, cheque cancellations, expenditure
    recoveries, payment slips and revenue refunds: amount. Correction requests move no
    money: 0. Raises KeyError for an unknown kind, ValueError for a bad amount.
    """
    spec = KINDS[kind]
    return parse_amount(doc[spec.amount_field]) if spec.amount_field else 0


def payees_of(kind: str, doc: Mapping[str, Any]) -> list[Payee]:
    spec = KINDS[kind]
    if spec.payees_field is None:
        return []
    if spec.payee_single:
        p = doc[spec.payees_field]
        return [Payee(p["name"], p.get("id_number"), p.get("bank_code"), p.get("account_no"),
                      parse_amount(doc["amount"]))]
    return [Payee(p["name"], p.get("id_number") or p.get("business_number"), p.get("bank_code"),
                  p.get("account_no") or p.get("treasury_account"), parse_amount(p["amount"]))
            for p in doc[spec.payees_field]]


def _refuse(code: str, file: str, kind: str | None, path: str, problem: str) -> Refusal:
    title = schema.title_of(kind, path) if kind in KINDS else ""
    where = f"{path} ({title})" if title else path
    return Refusal(code, Layer.DOCUMENTS, mask_ids_in(f"{file}: {where}: {problem}"), file=file, field=path)


def validate_documents(manifest: dict[str, Any], documents: Mapping[str, bytes] | None, *, agency: str,
                       limits: DocumentsConfig, today: dt.date, manifest_checked: bool = False,
                       parsed: Mapping[str, dict[str, Any]] | None = None) -> list[ValidDocument]:
    """Check every document the manifest lists; return them parsed, or raise a Refusal.

    `documents` maps manifest paths to file bytes (the ZIP layer has already matched the
    hashes). `agency` is the envelope's agency as the signers established it. `today`
    fixes the fiscal-year window, so the function stays pure and testable. The payload
    layer has validated the manifest already when `manifest_checked` is true, and hands on
    the documents it has read with `parse_document` as `parsed` (then `documents` is None).
    """
    if not manifest_checked:
        validate_manifest(manifest)
    if manifest["agency"] != agency:
        raise Refusal("AGENCY_MISMATCH", Layer.DOCUMENTS,
                      f"manifest.json: $.agency: {manifest['agency']!r} differs from the envelope's agency {agency!r}",
                      file="manifest.json", field="$.agency")
    bank_file = str(limits.bank_codes_file) if limits.bank_codes_file else None
    current = roc_year(today)
    years = range(current - limits.fiscal_years_back, current + limits.fiscal_years_ahead + 1)
    seen_vouchers: dict[tuple[int, str], str] = {}
    result = []
    for entry in manifest["documents"]:
        path, kind = entry["path"], entry["kind"]
        if path not in (parsed if parsed is not None else documents):
            raise Refusal("MANIFEST_FILE_MISSING", Layer.PAYLOAD, f"{path}: listed in manifest.json but not supplied",
                          file=path)
        doc = parsed[path] if parsed is not None else parse_document(path, kind, documents[path])
        finding = schema.first_problem(kind, doc, bank_file)
        if finding:
            raise _refuse(finding.code or "DOCUMENT_INVALID", path, kind, finding.path, finding.message)
        _check_header(path, kind, doc, agency, years)
        try:
            valid = _check_money(path, kind, doc, limits.epayment_limit)
        except ValueError as exc:  # the schema already refuses bad amounts; this is a second net
            raise _refuse("DOCUMENT_INVALID", path, kind, "$", str(exc)) from None
        if valid.voucher_no is not None:
            key = (doc["fiscal_year"], valid.voucher_no)
            if key in seen_vouchers:
                raise _refuse("DUPLICATE_VOUCHER", path, kind, "$.voucher_no",
                              f"voucher {valid.voucher_no!r} of fiscal year {key[0]} is also in {seen_vouchers[key]}")
            seen_vouchers[key] = path
        result.append(valid)
    return result


def amount_or_refusal(path: str, kind: str, doc: dict[str, Any]) -> int:
    """What the document adds to the control total; a document too malformed to say is
    refused with the finding its schema gives (the payload layer adds up amounts before the
    documents layer has looked at them)."""
    try:
        return document_amount(kind, doc)
    except (KeyError, TypeError, ValueError):
        # An amount that cannot be read is a structural finding, which comes before any
        # rule's: the bank list (the only thing configured) cannot change it.
        finding = schema.first_problem(kind, doc)
        if finding:
            raise _refuse(finding.code or "DOCUMENT_INVALID", path, kind, finding.path, finding.message) from None
        raise _refuse("DOCUMENT_INVALID", path, kind, "$", "its amount cannot be read") from None


def parse_document(path: str, kind: str, data: bytes) -> dict[str, Any]:
    """Strict JSON, an object, of the manifest's kind; or the DOCUMENT_INVALID refusal."""
    try:
        doc = parse_json_bytes(data)
    except JsonProblem as exc:
        raise _refuse("DOCUMENT_INVALID", path, None, "$", str(exc)) from None
    if not isinstance(doc, dict):
        raise _refuse("DOCUMENT_INVALID", path, None, "$", "a document must be a JSON object")
    if doc.get("kind") != kind:
        raise _refuse("DOCUMENT_INVALID", path, kind, "$.kind",
                      f"{str(doc.get('kind'))[:40]!r} differs from the manifest's kind {kind!r}")
    return doc


def _check_header(path: str, kind: str, doc: dict[str, Any], agency: str, years: range) -> None:
    if doc["agency_code"] != agency:
        raise _refuse("AGENCY_MISMATCH", path, kind, "$.agency_code",
                      f"{doc['agency_code']!r} differs from the envelope's agency {agency!r}")
    if doc["fiscal_year"] not in years:
        raise _refuse("BAD_FISCAL_YEAR", path, kind, "$.fiscal_year",
                      f"{doc['fiscal_year']} is outside the accepted years {years.start}..{years.stop - 1}")


def _check_money(path: str, kind: str, doc: dict[str, Any], limit: int) -> ValidDocument:
    spec = KINDS[kind]
    payees = payees_of(kind, doc)
    # Payees first, so the message points at the payee that carries the excess.
    if not spec.payee_single:
        for i, payee in enumerate(payees):
            if payee.amount > limit:
                raise _refuse("OVER_EPAYMENT_LIMIT", path, kind, f"$.{spec.payees_field}[{i}].amount",
                              f"{payee.amount} is above the electronic-payment limit {limit}; pay it on paper")
    for name in spec.limit_fields:
        value = parse_amount(doc[name])
        if value > limit:
            raise _refuse("OVER_EPAYMENT_LIMIT", path, kind, f"$.{name}",
                          f"{value} is above the electronic-payment limit {limit}; pay it on paper")
    if spec.is_voucher:
        total, added = parse_amount(doc["total_amount"]), sum(p.amount for p in payees)
        if total != added:
            raise _refuse("VOUCHER_TOTAL_MISMATCH", path, kind, "$.total_amount",
                          f"{total} differs from the sum of the {spec.payees_field}, {added}")
    return ValidDocument(
        path=path, kind=kind, data=doc, amount=document_amount(kind, doc),
        voucher_no=doc["voucher_no"] if spec.is_voucher else None, payees=payees,
        fiscal_year=doc["fiscal_year"], document_no=doc[spec.number_field])
