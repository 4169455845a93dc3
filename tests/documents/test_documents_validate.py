"""validate_manifest / validate_documents: every reason code, and what the messages say."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from tgw.demo.documents import GeneratedDocument, bad_documents, encode, generate_documents
from tgw_common.config import DocumentsConfig
from tgw_common.documents import (
    KINDS,
    build_manifest,
    check_control_totals,
    document_amount,
    load_manifest,
    validate_documents,
    validate_manifest,
)
from tgw_common.reasons import Layer, Refusal

AGENCY = "A1234567"
TODAY = dt.date(2025, 6, 15)  # ROC 114
CREATED = "2025-06-15T09:30:00+08:00"


def run(docs, *, agency=AGENCY, limits=None, today=TODAY, manifest=None):
    """Build the manifest for `docs` and validate them the way the inner zone will."""
    manifest = manifest or build_manifest("ENV-TEST-0001", agency, CREATED, docs)
    return validate_documents(manifest, {d[0]: d[2] for d in docs}, agency=agency,
                              limits=limits or DocumentsConfig(), today=today)


def voucher(**changes):
    """One known-good payment voucher (two payees), with top-level `changes` applied."""
    doc = {
        "kind": "payment_voucher", "voucher_no": "1140000001", "fiscal_year": 114, "agency_code": AGENCY,
        "budget_type": "annual", "budget_account": "3201010100", "voucher_date": "1140612",
        "payment_method": "transfer", "purpose": "辦公用品採購",
        "payees": [
            {"name": "宏達資訊股份有限公司", "id_number": "04595257", "bank_code": "0040037",
             "account_no": "123456789012", "amount": 30000},
            {"name": "陳志明", "id_number": "A123456789", "bank_code": "7000021",
             "account_no": "00012345678901", "amount": "12500"},
        ],
        "total_amount": 42500,
    }
    doc.update(changes)
    return doc


def as_docs(*docs):
    return [GeneratedDocument(f"doc{i}.json", d["kind"], encode(d)) for i, d in enumerate(docs)]


def refused(docs, **kw) -> Refusal:
    with pytest.raises(Refusal) as info:
        run(docs, **kw)
    return info.value


# ------------------------------------------------------------------- the happy path


def test_good_voucher_with_digit_string_amounts():
    [valid] = run(as_docs(voucher()))
    assert valid.kind == "payment_voucher" and valid.voucher_no == "1140000001"
    assert valid.amount == 42500 and valid.fiscal_year == 114 and valid.document_no == "1140000001"
    assert [(p.id_number, p.bank_code, p.amount) for p in valid.payees] == [
        ("04595257", "0040037", 30000), ("A123456789", "7000021", 12500)]


def test_all_amounts_as_digit_strings_and_slashed_date():
    doc = voucher(total_amount="42500", voucher_date="114/06/12")
    doc["payees"][0]["amount"] = "30000"
    assert run(as_docs(doc))[0].amount == 42500


def test_treasury_cheque_needs_no_bank_account():
    doc = voucher(payment_method="treasury_cheque")
    for p in doc["payees"]:
        del p["bank_code"], p["account_no"]
    assert run(as_docs(doc))[0].payees[0].bank_code is None


def test_utf8_bom_is_tolerated():
    doc = as_docs(voucher())[0]
    docs = [GeneratedDocument(doc.path, doc.kind, b"\xef\xbb\xbf" + doc.data)]
    assert run(docs)[0].amount == 42500


def test_fiscal_year_window_edges():
    limits = DocumentsConfig(fiscal_years_back=1, fiscal_years_ahead=1)
    for year in (113, 114, 115):
        assert run(as_docs(voucher(fiscal_year=year)), limits=limits)
    for year in (112, 116):
        r = refused(as_docs(voucher(fiscal_year=year)), limits=limits)
        assert r.code == "BAD_FISCAL_YEAR" and f"{year}" in r.message and "113..115" in r.message
    # The window moves with `today`: on 2026-01-02 (ROC 115), 113 is too old.
    assert refused(as_docs(voucher(fiscal_year=113)), today=dt.date(2026, 1, 2)).code == "BAD_FISCAL_YEAR"


# ------------------------------------------------------------------- each reason code


def _payee(doc, **changes):
    doc["payees"][0].update(changes)
    return doc


@pytest.mark.parametrize("doc, code, field, shown", [
    (_payee(voucher(), id_number="04595258"), "BAD_BUSINESS_NUMBER", "$.payees[0].id_number", "04595258"),
    (_payee(voucher(), id_number="A123456788"), "BAD_NATIONAL_ID", "$.payees[0].id_number", "A1******88"),
    (_payee(voucher(), bank_code="9990037"), "BAD_BANK_CODE", "$.payees[0].bank_code", "9990037"),
    (_payee(voucher(), bank_code="004003"), "BAD_BANK_CODE", "$.payees[0].bank_code", "004003"),
    (voucher(voucher_date="1140230"), "BAD_ROC_DATE", "$.voucher_date", "1140230"),
    (voucher(voucher_date="2025-06-12"), "BAD_ROC_DATE", "$.voucher_date", "2025-06-12"),
    (voucher(fiscal_year=100), "BAD_FISCAL_YEAR", "$.fiscal_year", "100"),
    (voucher(total_amount=42501), "VOUCHER_TOTAL_MISMATCH", "$.total_amount", "42501"),
    (voucher(agency_code="B7654321"), "AGENCY_MISMATCH", "$.agency_code", "B7654321"),
    (voucher(total_amount=42.5e3), "DOCUMENT_INVALID", "$.total_amount", "42500.0"),
    (voucher(total_amount=True), "DOCUMENT_INVALID", "$.total_amount", "True"),
    (voucher(total_amount="42,500"), "DOCUMENT_INVALID", "$.total_amount", "42,500"),
    (voucher(total_amount="42500\n"), "DOCUMENT_INVALID", "$.total_amount", "42500"),
    (voucher(total_amount=-1), "DOCUMENT_INVALID", "$.total_amount", "-1"),
    (voucher(budget_type="special"), "DOCUMENT_INVALID", "$.budget_type", "special"),
    (voucher(payment_method="cash"), "DOCUMENT_INVALID", "$.payment_method", "cash"),
    (voucher(ammount=1), "DOCUMENT_INVALID", "$", "ammount"),
    (voucher(payees=[]), "DOCUMENT_INVALID", "$.payees", "minItems"),
    (voucher(voucher_no="1140000001\n"), "DOCUMENT_INVALID", "$.voucher_no", "1140000001"),
], ids=lambda v: v if isinstance(v, str) and v.isupper() else None)
def test_reason_codes_name_file_field_and_value(doc, code, field, shown):
    r = refused(as_docs(doc))
    assert (r.code, r.layer) == (code, Layer.DOCUMENTS)
    assert r.message.startswith("doc0.json: ")
    assert field in r.message and shown in r.message
    assert r.detail == {"file": "doc0.json", "field": field}


def test_missing_required_field_is_named():
    doc = voucher()
    del doc["fiscal_year"]
    r = refused(as_docs(doc))
    assert r.code == "DOCUMENT_INVALID" and "$.fiscal_year (會計年度): required field is missing" in r.message


def test_transfer_needs_bank_code_and_account():
    doc = voucher()
    del doc["payees"][1]["bank_code"]
    r = refused(as_docs(doc))
    assert r.code == "DOCUMENT_INVALID" and "$.payees[1].bank_code" in r.message


def test_national_id_never_printed_whole():
    doc = _payee(voucher(), id_number="A123456788", name="A123456788")  # even where no rule expects it
    r = refused(as_docs(doc))
    assert "A123456788" not in r.message and "A1******88" in r.message


def test_over_epayment_limit_on_payee_and_on_total():
    limits = DocumentsConfig(epayment_limit=40000)
    r = refused(as_docs(voucher()), limits=limits)  # total 42500 above, payees 30000 and 12500 not
    assert r.code == "OVER_EPAYMENT_LIMIT" and "$.total_amount" in r.message and "40000" in r.message
    r = refused(as_docs(voucher()), limits=DocumentsConfig(epayment_limit=20000))
    assert r.code == "OVER_EPAYMENT_LIMIT" and "$.payees[0].amount" in r.message and "30000" in r.message
    assert run(as_docs(voucher()), limits=DocumentsConfig(epayment_limit=42500))  # the limit itself is allowed


def test_duplicate_voucher_inside_one_envelope():
    r = refused(as_docs(voucher(), voucher()))
    assert r.code == "DUPLICATE_VOUCHER" and "doc1.json" in r.message and "doc0.json" in r.message
    # The same number in another fiscal year is another voucher.
    assert len(run(as_docs(voucher(), voucher(fiscal_year=113)))) == 2


def test_payment_and_transfer_vouchers_share_one_number_space():
    transfer = {"kind": "transfer_voucher", "voucher_no": "1140000001", "fiscal_year": 114, "agency_code": AGENCY,
                "budget_type": "annual", "budget_account": "3201010100", "voucher_date": "1140612",
                "recipients": [{"name": "財政部臺北國稅局", "treasury_account": "012345", "amount": 1000}],
                "total_amount": 1000}
    assert refused(as_docs(voucher(), transfer)).code == "DUPLICATE_VOUCHER"


@pytest.mark.parametrize("data, why", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"kind": "payment_voucher",', "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"kind": "payment_voucher", "kind": "payment_voucher"}', "duplicate key 'kind'"),
    (b'{"kind": "payment_voucher", "total_amount": NaN}', "NaN"),
    (b'{"kind": "payment_voucher", "total_amount": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
    (b'{"kind": "transfer_voucher"}', "differs from the manifest's kind"),
])
def test_document_invalid_when_not_strict_json(data, why):
    docs = [GeneratedDocument("bad.json", "payment_voucher", data)]
    r = refused(docs)
    assert r.code == "DOCUMENT_INVALID" and why in r.message and r.message.startswith("bad.json: ")


def test_manifest_agency_must_be_the_envelope_agency():
    docs = as_docs(voucher())
    manifest = build_manifest("ENV-TEST-0001", "B7654321", CREATED, docs)
    r = refused(docs, manifest=manifest)
    assert r.code == "AGENCY_MISMATCH" and "$.agency" in r.message


def test_document_missing_from_the_supplied_files():
    docs = as_docs(voucher())
    manifest = build_manifest("ENV-TEST-0001", AGENCY, CREATED, docs)
    with pytest.raises(Refusal) as info:
        validate_documents(manifest, {}, agency=AGENCY, limits=DocumentsConfig(), today=TODAY)
    assert info.value.code == "MANIFEST_FILE_MISSING"


def test_custom_bank_code_file_replaces_bundled(tmp_path):
    path = tmp_path / "banks.txt"
    path.write_text("999 測試銀行\n", encoding="utf-8")
    limits = DocumentsConfig(bank_codes_file=path)
    doc = voucher()
    doc["payees"][0]["bank_code"] = doc["payees"][1]["bank_code"] = "9990001"
    assert run(as_docs(doc), limits=limits)
    r = refused(as_docs(voucher()), limits=limits)
    assert r.code == "BAD_BANK_CODE" and "'004'" in r.message


@pytest.mark.parametrize("code", ["DOCUMENT_INVALID", "BAD_BUSINESS_NUMBER", "BAD_NATIONAL_ID", "BAD_BANK_CODE",
                                  "BAD_ROC_DATE", "BAD_FISCAL_YEAR", "VOUCHER_TOTAL_MISMATCH", "AGENCY_MISMATCH",
                                  "OVER_EPAYMENT_LIMIT", "DUPLICATE_VOUCHER"])
def test_bad_document_recipes_are_refused_with_their_code(code):
    r = refused(bad_documents(code, AGENCY, seed=11, today=TODAY))
    assert (r.code, r.layer) == (code, Layer.DOCUMENTS)


def test_unknown_kind_recipe_is_refused_at_the_manifest():
    r = refused(bad_documents("UNKNOWN_DOCUMENT_KIND", AGENCY, seed=11, today=TODAY))
    assert (r.code, r.layer) == ("UNKNOWN_DOCUMENT_KIND", Layer.PAYLOAD)
    assert "$.documents[0].kind" in r.message and "lottery_ticket" in r.message


# ------------------------------------------------------------------- other kinds' rules


def test_correction_checks_the_new_value_by_its_field():
    [doc] = generate_documents(AGENCY, 1, seed=3, kinds=["correction_request"], today=TODAY)
    data = json.loads(doc.data)
    data["corrections"] = [{"payee_seq": 1, "field": "id_number", "old_value": "A123456788",
                            "new_value": "A123456788"}]
    r = refused(as_docs(data))
    assert r.code == "BAD_NATIONAL_ID" and "$.corrections[0].new_value" in r.message
    data["corrections"][0].update(field="bank_code", new_value="9990037")
    assert refused(as_docs(data)).code == "BAD_BANK_CODE"
    data["corrections"][0].update(field="account_no", new_value="12-34")
    assert refused(as_docs(data)).code == "DOCUMENT_INVALID"
    data["corrections"][0].update(field="memo", new_value="new memo")
    [valid] = run(as_docs(data))
    assert valid.amount == 0 and valid.voucher_no is None and valid.payees == []


def test_revenue_refund_payee_and_limit():
    [doc] = generate_documents(AGENCY, 1, seed=4, kinds=["revenue_refund"], today=TODAY)
    data = json.loads(doc.data)
    [valid] = run(as_docs(data))
    assert len(valid.payees) == 1 and valid.payees[0].amount == valid.amount
    limits = DocumentsConfig(epayment_limit=valid.amount - 1)
    r = refused(as_docs(data), limits=limits)
    assert r.code == "OVER_EPAYMENT_LIMIT" and "$.amount" in r.message
    data["payee"]["id_number"] = "04595258"
    assert refused(as_docs(data)).code == "BAD_BUSINESS_NUMBER"


def test_cheque_cancellation_other_reason_needs_text():
    [doc] = generate_documents(AGENCY, 1, seed=5, kinds=["cheque_cancellation"], today=TODAY)
    data = json.loads(doc.data)
    data["cancel_reason"] = "other"
    data.pop("reason_text", None)
    r = refused(as_docs(data))
    assert r.code == "DOCUMENT_INVALID" and "reason_text" in r.message
    data["reason_text"] = "受款人死亡，改由繼承人請領"
    assert run(as_docs(data))


def test_document_amount_rule():
    assert document_amount("payment_voucher", voucher()) == 42500
    assert document_amount("correction_request", {}) == 0
    for kind in ("stop_payment_notice", "cheque_cancellation", "expenditure_recovery", "payment_slip",
                 "revenue_refund"):
        assert document_amount(kind, {"amount": "77"}) == 77
    with pytest.raises(KeyError):
        document_amount("lottery_ticket", {})
    assert set(KINDS) == {"payment_voucher", "transfer_voucher", "correction_request", "stop_payment_notice",
                          "cheque_cancellation", "expenditure_recovery", "payment_slip", "revenue_refund"}


# ------------------------------------------------------------------- manifest


def good_manifest():
    return build_manifest("ENV-TEST-0001", AGENCY, CREATED, as_docs(voucher()))


def _with(change):
    m = good_manifest()
    change(m)
    return m


@pytest.mark.parametrize("change, path", [
    (lambda m: m.pop("envelope_id"), "$.envelope_id"),
    (lambda m: m.update(envelope_id="short"), "$.envelope_id"),
    (lambda m: m.update(envelope_id="-starts-with-dash"), "$.envelope_id"),
    (lambda m: m.update(agency="a123"), "$.agency"),
    (lambda m: m.update(created_at="2025-06-15T09:30:00"), "$.created_at"),  # no offset
    (lambda m: m.update(created_at="2025-02-30T09:30:00+08:00"), "$.created_at"),
    (lambda m: m.update(extra=1), "$"),
    (lambda m: m.update(documents=[]), "$.documents"),
    (lambda m: m["documents"][0].update(sha256="AB" * 32), "$.documents[0].sha256"),
    (lambda m: m["documents"][0].update(path="../evil.json"), "$.documents[0].path"),
    (lambda m: m["documents"][0].update(path="/abs.json"), "$.documents[0].path"),
    (lambda m: m["documents"][0].update(path="dir/.hidden"), "$.documents[0].path"),
    (lambda m: m["documents"][0].update(path="付款.json"), "$.documents[0].path"),
    (lambda m: m["documents"][0].update(path="manifest.json"), "$.documents[0].path"),
    (lambda m: m["documents"][0].update(extra=1), "$.documents[0]"),
    (lambda m: m["documents"].append(dict(m["documents"][0], path="DOC0.JSON")), "$.documents[1].path"),
    (lambda m: m["control"].update(total_amount=1.5), "$.control.total_amount"),
    (lambda m: m["control"].update(extra=1), "$.control"),
    (lambda m: m["control"].pop("document_count"), "$.control.document_count"),
    (lambda m: m.update(profile=1), "$.profile"),
])
def test_manifest_invalid_names_the_path(change, path):
    with pytest.raises(Refusal) as info:
        validate_manifest(_with(change))
    r = info.value
    assert (r.code, r.layer) == ("MANIFEST_INVALID", Layer.PAYLOAD)
    assert r.message.startswith(f"manifest.json: {path}")
    assert r.detail["field"] == path


def test_manifest_profile_and_kind():
    with pytest.raises(Refusal) as info:
        validate_manifest(_with(lambda m: m.update(profile="TPE/2")))
    assert info.value.code == "UNSUPPORTED_PROFILE" and "'TPE/2'" in info.value.message
    with pytest.raises(Refusal) as info:
        validate_manifest(_with(lambda m: m["documents"][0].update(kind="lottery_ticket")))
    assert info.value.code == "UNKNOWN_DOCUMENT_KIND" and info.value.layer == Layer.PAYLOAD
    with pytest.raises(Refusal) as info:
        validate_manifest([])
    assert info.value.code == "MANIFEST_INVALID"


def test_manifest_accepts_its_variants():
    for change in (lambda m: m.update(created_at="2025-06-15T01:30:00Z"),
                   lambda m: m.update(created_at="2025-06-15T09:30:00.123456789+08:00"),
                   lambda m: m["control"].update(total_amount="42500"),
                   lambda m: m["documents"][0].update(path="vouchers/2025/doc-0.json")):
        validate_manifest(_with(change))


def test_load_manifest_parses_strictly():
    m = good_manifest()
    assert load_manifest(json.dumps(m).encode()) == m
    for data in (b"\x80", b"{", json.dumps(m).encode()[:-1] + b', "agency": "X"}'):
        with pytest.raises(Refusal) as info:
            load_manifest(data)
        assert info.value.code == "MANIFEST_INVALID"


def test_control_totals():
    docs = as_docs(voucher(), voucher(voucher_no="1140000002"))
    m = build_manifest("ENV-TEST-0001", AGENCY, CREATED, docs)
    assert m["control"] == {"document_count": 2, "total_amount": 85000}
    valid = run(docs, manifest=m)
    check_control_totals(m, [v.amount for v in valid])
    for change, code in ((lambda m: m["control"].update(document_count=3), "CONTROL_COUNT_MISMATCH"),
                         (lambda m: m["control"].update(total_amount="85001"), "CONTROL_TOTAL_MISMATCH")):
        bad = copy.deepcopy(m)
        change(bad)
        with pytest.raises(Refusal) as info:
            check_control_totals(bad, [v.amount for v in valid])
        assert (info.value.code, info.value.layer) == (code, Layer.PAYLOAD)


def test_largest_amount_fits_javascript_numbers():
    # Every amount the schemas allow (< 10**15) is exact in an IEEE double (< 2**53), so
    # a JavaScript tool reading a manifest or voucher as numbers loses nothing.
    big = voucher(total_amount="999999999999999")
    big["payees"] = [dict(big["payees"][0], amount=999999999999998), dict(big["payees"][1], amount=1)]
    assert run(as_docs(big), limits=DocumentsConfig(epayment_limit=10**15))[0].amount == 10**15 - 1
    assert 10**15 - 1 < 2**53
    r = refused(as_docs(voucher(total_amount=10**15)))
    assert r.code == "DOCUMENT_INVALID" and "$.total_amount" in r.message
