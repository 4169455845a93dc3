"""Check-digit and format rules of Taiwanese identifiers, dates and amounts.

Pure functions: no I/O except reading the bank-code list once per file. Each rule is
documented in docs/documents.md (section "Check rules"); tests/documents pins every rule
with known-good and known-bad values.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

# Amounts are whole NT dollars below 10^15: more than any budget, and far below the
# 4300-digit limit of int() so a hostile digit string cannot cost CPU.
MAX_AMOUNT = 10**15 - 1
_AMOUNT_DIGITS = re.compile(r"[0-9]{1,15}")


class CheckFailed(ValueError):
    """A value broke one rule; `code` is the reason code the documents layer reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------- amounts


def parse_amount(value: object) -> int:
    """An amount as an int: a JSON integer or a string of digits, whole NT dollars.

    Floats are refused even when whole (100.0): a float in a payment file means some tool
    on the way went through binary floating point, and 0.1 + 0.2 is not money. Booleans
    are refused although Python counts them as ints.
    """
    if isinstance(value, bool):
        raise ValueError(f"amount must be an integer or a digit string, not a boolean ({value!r})")
    if isinstance(value, int):
        if not 0 <= value <= MAX_AMOUNT:
            raise ValueError(f"amount {value} is outside 0..{MAX_AMOUNT}")
        return value
    if isinstance(value, str):
        if not _AMOUNT_DIGITS.fullmatch(value):
            raise ValueError(f"amount {_short(value)!r} is not a string of 1 to 15 digits")
        return int(value)
    if isinstance(value, float):
        raise ValueError(f"amount {value!r} is a floating-point number; write whole NT dollars as an integer")
    raise ValueError(f"amount must be an integer or a digit string, not {type(value).__name__}")


# ------------------------------------------------------ unified business number (統一編號)

_UBN_WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)
_UBN_SHAPE = re.compile(r"[0-9]{8}")


def _ubn_sum(digits: str) -> int:
    # Each product is at most 9*4 = 36, so "sum of its digits" is tens + ones.
    return sum(p // 10 + p % 10 for p in (int(d) * w for d, w in zip(digits, _UBN_WEIGHTS, strict=True)))


def is_valid_business_number(value: str) -> bool:
    """True if `value` is an 8-digit 統一編號 whose check digit holds.

    Rule (財政部, in force since 2023-04-01, replacing "divisible by 10"): multiply the
    digits by 1,2,1,2,1,2,4,1, add the digits of each product, and the sum must be
    divisible by 5. When the 7th digit is 7 its product 28 gives 2+8 = 10, which counts as
    either 1 or 0, so the number is also valid when sum + 1 is divisible by 5.
    """
    if not isinstance(value, str) or not _UBN_SHAPE.fullmatch(value):
        return False
    total = _ubn_sum(value)
    return total % 5 == 0 or (value[6] == "7" and (total + 1) % 5 == 0)


def business_number_problem(value: str) -> str | None:
    """Why `value` is not a usable 統一編號, or None if it is."""
    if not _UBN_SHAPE.fullmatch(value):
        return f"business number {_short(value)!r} must be exactly 8 digits"
    if value == "00000000":
        # Passes the arithmetic but is the usual "unknown" placeholder: never pay to it.
        return "business number '00000000' is a placeholder, not a real number"
    if not is_valid_business_number(value):
        return f"business number {value!r} fails its check digit"
    return None


def business_number_check_digits(first7: str) -> list[str]:
    """The last digits that make `first7` + digit a valid 統一編號 (at least two exist)."""
    return [d for d in "0123456789" if is_valid_business_number(first7 + d)]


# ----------------------------------------------------- national ID (身分證統一編號) and ARC

# Letter -> two-digit area code. The order is historical (I, O, W, Z were added later),
# which is why it is not alphabetical.
_AREA = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))
_NID_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 1)
_NID_SHAPE = re.compile(r"[A-Z][12][0-9]{8}")  # citizen: 1 male, 2 female
_ARC_NEW_SHAPE = re.compile(r"[A-Z][89][0-9]{8}")  # resident certificate since 2021: 8 male, 9 female
_ARC_OLD_SHAPE = re.compile(r"[A-Z][A-D][0-9]{8}")  # resident certificate before 2021 (valid until 2031)


