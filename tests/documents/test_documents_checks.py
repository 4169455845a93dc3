"""Check-digit, bank-code, ROC-date and amount rules with known-good and known-bad values.

The "good" example numbers were verified by hand with the published rules (the digit
sums are in the comments), not taken on trust.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgw.demo.documents import make_business_number, make_national_id
from tgw_common.documents import (
    BankCodesError,
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
)
from tgw_common.documents.checks import business_number_check_digits, mask_ids_in, national_id_check_digit

# ---------------------------------------------------------------- 統一編號


@pytest.mark.parametrize("ubn", [
    "04595257",  # digit-sum 40
    "22099131",  # 30
    "10458575",  # 30, 7th digit 7
    "10458574",  # 29: valid only through the 7th-digit-is-7 rule (29 + 1 = 30)
    "12345675",  # 39: valid only through the 7th-digit-is-7 rule
    "04595252",  # 35: valid only under the 2023 "divisible by 5" rule, not the old "by 10"
])
def test_valid_business_numbers(ubn):
    assert is_valid_business_number(ubn)
    assert business_number_problem(ubn) is None


@pytest.mark.parametrize("ubn, why", [
    ("04595258", "check digit"),  # 41
    ("12345678", "check digit"),  # 42 and 43: the special rule does not rescue it
    ("10458573", "check digit"),  # 28 and 29
    ("0459525", "8 digits"),
    ("045952570", "8 digits"),
    ("0459525A", "8 digits"),
    ("０４５９５２５７", "8 digits"),  # full-width digits
    ("", "8 digits"),
    ("00000000", "placeholder"),
])
def test_invalid_business_numbers(ubn, why):
    assert not is_valid_business_number(ubn) or ubn == "00000000"
    assert why in business_number_problem(ubn)


def test_special_rule_needs_seventh_digit_seven():
    # 12345605 has digit-sum 29 like 10458574, but its 7th digit is 0: no rescue.
    assert not is_valid_business_number("12345605")


@given(st.text(alphabet="0123456789", min_size=7, max_size=7))
def test_check_digits_of_business_numbers(first7):
    good = business_number_check_digits(first7)
    assert good and all(is_valid_business_number(first7 + d) for d in good)
    if first7[6] != "7":
        # Weight 1 on the last digit and "divisible by 5": exactly two digits, 5 apart.
        assert len(good) == 2 and int(good[1]) - int(good[0]) == 5


# ---------------------------------------------------------------- national ID / ARC


@pytest.mark.parametrize("nid", [
    "A123456789",  # the textbook example
    "F131104093",
    "O158238845",  # O = 35: the out-of-order letters
    "Y123456788",
    "A800000014",  # new-style resident certificate (2021-)
    "A930196810",
    "AA00000009",  # old-style resident certificate: second letter A -> 0
    "AB00207171",
    "BD01300667",
])
def test_valid_national_ids(nid):
    assert is_valid_national_id(nid)
    assert id_number_problem(nid) is None


@pytest.mark.parametrize("nid, why", [
    ("A123456788", "check digit"),
    ("F131104091", "check digit"),
    ("A800000000", "check digit"),
    ("AA00000000", "check digit"),
    ("a123456789", "upper-case letter"),
    ("A323456789", "then 1 or 2"),  # 3 is neither citizen nor resident
    ("AE00000009", "then 1 or 2"),  # old-style second letter only A-D
    ("A12345678", "then 8 digits"),
    ("A1234567890", "then 8 digits"),
    ("1123456789", "upper-case letter"),
])
def test_invalid_national_ids(nid, why):
    assert not is_valid_national_id(nid)
    problem = national_id_problem(nid)
    assert why in problem
    assert nid not in problem or len(nid) <= 4  # personal data is masked


@given(st.randoms(use_true_random=False), st.booleans())
def test_generated_ids_valid_and_any_other_check_digit_fails(rnd, resident):
    nid = make_national_id(rnd, resident=resident)
    assert is_valid_national_id(nid)
    assert national_id_check_digit(nid[:9]) == nid[9]
    for d in "0123456789":
        if d != nid[9]:
            assert not is_valid_national_id(nid[:9] + d)  # the last digit has weight 1
    assert is_valid_business_number(make_business_number(rnd))


def test_id_number_dispatch_by_shape():
    assert id_number_problem("04595258")[0] == "BAD_BUSINESS_NUMBER"
    assert id_number_problem("A123456788")[0] == "BAD_NATIONAL_ID"
    assert id_number_problem("１２３４５６７８")[0] == "BAD_BUSINESS_NUMBER"
    assert id_number_problem("ABC")[0] == "BAD_NATIONAL_ID"


def test_masking():
    assert mask_id("A123456789") == "A1******89"
    assert mask_id("abc") == "***"
    assert mask_ids_in("id A123456789 and B987654321.") == "id A1******89 and B9******21."


# ---------------------------------------------------------------- bank codes


def test_bundled_bank_codes_hold_the_big_names():
    codes = load_bank_codes()
    for code, name in {"004": "臺灣銀行", "005": "臺灣土地銀行", "006": "合作金庫商業銀行", "007": "第一商業銀行",
                       "008": "華南商業銀行", "009": "彰化商業銀行", "012": "台北富邦商業銀行",
                       "013": "國泰世華商業銀行", "017": "兆豐國際商業銀行", "700": "中華郵政",
                       "822": "中國信託商業銀行"}.items():
        assert codes[code] == name
    assert all(len(c) == 3 and c.isdigit() for c in codes)


@pytest.mark.parametrize("code, why", [
    ("0040037", None),
    ("7000021", None),
    ("9990037", "not a known financial institution"),
    ("004003", "7 digits"),
    ("00400370", "7 digits"),
    ("004-0037", "7 digits"),
    ("004", "7 digits"),
])
def test_bank_code_rule(code, why):
    problem = bank_code_problem(code, load_bank_codes())
    assert (problem is None) if why is None else (why in problem)


def test_custom_bank_code_files_replace_the_bundled_list(tmp_path):
    as_json = tmp_path / "banks.json"
    as_json.write_text('{"999": "測試銀行"}', encoding="utf-8")
    as_text = tmp_path / "banks.txt"
    as_text.write_text("# code name\n999 測試銀行\n998,另一家銀行\n\n", encoding="utf-8")
    for path in (as_json, as_text):
        codes = load_bank_codes(str(path))
        assert bank_code_problem("9990001", codes) is None
        assert "not a known" in bank_code_problem("0040037", codes)
    assert load_bank_codes(str(as_text))["998"] == "另一家銀行"


@pytest.mark.parametrize("content, suffix", [
    ("12 短代號", ".txt"),
    ("", ".txt"),
    ("{not json", ".json"),
    ('{"4": "x"}', ".json"),
    ("[]", ".json"),
])
def test_broken_bank_code_files_are_an_operational_error(tmp_path, content, suffix):
    path = tmp_path / f"banks{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BankCodesError, match=str(path)):
        load_bank_codes(str(path))
    with pytest.raises(BankCodesError, match="cannot read"):
        load_bank_codes(str(tmp_path / "missing.txt"))


# ---------------------------------------------------------------- ROC dates


@pytest.mark.parametrize("text, day", [
    ("1140105", dt.date(2025, 1, 5)),
    ("114/01/05", dt.date(2025, 1, 5)),
    ("1130229", dt.date(2024, 2, 29)),  # leap year
    ("99/12/31", dt.date(2010, 12, 31)),
    ("0010101", dt.date(1912, 1, 1)),  # ROC year 1
])
def test_valid_roc_dates(text, day):
    assert parse_roc_date(text) == day


@pytest.mark.parametrize("text", [
    "1140229",  # 2025 is not a leap year
    "1141301", "1140100", "1140431", "0000101",
    "2025-01-05", "114-01-05", "114/1/5", "11401055", "114010", "１１４０１０５", "",
])
def test_invalid_roc_dates(text):
    with pytest.raises(ValueError, match="ROC date"):
        parse_roc_date(text)


def test_roc_date_formatting_round_trips():
    day = dt.date(2025, 3, 4)
    assert format_roc_date(day) == "1140304"
    assert format_roc_date(day, slashed=True) == "114/03/04"
    assert parse_roc_date(format_roc_date(day)) == day
    with pytest.raises(ValueError):
        format_roc_date(dt.date(1911, 12, 31))


@given(st.dates(min_value=dt.date(1912, 1, 1), max_value=dt.date(2910, 12, 31)), st.booleans())
def test_roc_dates_round_trip_property(day, slashed):
    assert parse_roc_date(format_roc_date(day, slashed=slashed)) == day


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize("value, expected", [
    (0, 0), (1, 1), (123456, 123456), ("123456", 123456), ("0012", 12), ("999999999999999", 10**15 - 1),
])
def test_amounts_accepted(value, expected):
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value, why", [
    (1.0, "floating-point"), (1234.5, "floating-point"), ("1.0", "digits"), ("1,000", "digits"),
    (-1, "outside"), ("-1", "digits"), (True, "boolean"), (False, "boolean"), (None, "NoneType"),
    ("1000000000000000", "digits"), (10**15, "outside"), (" 12", "digits"), ("١٢", "digits"), ("", "digits"),
    ([1], "list"),
])
def test_amounts_refused(value, why):
    with pytest.raises(ValueError, match=why):
        parse_amount(value)


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_amount_as_int_or_digit_string(n):
    assert parse_amount(n) == parse_amount(str(n)) == n


def test_generators_are_deterministic_per_seed():
    a, b = random.Random(7), random.Random(7)
    assert [make_national_id(a) for _ in range(5)] == [make_national_id(b) for _ in range(5)]
