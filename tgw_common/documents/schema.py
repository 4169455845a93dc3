"""Loading the bundled JSON Schemas and turning validation errors into one clear finding.

The schemas mark identifiers, bank codes and dates with custom formats (roc-date,
tw-id-number, tw-business-number, tw-bank-code). Our format checker runs the rules of
checks.py for them and remembers which reason code failed, so one validation pass gives
either "the document is malformed" (DOCUMENT_INVALID) or "this field breaks that rule"
(BAD_NATIONAL_ID, ...). Other validators ignore unknown formats, so the schema files stay
usable as they are by agencies' own tools.

That pass explains well but costs about 0.07 ms per payee, so a fast pass goes first: the
same schema compiled to plain Python by fastjsonschema, with the same rules. It only
ever says "valid": whenever it refuses (or fails in any way), the full pass runs and
produces the finding, so no verdict or message depends on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from . import checks

SCHEMA_NAMES = (
    "common", "manifest", "payment_voucher", "transfer_voucher", "correction_request", "stop_payment_notice",
    "cheque_cancellation", "expenditure_recovery", "payment_slip", "revenue_refund",
)

# JSON Schema counts 100.0 as an integer; money written as a float is refused, so ours does not.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))


@cache
def _ecma_anchored(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262, where a final "$" matches only at the very end.
    # Python's "$" also matches before a trailing newline, so "123\n" would pass
    # "^[0-9]+$": end our patterns with \Z instead.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: object, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_anchored(pattern).search(instance):
        yield ValidationError(f"{_short_repr(instance)} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _pattern}, type_checker=_TYPES)

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})")


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    """One bundled schema as a dict ("manifest", "payment_voucher", "common", ...)."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema named {name!r}")
    text = resources.files(f"{__package__}.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES)


def is_rfc3339_with_offset(value: str) -> bool:
    """An ISO 8601 date-time with seconds and a UTC offset ('Z' or +hh:mm), as RFC 3339 has it."""
    m = _RFC3339.fullmatch(value)
    if not m:
        return False
    # Python keeps microseconds: cut longer fractions before asking it whether the date is real.
    fraction = (m.group(7) or "")[:7]
    try:
        dt.datetime.fromisoformat(value[: m.start(7) if m.group(7) else m.start(8)] + fraction + m.group(8))
    except ValueError:
        return False
    return True


def _format_checker(bank_codes: Mapping[str, str]) -> FormatChecker:
    fc = FormatChecker(formats=())

    def failing(code: str, problem: str | None) -> bool:
        if problem:
            raise checks.CheckFailed(code, problem)
        return True

    @fc.checks("date-time")
    def _date_time(value: object) -> bool:
        return not isinstance(value, str) or is_rfc3339_with_offset(value)

    @fc.checks("roc-date", raises=checks.CheckFailed)
    def _roc_date(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            checks.parse_roc_date(value)
        except ValueError as exc:
            raise checks.CheckFailed("BAD_ROC_DATE", str(exc)) from None
        return True

    @fc.checks("tw-id-number", raises=checks.CheckFailed)
    def _id_number(value: object) -> bool:
        if not isinstance(value, str):
            return True
        found = checks.id_number_problem(value)
        return failing(*found) if found else True

    @fc.checks("tw-business-number", raises=checks.CheckFailed)
    def _business_number(value: object) -> bool:
        return not isinstance(value, str) or failing("BAD_BUSINESS_NUMBER", checks.business_number_problem(value))

    @fc.checks("tw-bank-code", raises=checks.CheckFailed)
    def _bank_code(value: object) -> bool:
        return not isinstance(value, str) or failing("BAD_BANK_CODE", checks.bank_code_problem(value, bank_codes))

    return fc


@lru_cache(maxsize=32)
def validator(name: str, bank_codes_file: str | None = None) -> Draft202012Validator:
    """A compiled validator for one schema, with the bank list of `bank_codes_file` (None = bundled)."""
    bank_codes = checks.load_bank_codes(bank_codes_file)
    return _Validator(_inlined(load_schema(name)), registry=registry(), format_checker=_format_checker(bank_codes))


def _inlined(schema: Any) -> Any:
    """`schema` with every $ref to common.schema.json replaced by {"allOf": [definition]}.

    Same meaning, but resolving a $ref through `referencing` took 80% of the validation
    time (URL joins on every use). The definition dicts stay the very objects of common's
    $defs, so messages can still tell which shared type a failing value had.
    """
    if isinstance(schema, list):
        return [_inlined(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _inlined(value) for key, value in schema.items() if key != "$ref"}
    ref = schema.get("$ref")
    if ref:
        prefix = "common.schema.json#/$defs/"
        if not ref.startswith(prefix):
            raise ValueError(f"unexpected $ref {ref!r}: only common.schema.json definitions are inlined")
        out["allOf"] = [*out.get("allOf", []), load_schema("common")["$defs"][ref[len(prefix):]]]
    return out


# ------------------------------------------------------------------ the fast pass

# Draft 4 rather than 7: from draft 6 on, fastjsonschema counts 100.0 as an integer, and
# draft 4 has no const and no if/then, which _draft4() rewrites into what it has.
_DRAFT4 = "http://json-schema.org/draft-04/schema#"
_SKIPPED = frozenset({"title", "description", "$schema", "$id", "$comment", "$defs"})
_TYPES_KEPT = frozenset({"string", "integer", "object", "array"})
_FORMATS = frozenset({"date-time", "roc-date", "tw-id-number", "tw-business-number", "tw-bank-code"})
_SAME_MEANING = frozenset({"minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "required"})


class _NotFast(ValueError):
    """A schema the fast pass might judge differently from the full pass: use the full one only."""


def _draft4(schema: Any) -> dict[str, Any]:
    """An inlined schema in draft-4 terms with exactly the meaning the full pass gives it.

    Anything not known to mean the same raises _NotFast rather than being guessed at.
    """
    if not isinstance(schema, dict):
        raise _NotFast(f"schema {schema!r} is not an object")
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for key, value in schema.items():
        if key in _SKIPPED or key == "then":  # "then" is handled with its "if"
            continue
        if key in _SAME_MEANING:
            out[key] = value
        elif key == "type":
            # Lists of types and the other types are left out: fastjsonschema's numbers
            # include Decimals and its arrays tuples.
            if not isinstance(value, str) or value not in _TYPES_KEPT:
                raise _NotFast(f"type {value!r}")
            out[key] = value
        elif key in ("enum", "const"):
            values = value if key == "enum" else [value]
            if not all(isinstance(v, str) for v in values):  # equality of other values differs in detail
                raise _NotFast(f"{key} {value!r}")
            extra.append({"enum": values})  # beside any other enum, never in its place
        elif key == "pattern":
            anchored = _ecma_anchored(value).pattern
            # fastjsonschema turns every "$" into \Z, where only a final one is ours to turn.
            if "$" in anchored:
                raise _NotFast(f"pattern {value!r}")
            out[key] = anchored
        elif key == "format":
            if value not in _FORMATS:
                raise _NotFast(f"format {value!r}")
            out[key] = value
        elif key == "additionalProperties":
            if not isinstance(value, bool):
                raise _NotFast("additionalProperties with a schema")
            out[key] = value
        elif key == "properties":
            out[key] = {prop: _draft4(sub) for prop, sub in value.items()}
        elif key == "items":
            out[key] = _draft4(value)
        elif key in ("allOf", "anyOf"):
            out[key] = [_draft4(sub) for sub in value]
        elif key == "if":
            if "else" in schema:
                raise _NotFast("else")
            if "then" in schema:  # if A then B is (not A) or B
                extra.append({"anyOf": [{"not": _draft4(value)}, _draft4(schema["then"])]})
        else:
            raise _NotFast(f"keyword {key!r}")
    if extra:
        out["allOf"] = [*out.get("allOf", []), *extra]
    return out


def _format_tests(bank_codes: Mapping[str, str]) -> dict[str, Callable[[str], bool]]:
    """The rules of _format_checker as yes/no answers (fastjsonschema asks them of strings only)."""

    def roc_date(value: str) -> bool:
        try:
            checks.parse_roc_date(value)
        except ValueError:
            return False
        return True

    return {
        "date-time": is_rfc3339_with_offset,
        "roc-date": roc_date,
        "tw-id-number": lambda value: not checks.id_number_problem(value),
        "tw-business-number": lambda value: not checks.business_number_problem(value),
        "tw-bank-code": lambda value: not checks.bank_code_problem(value, bank_codes),
    }


@lru_cache(maxsize=32)
def fast_validator(name: str, bank_codes_file: str | None = None) -> Callable[[object], object] | None:
    """Schema `name` compiled by fastjsonschema: raises if an instance is invalid.

    None when the schema uses something the fast pass cannot judge exactly like the full
    pass (tests/documents/test_fast_schema.py checks that every bundled schema compiles).
    """
    formats = _format_tests(checks.load_bank_codes(bank_codes_file))
    try:
        definition = {"$schema": _DRAFT4, **_draft4(_inlined(load_schema(name)))}
        # No handlers: the schema holds no $ref (_draft4 refuses one), so nothing is fetched.
        return fastjsonschema.compile(definition, handlers={}, formats=formats, use_default=False,
                                      detailed_exceptions=False)
    except (_NotFast, fastjsonschema.JsonSchemaDefinitionException):
        return None


def _fast_accepts(name: str, instance: object, bank_codes_file: str | None) -> bool:
    fast = fast_validator(name, bank_codes_file)
    if fast is None:
        return False
    try:
        fast(instance)
    except Exception:  # a refusal, or anything unforeseen: the full pass judges and explains
        return False
    return True


@dataclass(frozen=True)
class Finding:
    """The first problem of an instance: its reason code (None = malformed), JSON path and message."""

    code: str | None
    path: str
    message: str


def first_problem(name: str, instance: object, bank_codes_file: str | None = None) -> Finding | None:
    """None if `instance` satisfies schema `name`; else the one problem to report.

    A malformed structure (missing field, wrong type, unknown field) comes before any rule
    finding: a rule judged on a malformed document would mislead. Among rule findings the
    first in document order wins.

    `instance` is JSON as json.loads returns it (the fast pass would take a tuple for an array).
    """
    if _fast_accepts(name, instance, bank_codes_file):
        return None
    errors = []
    for err in validator(name, bank_codes_file).iter_errors(instance):
        if not _rule_failure(err):
            # Stop at the first structural error: the keywords of an object or array
            # (type, size, required, unknown fields) come before its members, so the
            # first is the outermost, and a document with a million payees where 9999
            # are allowed is not walked to the end.
            return _structural(err)
        errors.append(err)
    if not errors:
        return None
    err = min(errors, key=lambda e: _path_key(e.absolute_path))
    cause = _rule_failure(err)
    assert cause is not None
    return Finding(cause.code, err.json_path, cause.message)


def all_problems(name: str, instance: object, bank_codes_file: str | None = None, *,
                 limit: int = 100) -> list[Finding]:
    """Every problem of `instance`, structural and rule findings alike, in the validator's order
    (at most `limit`, each path and code once): for entry forms, which show each at its field.
    The inner zone reports one problem per document (first_problem); a preparer fixing a form
    wants them all at once."""
    if _fast_accepts(name, instance, bank_codes_file):
        return []
    found: dict[tuple[str, str | None], Finding] = {}
    for err in validator(name, bank_codes_file).iter_errors(instance):
        cause = _rule_failure(err)
        finding = Finding(cause.code, err.json_path, cause.message) if cause else _structural(err)
        found.setdefault((finding.path, finding.code), finding)
        if len(found) >= limit:
            break
    return list(found.values())


def _structural(err: ValidationError) -> Finding:
    if err.validator in ("anyOf", "oneOf") and not _is_amount_schema(err.schema):
        err = best_match([err])  # the most relevant error inside the alternatives
    path = err.json_path
    if err.validator == "required":  # name the missing field's own path
        path += "." + err.message.split("'")[1]
    return Finding(None, path, _describe(err))


def _rule_failure(err: ValidationError) -> checks.CheckFailed | None:
    return err.cause if err.validator == "format" and isinstance(err.cause, checks.CheckFailed) else None


def _path_key(path: Any) -> tuple:
    # Document order: array positions numerically, then keys; mixed types made comparable.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


def _describe(err: ValidationError) -> str:
    if err.validator == "required":
        return "required field is missing"
    if err.validator == "additionalProperties":
        return f"unknown field(s): {err.message.split('(')[-1].rstrip(')')}"
    if err.validator == "format" and err.validator_value == "date-time":
        return f"{_short_repr(err.instance)} is not an ISO 8601 date-time with a UTC offset"
    if err.validator == "type":
        return f"{_short_repr(err.instance)} is not of type {err.validator_value!r}"
    if err.validator in ("pattern", "minLength", "maxLength") and _common_description(err.schema):
        return f"{_short_repr(err.instance)} is not allowed: {_common_description(err.schema)}"
    if err.validator in ("pattern", "enum", "const", "minimum", "maximum", "minLength", "maxLength"):
        return err.message if len(err.message) <= 300 else f"{_short_repr(err.instance)} breaks {err.validator}"
    if err.validator in ("minItems", "maxItems"):
        return f"{len(err.instance)} items; {err.validator} is {err.validator_value}"
    if err.validator == "anyOf" and _is_amount_schema(err.schema):
        try:
            checks.parse_amount(err.instance)
        except ValueError as exc:
            return str(exc)
        return f"amount {_short_repr(err.instance)} must be at least 1"
    if err.validator == "anyOf":
        return f"{_short_repr(err.instance)} is not a valid value here (see the schema)"
    return err.message if len(err.message) <= 300 else f"breaks {err.validator}"


def _common_description(sub: object) -> str | None:
    # A shared type's description states its rule in words, clearer than its regex.
    for definition in load_schema("common")["$defs"].values():
        if sub == definition:
            return definition["description"]
    return None


def _is_amount_schema(sub: object) -> bool:
    defs = load_schema("common")["$defs"]
    return sub == defs["amount"] or sub == defs["positive_amount"]


def _short_repr(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------ field tables for docs


@dataclass(frozen=True)
class Field:
    path: str  # JSON path with [*] for array items, e.g. $.payees[*].amount
    title: str  # Chinese name
    type: str
    required: bool
    description: str


def fields(name: str) -> list[Field]:
    """Every field of schema `name`, depth first in schema order (for docs and messages)."""
    return list(_walk(load_schema(name), "$", True))


def _resolve(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    ref = schema.get("$ref")
    if not ref:
        return schema, None
    target = ref.split("#/$defs/")[-1]
    return load_schema("common")["$defs"][target], target


def _walk(schema: Mapping[str, Any], path: str, required: bool) -> Iterator[Field]:
    target, def_name = _resolve(schema)
    if path != "$":
        yield Field(path, schema.get("title", ""), _type_of(target, def_name), required,
                    schema.get("description", target.get("description", "")))
    if target.get("type") == "object":
        needed = set(target.get("required", ()))
        for key, sub in target.get("properties", {}).items():
            yield from _walk(sub, f"{path}.{key}", key in needed)
    elif target.get("type") == "array" and isinstance(target.get("items"), dict):
        items, _ = _resolve(target["items"])
        needed = set(items.get("required", ()))
        for key, sub in items.get("properties", {}).items():
            yield from _walk(sub, f"{path}[*].{key}", key in needed)


def _type_of(schema: Mapping[str, Any], def_name: str | None) -> str:
    if def_name:
        return f"[{def_name}](#common-types)"
    if "const" in schema:
        return f"`{json.dumps(schema['const'], ensure_ascii=False)}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of objects ({schema.get('minItems', 0)}..{schema.get('maxItems', 'n')})"
    if kind == "integer":
        return f"integer {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if kind == "string" and "pattern" in schema:
        return f"string `{schema['pattern']}`".replace("|", "\\|")
    if kind == "string" and "format" in schema:
        return f"string, format `{schema['format']}`"
    return kind or "value"


def title_of(name: str, json_path: str) -> str:
    """The Chinese name of the field at a concrete JSON path ($.payees[3].amount)."""
    pattern = re.sub(r"\[[0-9]+\]", "[*]", json_path)
    return _titles(name).get(pattern, "")


@cache
def _titles(name: str) -> dict[str, str]:
    return {f.path: f.title for f in fields(name)}


def field_table_markdown(name: str) -> str:
    """The field table of schema `name` as it stands in docs/documents.md."""
    lines = ["| field | 中文名稱 | type | required | meaning |", "|---|---|---|---|---|"]
    for f in fields(name):
        desc = f.description.replace("|", "\\|")
        lines.append(f"| `{f.path[2:]}` | {f.title} | {f.type} | {'yes' if f.required else 'no'} | {desc} |")
    return "\n".join(lines) + "\n"


def common_types_markdown() -> str:
    """The table of shared types (common.schema.json) as it stands in docs/documents.md."""
    lines = ["| type | JSON | rule |", "|---|---|---|"]
    for key, sub in load_schema("common")["$defs"].items():
        if "anyOf" in sub:
            json_type = "integer or digit string"
        elif "enum" in sub:
            json_type = "one of " + ", ".join(f"`{v}`" for v in sub["enum"])
        elif "format" in sub:
            json_type = f"string, format `{sub['format']}`"
        elif sub.get("type") == "integer":
            json_type = f"integer {sub['minimum']}..{sub['maximum']}"
        elif "pattern" in sub and key not in ("name", "text"):
            json_type = f"string `{sub['pattern']}`".replace("|", "\\|")
        else:
            json_type = sub.get("type", "")
        lines.append(f"| {key} | {json_type} | {sub['description'].replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
