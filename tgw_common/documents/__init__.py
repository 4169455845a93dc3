"""What the gateway knows about the documents inside a TPE/1 payload.

The payload ZIP holds manifest.json and one JSON file per document. This package checks
the manifest (schema, profile, kinds), each document (its kind's JSON Schema plus the
business rules: check digits, bank codes, ROC dates, fiscal year, totals, limits) and
builds the manifest for a set of documents. It never touches the ZIP, the CMS layers or a
database. Demo documents live in tgw.demo.documents, out of the daemons' reach.
docs/documents.md describes every field and rule.
"""

from .build import build_manifest
from .checks import (
    BankCodesError,
    CheckFailed,
    bank_code_problem,
    business_number_problem,
    format_roc_date,
    id_number_problem,
    is_valid_business_number,
    is_valid_national_id,
    load_bank_codes,
    mask_id,
    national_id_problem,
    parse_amount,
    parse_roc_date,
    roc_year,
)
from .jsonparse import JsonProblem, parse_json_bytes
from .kinds import KINDS, VOUCHER_KINDS, Kind
from .manifest import MANIFEST_NAME, PROFILE, check_control_totals, load_manifest, validate_manifest
from .schema import load_schema
from .validate import Payee, ValidDocument, document_amount, validate_documents

__all__ = [
    "KINDS", "MANIFEST_NAME", "PROFILE", "VOUCHER_KINDS",
    "BankCodesError", "CheckFailed", "JsonProblem", "Kind", "Payee", "ValidDocument",
    "bank_code_problem", "build_manifest", "business_number_problem",
    "check_control_totals", "document_amount", "format_roc_date", "id_number_problem",
    "is_valid_business_number", "is_valid_national_id", "load_bank_codes", "load_manifest", "load_schema",
    "mask_id", "national_id_problem", "parse_amount",
    "parse_json_bytes", "parse_roc_date", "roc_year", "validate_documents", "validate_manifest",
]