def _nid_sum(value: str) -> int:
    area = _AREA[value[0]]
    second = value[1]
    # Old-style resident certificates carry a letter in second place; it counts as the
    # units digit of its own area code (A->0, B->1, C->2, D->3).
    second_digit = _AREA[second] % 10 if second.isalpha() else int(second)
    digits = [second_digit, *(int(c) for c in value[2:9])]
    return area // 10 + (area % 10) * 9 + sum(d * w for d, w in zip(digits, _NID_WEIGHTS, strict=True)) + int(value[9])


def is_valid_national_id(value: str) -> bool:
    """True for a 身分證統一編號 or a resident certificate number (居留證統一證號), new or old style.

    Rule: the letter becomes its two-digit area code (A=10 ... see _AREA); tens x1 plus
    units x9, then the next eight digits x 8,7,6,5,4,3,2,1 and the last digit x1; the sum
    must be divisible by 10.
    """
    return national_id_problem(value) is None


def national_id_problem(value: str) -> str | None:
    """Why `value` is not a valid national ID / resident certificate number, or None.

    The message masks the number (first and last two characters only): it is personal data.
    """
    shown = mask_id(value)
    if not (_NID_SHAPE.fullmatch(value) or _ARC_NEW_SHAPE.fullmatch(value) or _ARC_OLD_SHAPE.fullmatch(value)):
        return (f"national ID {shown!r} must be an upper-case letter, then 1 or 2 (citizen), 8 or 9 "
                "(resident certificate) or A-D (old-style resident certificate), then 8 digits")
    if _nid_sum(value) % 10:
        return f"national ID {shown!r} fails its check digit"
    return None


def national_id_check_digit(first9: str) -> str:
    """The check digit completing a 9-character national-ID prefix (letter + 8 characters)."""
    partial = _nid_sum(first9 + "0")
    return str((10 - partial % 10) % 10)


def id_number_problem(value: str) -> tuple[str, str] | None:
    """(reason code, message) if `value` is neither a valid 統一編號 nor a valid national ID.

    Eight digits are a business number; anything else is judged as a national ID.
    """
    if len(value) == 8 and value.isdigit():  # incl. full-width digits, refused by the shape rule
        problem = business_number_problem(value)
        return ("BAD_BUSINESS_NUMBER", problem) if problem else None
    problem = national_id_problem(value)
    return ("BAD_NATIONAL_ID", problem) if problem else None


def mask_id(value: str) -> str:
    """Keep the first and last two characters of a personal identifier, star the rest."""
    if len(value) <= 4:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 4) + value[-2:]


_ID_LIKE = re.compile(r"[A-Z][0-9A-D][0-9]{8}")


def mask_ids_in(text: str) -> str:
    """Mask anything in `text` that looks like a national ID (a safety net for messages)."""
    return _ID_LIKE.sub(lambda m: mask_id(m.group(0)), text)


# ------------------------------------------------------------------- bank codes

_BANK_SHAPE = re.compile(r"[0-9]{7}")
_INSTITUTION = re.compile(r"[0-9]{3}")


class BankCodesError(ValueError):
    """The configured bank-code list cannot be used (an operational problem, not a refusal)."""


