"""The fast schema pass never accepts what the full jsonschema pass refuses.

first_problem() asks fastjsonschema first and trusts only its "valid"; these tests mutate
valid documents of every kind (and manifests) in many ways and check that both passes
give the same verdict for every mutant, so a refusal can never be skipped.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random

import fastjsonschema
import pytest

from tgw.demo.documents import encode, generate_documents
from tgw_common.documents import KINDS, build_manifest
from tgw_common.documents.schema import SCHEMA_NAMES, _draft4, fast_validator, first_problem, validator

AGENCY = "A1234567"
TODAY = dt.date(2025, 6, 15)  # ROC 114
SEED = 20251123

# Put in place of every value: wrong types, floats that look whole, booleans, and strings
# that are valid somewhere (so they land in the wrong place elsewhere) or almost valid.
VALUES = [
    None, True, False, 0, 1, -1, 100.0, 1.5, 1e300, 114.0, 10**15 - 1, 10**15, 10**30, "", " ", "x", "100",
    "100.0", "100\n", "-5", "0", "00", "0001", "1" * 16, [], {}, ["x"], {"x": 1},
    # identifiers: a valid ID, business number and bank code, then broken ones
    "A123456789", "A123456788", "a123456789", "A823456789", "AC12345678", "12345675", "12345670", "00000000",
    "１２３４５６７５", "0040001", "9990001", "004000", "00400011",
    # ROC dates: leap and non-leap 29 February, impossible month, wrong separators, year 0
    "1130229", "1140229", "113/02/29", "99/12/31", "1141301", "114-01-05", "0000101", "1140105\n",
    # date-times
    "2025-06-15T09:30:00+08:00", "2025-06-15T09:30:00", "2025-02-29T09:30:00Z", "2025-06-15t09:30:00Z",
    "2025-06-15T09:30:00.1234567891Z", "2025-06-15T24:00:00Z", "2025-06-15T09:30:00+08:00\n",
    # names, free text, kinds and enum members
    "臺灣銀行", " 臺灣銀行", "臺灣銀行 ", "臺灣\n銀行", "\u3000名稱", "名\u3000稱", "a" * 100, "a" * 101, "a" * 200, "a" * 201,
    "payment_voucher", "transfer", "remittance", "treasury_cheque", "annual", "reserved", "TPE/1", "other",
    "name", "id_number", "bank_code", "account_no", "memo", "lost",
]


def _derived(value):
    """Values close to `value`: one character off, a newline or space added, a type away."""
    if isinstance(value, bool):
        return [not value, int(value)]
    if isinstance(value, int):
        return [value + 1, value - 1, -value, float(value), str(value), f"{value}\n", value * 10**12]
    if isinstance(value, str):
        near = [value + "\n", value + " ", " " + value, value[:-1], value + "0", value.lower(), value * 21,
                value + "\u0085", value + "\r"]
        if value and value[-1].isdigit():  # another check digit: some valid, most not
            near += [value[:-1] + d for d in "0123456789" if d != value[-1]]
        if value.isdigit():
            near.append(int(value))
        return near
    if isinstance(value, list):
        return [[], [*value, *value], [*value, "x"], value * (100_001 // max(len(value), 1) + 1)]
    if isinstance(value, dict):
        return [{}, {**value, "unknown_field": "x"}, {**value, "": 1}]
    return []


def _paths(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, member in value.items():
            yield from _paths(member, (*path, key))
    elif isinstance(value, list):
        for i, member in enumerate(value):
            yield from _paths(member, (*path, i))


def _replaced(doc, path, new):
    out = copy.deepcopy(doc)
    if not path:
        return new
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return out


def _deleted(doc, path):
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return out


def mutants(doc, rng):
    """Single mutations of `doc`: each value replaced (a sample of VALUES, every near value),
    each member deleted, then a few hundred documents with two to four mutations at once."""
    singles = []
    for path, value in _paths(doc):
        for new in [*rng.sample(VALUES, 12), *_derived(value)]:
            singles.append(_replaced(doc, path, new))
        if path and isinstance(path[-1], str):
            singles.append(_deleted(doc, path))
    out = list(singles)
    for _ in range(60):
        mutant = doc
        for _ in range(rng.randint(2, 4)):
            paths = [p for p, _ in _paths(mutant) if p]
            if not paths:  # the whole document was replaced by a scalar
                break
            path = rng.choice(paths)
            value = _get(mutant, path)
            mutant = _replaced(mutant, path, rng.choice([*VALUES, *_derived(value)]))
        out.append(mutant)
    return out


def _get(doc, path):
    for step in path:
        doc = doc[step]
    return doc


def fast_says_valid(name, doc, bank_codes_file=None):
    try:
        fast_validator(name, bank_codes_file)(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def assert_same_verdicts(name, docs, bank_codes_file=None):
    full = validator(name, bank_codes_file)
    verdicts = {True: 0, False: 0}
    for doc in docs:
        expected = full.is_valid(doc)
        assert fast_says_valid(name, doc, bank_codes_file) == expected, (name, json.dumps(doc, ensure_ascii=False))
        assert (first_problem(name, doc, bank_codes_file) is None) == expected
        verdicts[expected] += 1
    return verdicts


def base_documents(kind):
    """Valid documents of `kind`, every payment method among them where the kind has one."""
    docs = [json.loads(d.data) for d in generate_documents(AGENCY, 40, seed=SEED, kinds=[kind], today=TODAY)]
    chosen, methods = [], set()
    for doc in docs:
        method = doc.get("payment_method")
        if method not in methods:
            methods.add(method)
            chosen.append(doc)
    return chosen[:3]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_bundled_schema_has_a_fast_pass(name):
    # None would silently send every document down the slow path.
    assert fast_validator(name) is not None


@pytest.mark.parametrize("kind", list(KINDS))
def test_both_passes_agree_on_mutated_documents_of_every_kind(kind):
    rng = random.Random(f"{SEED}-{kind}")
    docs = [m for doc in base_documents(kind) for m in [doc, *mutants(doc, rng)]]
    verdicts = assert_same_verdicts(kind, docs)
    # Both answers must be well represented, or the comparison proves little.
    assert verdicts[True] >= 20 and verdicts[False] >= 200, verdicts


def test_both_passes_agree_on_switched_payment_methods_and_correction_fields():
    # The if/then parts: bank details are required unless paid by treasury cheque, and a
    # correction's new value follows the rules of the field it corrects.
    cases = []
    for doc in base_documents("payment_voucher"):
        for method in ("transfer", "remittance", "treasury_cheque", "cheque"):
            switched = {**doc, "payment_method": method}
            cases.append(switched)
            for key in ("bank_code", "account_no"):
                first = {k: v for k, v in switched["payees"][0].items() if k != key}
                cases.append(_replaced(switched, ("payees", 0), first))
            cases.append({key: value for key, value in switched.items() if key != "payment_method"})
    assert_same_verdicts("payment_voucher", cases)
    corrections = []
    for doc in base_documents("correction_request"):
        for field in ("name", "id_number", "bank_code", "account_no", "memo", "amount"):
            for new_value in ("A123456789", "12345675", "0040001", "12345678901234", "陳小明", "x" * 150, " x"):
                corrections.append(_replaced(doc, ("corrections", 0), {"payee_seq": 1, "field": field,
                                                                        "new_value": new_value}))
    verdicts = assert_same_verdicts("correction_request", corrections)
    assert verdicts[True] and verdicts[False]


def test_both_passes_agree_on_mutated_manifests():
    rng = random.Random(f"{SEED}-manifest")
    docs = generate_documents(AGENCY, 3, seed=SEED, today=TODAY)
    manifest = build_manifest("A1234567-114-000123", AGENCY, "2025-06-15T09:30:00+08:00",
                              [(d.path, d.kind, d.data) for d in docs])
    verdicts = assert_same_verdicts("manifest", [manifest, *mutants(manifest, rng)])
    assert verdicts[True] >= 20 and verdicts[False] >= 200, verdicts


@pytest.mark.parametrize(("path", "value"), [
    (("fiscal_year",), 114.0), (("fiscal_year",), True), (("total_amount",), 100.0), (("total_amount",), True),
    (("payees", 0, "amount"), 100.0), (("payees", 0, "amount"), "100\n"), (("payees", 0, "account_no"), "123\n"),
    (("voucher_no",), "1140000001\n"), (("agency_code",), AGENCY + "\n"), (("payees", 0, "name"), "陳小明\n"),
    (("payees", 0, "id_number"), "A123456789\n"), (("payees", 0, "bank_code"), "0040001\n"),
    (("voucher_date",), "1140105\n"), (("payees", 0, "amount"), "0"),
])
def test_values_python_would_let_through_are_refused(path, value):
    # Python's "$" matches before a final newline and its ints include True; the schema's
    # meaning has neither, and floats are never money.
    doc = _replaced(base_documents("payment_voucher")[0], path, value)
    assert not fast_says_valid("payment_voucher", doc)
    assert first_problem("payment_voucher", doc) is not None


def test_a_bank_list_file_counts_in_the_fast_pass_too(tmp_path):
    path = tmp_path / "banks.txt"
    path.write_text("999 測試銀行\n", encoding="utf-8")
    doc = base_documents("payment_voucher")[0]
    for payee in doc["payees"]:
        payee["bank_code"] = "0040001"
    assert fast_says_valid("payment_voucher", doc)
    assert not fast_says_valid("payment_voucher", doc, str(path))
    finding = first_problem("payment_voucher", doc, str(path))
    assert finding is not None and finding.code == "BAD_BANK_CODE"
    for payee in doc["payees"]:
        payee["bank_code"] = "9990001"
    assert first_problem("payment_voucher", doc, str(path)) is None


def test_a_large_voucher_is_judged_alike():
    doc = base_documents("payment_voucher")[0]
    doc["payees"] = [copy.deepcopy(doc["payees"][i % len(doc["payees"])]) for i in range(9999)]
    assert fast_says_valid("payment_voucher", doc) and validator("payment_voucher").is_valid(doc)
    doc["payees"][9998]["amount"] = 1.0
    assert not fast_says_valid("payment_voucher", doc)
    assert first_problem("payment_voucher", doc).path == "$.payees[9998].amount"
    doc["payees"].append(doc["payees"][0])
    assert not fast_says_valid("payment_voucher", doc) and not validator("payment_voucher").is_valid(doc)


@pytest.mark.parametrize("part", [
    {"else": {}}, {"$ref": "common.schema.json#/$defs/name"}, {"type": "number"}, {"type": ["string", "null"]},
    {"pattern": "^[$]+$"}, {"enum": [1, "a"]}, {"const": 1}, {"format": "email"},
    {"additionalProperties": {"type": "string"}}, {"oneOf": [{}]}, {"uniqueItems": True}, {"prefixItems": []},
])
def test_what_the_fast_pass_cannot_judge_alike_leaves_the_schema_to_the_full_pass(part):
    # A schema edit using any of these must not be guessed at: no fast validator, only the full pass.
    schema = {"type": "object", "if": {"required": ["a"]}, "then": {}, "properties": {"a": part}}
    with pytest.raises(ValueError):
        _draft4(schema)


def test_the_fast_pass_leaves_the_document_unchanged():
    # The fast pass returns its input unchanged (no defaults filled in).
    doc = base_documents("payment_voucher")[0]
    before = encode(doc)
    fast_validator("payment_voucher")(doc)
    assert encode(doc) == before
