"""The bundled JSON Schemas: well-formed, strict, accepting what the generator makes, and documented."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tgw.demo.documents import generate_documents
from tgw_common.documents import KINDS, load_schema
from tgw_common.documents.schema import (
    SCHEMA_NAMES,
    common_types_markdown,
    field_table_markdown,
    fields,
    first_problem,
)
from tgw_common.reasons import REASONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "documents.md"
TODAY = dt.date(2025, 6, 15)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}.schema.json")


def _objects(schema, where="$"):
    """Every object-typed subschema with a properties list, and where it is."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            yield where, schema
        for key, value in schema.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _objects(value, f"{where}/{i}")


@pytest.mark.parametrize("name", [n for n in SCHEMA_NAMES if n != "common"])
def test_every_object_level_is_closed_and_every_field_titled(name):
    for where, obj in _objects(load_schema(name)):
        assert obj.get("additionalProperties") is False, f"{name} {where}"
    for field in fields(name):
        assert field.title and field.description, f"{name} {field.path} needs a Chinese title and a description"


@pytest.mark.parametrize("kind", list(KINDS))
def test_generated_documents_satisfy_their_schema(kind):
    for doc in generate_documents("A1234567", 15, seed=21, kinds=[kind], today=TODAY):
        assert doc.kind == kind
        assert first_problem(kind, json.loads(doc.data)) is None


def test_schema_uses_no_python_only_regex():
    # Agencies validate with their own tools (often JavaScript): keep patterns ECMA-262 portable.
    for name in SCHEMA_NAMES:
        for pattern in re.findall(r'"pattern": "([^"]*)"', json.dumps(load_schema(name))):
            assert "(?<" not in pattern and "\\Z" not in pattern and "\\A" not in pattern, pattern


def test_integer_fields_refuse_whole_floats():
    # Stock JSON Schema would accept 114.0 as an integer; ours must not.
    doc = json.loads(generate_documents("A1234567", 1, seed=1, kinds=["payment_slip"], today=TODAY)[0].data)
    doc["fiscal_year"] = 114.0
    finding = first_problem("payment_slip", doc)
    assert finding.code is None and finding.path == "$.fiscal_year"


# ------------------------------------------------------------------- docs in step


def test_docs_hold_the_generated_field_tables():
    text = DOCS.read_text(encoding="utf-8")
    assert common_types_markdown() in text, "regenerate the common-types table in docs/documents.md"
    for name in ["manifest", *KINDS]:
        assert field_table_markdown(name) in text, f"regenerate the {name} table in docs/documents.md"


def test_docs_name_every_kind_and_reason_code_used():
    text = DOCS.read_text(encoding="utf-8")
    for key, kind in KINDS.items():
        assert f"`{key}`" in text and kind.zh in text
    for code in ("MANIFEST_INVALID", "UNSUPPORTED_PROFILE", "UNKNOWN_DOCUMENT_KIND", "DOCUMENT_INVALID",
                 "BAD_BUSINESS_NUMBER", "BAD_NATIONAL_ID", "BAD_BANK_CODE", "BAD_ROC_DATE", "BAD_FISCAL_YEAR",
                 "VOUCHER_TOTAL_MISMATCH", "AGENCY_MISMATCH", "OVER_EPAYMENT_LIMIT", "DUPLICATE_VOUCHER",
                 "CONTROL_COUNT_MISMATCH", "CONTROL_TOTAL_MISMATCH"):
        assert code in REASONS and f"`{code}`" in text
    for key in ("epayment_limit", "fiscal_years_back", "fiscal_years_ahead", "bank_codes_file"):
        assert f"`{key}`" in text


def test_docs_map_25_seed_functions():
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The seed system's functions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 26))
