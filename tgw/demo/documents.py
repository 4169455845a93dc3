"""Realistic demo documents, and documents that break one rule each.

Everything is derived from a seed, so a demo or a test can be repeated exactly. The
identifiers are generated with correct check digits; they are random, not anybody's real
number (a random national ID may of course coincide with a real one: demo data only).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from tgw_common.config import DocumentsConfig
from tgw_common.documents.checks import (
    business_number_check_digits,
    format_roc_date,
    load_bank_codes,
    national_id_check_digit,
    roc_year,
)
from tgw_common.documents.kinds import KINDS

DEFAULT_KINDS = ("payment_voucher", "transfer_voucher")


class GeneratedDocument(NamedTuple):
    path: str
    kind: str
    data: bytes


# --------------------------------------------------------------------- vocabularies

_COMPANY_HEAD = ("宏達", "大同", "永豐", "光華", "新興", "長青", "中興", "福星", "金豐", "信義",
                 "仁和", "建國", "復興", "明德", "正新", "聯合", "東昇", "台北", "南山", "北辰")
_COMPANY_TRADE = ("資訊", "營造", "工程", "印刷", "文具", "清潔", "保全", "管理顧問", "電機", "科技",
                  "醫療器材", "餐飲", "交通", "環保", "物流", "電信", "機電", "景觀")
_COMPANY_FORM = ("股份有限公司", "有限公司", "企業社", "工程行")
_SURNAMES = ("陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "許", "鄭", "謝", "郭", "洪",
             "曾", "邱", "廖", "賴", "周", "徐", "蘇", "葉", "莊", "呂")
_GIVEN = ("志", "明", "俊", "傑", "淑", "芬", "美", "玲", "家", "豪", "雅", "婷", "建", "宏", "怡",
          "君", "文", "彥", "佳", "慧", "冠", "宇", "欣", "柏", "承", "恩", "思", "妤", "育", "誠")
_BUDGET_ACCOUNTS = (
    ("3201010100", "一般行政－基本行政工作維持"),
    ("3201010200", "一般行政－資訊管理"),
    ("3202010000", "業務推動－計畫管理"),
    ("3203010000", "公共建設－營建工程"),
    ("3204010000", "教育訓練"),
    ("3205010000", "補(捐)助地方政府"),
)
_PURPOSES = ("辦公用品採購", "資訊設備維護費", "委託研究計畫第二期款", "清潔勞務委外費用",
             "出差旅費", "講座鐘點費", "工程估驗款", "印刷費", "水電費", "會議場地租金")
_TRANSFER_TARGETS = (
    ("財政部臺北國稅局", "代扣所得稅款"),
    ("勞動部勞工保險局", "勞工保險費機關負擔"),
    ("衛生福利部中央健康保險署", "全民健康保險費機關負擔"),
    ("公務人員退休撫恤基金管理局", "退撫基金提撥"),
    ("國庫", "繳回以前年度結餘"),
)
_REVENUE_ACCOUNTS = (("4101010000", "規費收入"), ("4201010000", "罰金罰鍰收入"),
                     ("4301010000", "財產孳息收入"), ("4501010000", "雜項收入"))


# ---------------------------------------------------------------- identifier makers


def make_business_number(rng: random.Random) -> str:
    """A random 統一編號 with a correct check digit."""
    first7 = f"{rng.randrange(1, 10**7):07d}"
    return first7 + rng.choice(business_number_check_digits(first7))


def make_national_id(rng: random.Random, *, resident: bool = False) -> str:
    """A random national ID (or new-style resident certificate number) with a correct check digit."""
    letter = rng.choice("ABCDEFGHJKLMNPQRSTUVXYWZIO")
    second = rng.choice("89" if resident else "12")
    first9 = letter + second + f"{rng.randrange(10**7):07d}"
    return first9 + national_id_check_digit(first9)


def _company(rng: random.Random) -> str:
    return rng.choice(_COMPANY_HEAD) + rng.choice(_COMPANY_TRADE) + rng.choice(_COMPANY_FORM)


def _person(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, 2))


def _amount(rng: random.Random, low: int = 300, high: int = 2_000_000) -> int:
    # Log-uniform: many small payments, a few large ones, as in real ledgers.
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _as_sent(rng: random.Random, value: int) -> int | str:
    # Some agencies' tools write amounts as digit strings; the demo exercises both.
    return str(value) if rng.random() < 0.2 else value


def _bank(rng: random.Random, codes: Sequence[str]) -> tuple[str, str]:
    institution = rng.choice(codes)
    account_digits = 14 if institution == "700" else rng.choice((12, 13, 14))
    return institution + f"{rng.randrange(10**4):04d}", f"{rng.randrange(10**(account_digits - 1), 10**account_digits)}"


class _Context:
    def __init__(self, agency: str, seed: int, today: dt.date, bank_codes: Mapping[str, str]) -> None:
        self.rng = random.Random(seed)
        self.agency = agency
        self.today = today
        self.year = roc_year(today)
        self.codes = sorted(bank_codes)
        # A batch number from the seed keeps voucher numbers of different demo runs apart,
        # so the database's cross-envelope duplicate check does not trip over demo data.
        self.batch = self.rng.randrange(10**5)
        self.serial = 0

    def number(self, prefix: str = "") -> str:
        self.serial += 1
        return f"{prefix}{self.year:03d}{self.batch:05d}{self.serial:06d}"

    def date(self) -> str:
        start = dt.date(self.today.year, 1, 1)
        return format_roc_date(start + dt.timedelta(days=self.rng.randrange((self.today - start).days + 1)))

    def header(self, kind: str, number: str) -> dict[str, Any]:
        spec = KINDS[kind]
        return {"kind": kind, spec.number_field: number, "fiscal_year": self.year,
                "agency_code": self.agency, "agency_name": "示範機關"}

    def payee(self, method: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.55:
            payee = {"name": _company(rng), "id_number": make_business_number(rng)}
        else:
            payee = {"name": _person(rng), "id_number": make_national_id(rng, resident=rng.random() < 0.05)}
        if method != "treasury_cheque":
            payee["bank_code"], payee["account_no"] = _bank(rng, self.codes)
        return payee


def _payment_voucher(c: _Context, method: str | None = None) -> dict[str, Any]:
    rng = c.rng
    method = method or rng.choices(("transfer", "remittance", "treasury_cheque"), (6, 3, 1))[0]
    account = rng.choice(_BUDGET_ACCOUNTS)
    payees, total = [], 0
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5, 8))):
        payee = c.payee(method)
        amount = _amount(rng)
        payee["amount"] = _as_sent(rng, amount)
        if rng.random() < 0.3:
            payee["memo"] = "貨款" if "公司" in payee["name"] else "鐘點費"
        payees.append(payee)
        total += amount
    return {**c.header("payment_voucher", c.number()), "budget_type": rng.choices(("annual", "reserved"), (9, 1))[0],
            "budget_account": account[0], "budget_account_name": account[1], "voucher_date": c.date(),
            "payment_method": method, "purpose": rng.choice(_PURPOSES), "payees": payees,
            "total_amount": _as_sent(rng, total)}


def _transfer_voucher(c: _Context) -> dict[str, Any]:
    rng = c.rng
    account = rng.choice(_BUDGET_ACCOUNTS)
    recipients, total = [], 0
    for name, purpose in rng.sample(_TRANSFER_TARGETS, rng.choice((1, 1, 2, 3))):
        amount = _amount(rng, 1_000, 5_000_000)
        entry = {"name": name, "treasury_account": f"{rng.randrange(10**6):06d}", "amount": _as_sent(rng, amount),
                 "memo": purpose}
        if name != "國庫":
            entry["business_number"] = make_business_number(rng)
        recipients.append(entry)
        total += amount
    return {**c.header("transfer_voucher", c.number()), "budget_type": "annual",
            "budget_account": account[0], "budget_account_name": account[1], "voucher_date": c.date(),
            "purpose": "轉帳：" + "、".join(r["memo"] for r in recipients), "recipients": recipients,
            "total_amount": _as_sent(c.rng, total)}


def _correction_request(c: _Context) -> dict[str, Any]:
    rng = c.rng
    field = rng.choice(("bank_code", "account_no", "name", "id_number"))
    bank, account = _bank(rng, c.codes)
    new_value = {"bank_code": bank, "account_no": account, "name": _company(rng),
                 "id_number": make_business_number(rng)}[field]
    return {**c.header("correction_request", c.number("C")), "request_date": c.date(),
            "original_voucher_no": c.number(), "original_voucher_date": c.date(),
            "corrections": [{"payee_seq": rng.randint(1, 3), "field": field, "new_value": new_value}],
            "reason": "受款人資料誤植"}


def _stop_payment_notice(c: _Context) -> dict[str, Any]:
    return {**c.header("stop_payment_notice", c.number("S")), "notice_date": c.date(),
            "voucher_no": c.number(), "voucher_date": c.date(), "payee_seq": 1,
            "amount": _as_sent(c.rng, _amount(c.rng)), "reason": "契約爭議，暫停付款"}


def _cheque_cancellation(c: _Context) -> dict[str, Any]:
    rng = c.rng
    return {**c.header("cheque_cancellation", c.number("Q")), "application_date": c.date(),
            "cheque_no": f"AB{rng.randrange(10**8):08d}", "cheque_date": c.date(), "voucher_no": c.number(),
            "payee_name": _company(rng), "amount": _as_sent(rng, _amount(rng)),
            "cancel_reason": rng.choice(("lost", "expired", "damaged", "wrong_details"))}


def _expenditure_recovery(c: _Context) -> dict[str, Any]:
    rng = c.rng
    account = rng.choice(_BUDGET_ACCOUNTS)
    return {**c.header("expenditure_recovery", c.number("R")), "budget_type": "annual",
            "budget_account": account[0], "budget_account_name": account[1], "recovery_date": c.date(),
            "original_voucher_no": c.number(), "payer_name": _company(rng),
            "payer_id_number": make_business_number(rng), "amount": _as_sent(rng, _amount(rng, 100, 200_000)),
            "reason": "溢付款項收回"}


def _payment_slip(c: _Context) -> dict[str, Any]:
    rng = c.rng
    account = rng.choice(_REVENUE_ACCOUNTS)
    return {**c.header("payment_slip", c.number("P")), "revenue_account": account[0],
            "revenue_account_name": account[1], "issue_date": c.date(), "payer_name": _person(rng),
            "payer_id_number": make_national_id(rng), "amount": _as_sent(rng, _amount(rng, 100, 500_000))}


def _revenue_refund(c: _Context) -> dict[str, Any]:
    rng = c.rng
    account = rng.choice(_REVENUE_ACCOUNTS)
    method = rng.choice(("transfer", "remittance"))
    return {**c.header("revenue_refund", c.number("F")), "revenue_account": account[0],
            "revenue_account_name": account[1], "refund_date": c.date(), "original_slip_no": c.number("P"),
            "payment_method": method, "payee": c.payee(method), "amount": _as_sent(rng, _amount(rng, 100, 100_000)),
            "reason": "溢繳退還"}


_MAKERS: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "payment_voucher": _payment_voucher, "transfer_voucher": _transfer_voucher,
    "correction_request": _correction_request, "stop_payment_notice": _stop_payment_notice,
    "cheque_cancellation": _cheque_cancellation, "expenditure_recovery": _expenditure_recovery,
    "payment_slip": _payment_slip, "revenue_refund": _revenue_refund,
}


def encode(doc: Mapping[str, Any]) -> bytes:
    """A document as the bytes that go into the ZIP (UTF-8, readable Chinese)."""
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _path(kind: str, doc: Mapping[str, Any]) -> str:
    return f"{kind}_{doc[KINDS[kind].number_field]}.json"


def generate_documents(agency: str, count: int, *, seed: int, kinds: Iterable[str] | None = None,
                       today: dt.date | None = None,
                       bank_codes: Mapping[str, str] | None = None) -> list[GeneratedDocument]:
    """`count` valid documents of `agency`, dated this ROC year up to `today`.

    By default about four payment vouchers to one transfer voucher; `kinds` limits the
    mix (each listed kind is equally likely). `bank_codes` restricts the banks used (pass
    the configured list when it replaces the bundled one).
    """
    chosen = list(kinds) if kinds else list(DEFAULT_KINDS)
    unknown = [k for k in chosen if k not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown document kind(s) {unknown}; choose from {list(_MAKERS)}")
    if count < 0:
        raise ValueError("count must be 0 or more")
    c = _Context(agency, seed, today or dt.date.today(), bank_codes or load_bank_codes())
    weights = [4 if k == "payment_voucher" and not kinds else 1 for k in chosen]
    out = []
    for _ in range(count):
        kind = c.rng.choices(chosen, weights)[0]
        doc = _MAKERS[kind](c)
        out.append(GeneratedDocument(_path(kind, doc), kind, encode(doc)))
    return out


# ------------------------------------------------------------------ bad documents


def _other_agency(agency: str) -> str:
    return agency[:-1] + ("9" if agency[-1] != "9" else "8")


def _bad_ubn(rng: random.Random) -> str:
    first7 = f"{rng.randrange(10**6):06d}0"  # 7th digit not 7: no special rule in play
    good = business_number_check_digits(first7)
    return first7 + next(d for d in "0123456789" if d not in good)


def _bad_nid(rng: random.Random) -> str:
    nid = make_national_id(rng)
    return nid[:-1] + str((int(nid[-1]) + 1) % 10)


def _voucher_pair(agency: str, seed: int, today: dt.date) -> tuple[_Context, list[dict[str, Any]]]:
    c = _Context(agency, seed, today, load_bank_codes())
    return c, [_payment_voucher(c, "transfer"), _payment_voucher(c, "remittance")]


def _set_total(doc: dict[str, Any]) -> None:
    doc["total_amount"] = sum(int(p["amount"]) for p in doc["payees"])


def _mutate(code: str, c: _Context, docs: list[dict[str, Any]], limits: DocumentsConfig) -> list[dict[str, Any]]:
    first, payee = docs[0], docs[0]["payees"][0]
    if code == "DOCUMENT_INVALID":
        payee["amount"] = int(payee["amount"]) + 0.5
    elif code == "UNKNOWN_DOCUMENT_KIND":
        first["kind"] = "lottery_ticket"
    elif code == "BAD_BUSINESS_NUMBER":
        payee.update(name=_company(c.rng), id_number=_bad_ubn(c.rng))
    elif code == "BAD_NATIONAL_ID":
        payee.update(name=_person(c.rng), id_number=_bad_nid(c.rng))
    elif code == "BAD_BANK_CODE":
        payee["bank_code"] = "999" + payee["bank_code"][3:]
    elif code == "BAD_ROC_DATE":
        first["voucher_date"] = f"{c.year:03d}0230"
    elif code == "BAD_FISCAL_YEAR":
        first["fiscal_year"] = c.year - limits.fiscal_years_back - 1
    elif code == "VOUCHER_TOTAL_MISMATCH":
        first["total_amount"] = int(first["total_amount"]) + 1
    elif code == "AGENCY_MISMATCH":
        first["agency_code"] = _other_agency(c.agency)
    elif code == "OVER_EPAYMENT_LIMIT":
        payee["amount"] = limits.epayment_limit + 1
        _set_total(first)
    elif code == "DUPLICATE_VOUCHER":
        docs[1]["voucher_no"] = first["voucher_no"]
    else:
        raise ValueError(f"no bad-document recipe for {code!r}; choose from {list(BAD_DOCUMENT_CODES)}")
    return docs


BAD_DOCUMENT_CODES = (
    "DOCUMENT_INVALID", "UNKNOWN_DOCUMENT_KIND", "BAD_BUSINESS_NUMBER", "BAD_NATIONAL_ID", "BAD_BANK_CODE",
    "BAD_ROC_DATE", "BAD_FISCAL_YEAR", "VOUCHER_TOTAL_MISMATCH", "AGENCY_MISMATCH", "OVER_EPAYMENT_LIMIT",
    "DUPLICATE_VOUCHER",
)


def bad_documents(code: str, agency: str, *, seed: int, today: dt.date | None = None,
                  limits: DocumentsConfig | None = None) -> list[GeneratedDocument]:
    """Two payment vouchers of `agency` that break exactly one rule: the one refused as `code`.

    Validated with the same agency, `today` and `limits`, the documents (with a manifest
    from tgw_common.documents.build_manifest) are refused with `code`. UNKNOWN_DOCUMENT_KIND is found by
    validate_manifest (payload layer); the others by validate_documents.
    """
    limits = limits or DocumentsConfig()
    c, docs = _voucher_pair(agency, seed, today or dt.date.today())
    paths = [_path("payment_voucher", d) for d in docs]  # before the change: DUPLICATE_VOUCHER needs two files
    docs = _mutate(code, c, docs, limits)
    return [GeneratedDocument(path, d["kind"], encode(d)) for path, d in zip(paths, docs, strict=True)]


def bad_document_variants() -> dict[str, str]:
    """Reason code -> what bad_documents() changes to provoke it (for `tgw demo-data`)."""
    return dict(_VARIANT_TEXT)


_VARIANT_TEXT = (
    ("DOCUMENT_INVALID", "a payee amount written as a float (1234.5)"),
    ("UNKNOWN_DOCUMENT_KIND", "kind 'lottery_ticket' in the document and the manifest"),
    ("BAD_BUSINESS_NUMBER", "a payee 統一編號 with a wrong check digit"),
    ("BAD_NATIONAL_ID", "a payee national ID with a wrong check digit"),
    ("BAD_BANK_CODE", "a payee bank code of institution 999"),
    ("BAD_ROC_DATE", "voucher date February 30"),
    ("BAD_FISCAL_YEAR", "fiscal year one before the accepted window"),
    ("VOUCHER_TOTAL_MISMATCH", "total_amount one dollar more than the payees"),
    ("AGENCY_MISMATCH", "a voucher of another agency"),
    ("OVER_EPAYMENT_LIMIT", "a payee amount one dollar above the e-payment limit"),
    ("DUPLICATE_VOUCHER", "the second voucher reuses the first one's number"),
)