@lru_cache(maxsize=8)
def load_bank_codes(path: str | Path | None = None) -> Mapping[str, str]:
    """3-digit financial-institution code -> name, from `path` or the bundled list.

    `path` (DocumentsConfig.bank_codes_file) replaces the bundled list entirely. Formats:
    a JSON object {"004": "臺灣銀行", ...}, or text lines "004 臺灣銀行" / "004,臺灣銀行"
    with '#' comments. Read once per path; call at start-up so a broken file stops the
    daemon instead of refusing envelopes.
    """
    if path is None:
        text = resources.files(__package__).joinpath("bank_codes.json").read_text(encoding="utf-8")
        return _parse_bank_json(text, "bundled bank_codes.json")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BankCodesError(f"{path}: cannot read bank codes: {exc}") from None
    if path.suffix.lower() == ".json":
        return _parse_bank_json(text, str(path))
    codes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        code, name = _split_line(line)
        if not _INSTITUTION.fullmatch(code):
            raise BankCodesError(f"{path}:{number}: {code!r} is not a 3-digit financial institution code")
        codes[code] = name.strip()
    if not codes:
        raise BankCodesError(f"{path}: no bank codes in the file")
    return MappingProxyType(codes)


def _split_line(line: str) -> tuple[str, str]:
    parts = re.split(r"[,\t ]+", line, maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _parse_bank_json(text: str, where: str) -> Mapping[str, str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BankCodesError(f"{where}: not valid JSON: {exc}") from None
    if isinstance(data, list):
        data = dict.fromkeys(data, "")
    if not isinstance(data, dict) or not data:
        raise BankCodesError(f"{where}: must be a non-empty JSON object of code -> name")
    for code, name in data.items():
        if not _INSTITUTION.fullmatch(str(code)) or not isinstance(name, str):
            raise BankCodesError(f"{where}: entry {code!r}: need a 3-digit code and a name")
    return MappingProxyType(dict(data))


def bank_code_problem(value: str, codes: Mapping[str, str]) -> str | None:
    """Why `value` is not a usable 7-digit bank code (3-digit institution + 4-digit branch)."""
    if not _BANK_SHAPE.fullmatch(value):
        return f"bank code {_short(value)!r} must be 7 digits: 3 for the institution and 4 for the branch"
    if value[:3] not in codes:
        return f"bank code {value!r}: {value[:3]!r} is not a known financial institution"
    return None


# ------------------------------------------------------------------- ROC dates

_ROC_COMPACT = re.compile(r"([0-9]{3})([0-9]{2})([0-9]{2})")
_ROC_SLASHED = re.compile(r"([0-9]{2,3})/([0-9]{2})/([0-9]{2})")
ROC_OFFSET = 1911  # ROC year 1 = 1912


def parse_roc_date(value: str) -> dt.date:
    """A 民國 date, 'YYYMMDD' (7 digits, e.g. 1130229) or 'YYY/MM/DD' (e.g. 113/02/29).

    The calendar is checked for real (February 29 only in leap years). Raises ValueError.
    """
    if not isinstance(value, str):
        raise ValueError(f"ROC date must be a string, not {type(value).__name__}")
    m = _ROC_COMPACT.fullmatch(value) or _ROC_SLASHED.fullmatch(value)
    if not m:
        raise ValueError(f"ROC date {_short(value)!r} must be YYYMMDD (e.g. 1130105) or YYY/MM/DD (e.g. 113/01/05)")
    year, month, day = (int(g) for g in m.groups())
    if year < 1:
        raise ValueError(f"ROC date {value!r}: year must be 1 or later")
    try:
        return dt.date(year + ROC_OFFSET, month, day)
    except ValueError:
        raise ValueError(f"ROC date {value!r} is not a real calendar date") from None


def format_roc_date(day: dt.date, *, slashed: bool = False) -> str:
    year = day.year - ROC_OFFSET
    if year < 1:
        raise ValueError(f"{day} is before the ROC calendar (1912)")
    return f"{year:03d}/{day.month:02d}/{day.day:02d}" if slashed else f"{year:03d}{day.month:02d}{day.day:02d}"


def roc_year(day: dt.date) -> int:
    return day.year - ROC_OFFSET


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
