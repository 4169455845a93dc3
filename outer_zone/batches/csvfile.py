"""The CSV layout of a batch file: one row per payee line of a 付款憑單 or 轉帳憑單.

Consecutive rows with the same kind and voucher_no make one voucher; its header columns
are read from its first row (later rows leave them empty or repeat them). Every cell is
handed to the JSON Schema as text, except fiscal_year, which the schema wants as a number,
so a CSV voucher is judged by exactly the rules of a JSON one. docs/documents.md, "Batch
files", is the reference for the column names.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import FieldError, FileUnreadable

HEADER_COLUMNS = ("kind", "voucher_no", "fiscal_year", "agency_code", "agency_name", "budget_type",
                  "budget_account", "budget_account_name", "voucher_date", "payment_method", "purpose",
                  "total_amount")
# CSV column -> field of one entry of payees / recipients
LINE_COLUMNS = {
    "payee_name": "name", "payee_id_number": "id_number", "payee_business_number": "business_number",
    "payee_bank_code": "bank_code", "payee_account_no": "account_no",
    "payee_treasury_account": "treasury_account", "payee_amount": "amount", "payee_memo": "memo",
}
LINES_FIELD = {"payment_voucher": "payees", "transfer_voucher": "recipients"}
KIND_NAMES = {"付款憑單": "payment_voucher", "轉帳憑單": "transfer_voucher"}
_PATH_STEP = re.compile(r"(\.[^.\[]+|\[\d+\])$")


@dataclass
class CsvDocument:
    """A voucher built from rows, and where each of its JSON paths came from."""

    data: dict[str, Any]
    first_row: int
    cells: dict[str, str] = field(default_factory=dict)  # JSON path -> "row R, column C"

    def locate(self, path: str) -> str:
        """The cell a JSON path came from; a path above the cells (a whole payee, a missing
        field) is reported at the nearest row that holds it."""
        while path not in self.cells and _PATH_STEP.search(path):
            path = _PATH_STEP.sub("", path)
        return self.cells.get(path, f"row {self.first_row}")


def decode(data: bytes) -> str:
    """UTF-8 with or without a byte-order mark; Big5 (the seed system's export) is refused
    by name, so the agency knows to save the file as UTF-8 instead of guessing at mojibake."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            data.decode("big5")
        except UnicodeDecodeError:
            raise FileUnreadable(f"檔案不是 UTF-8 編碼（第 {exc.start} 位元組）/ the file is not UTF-8 "
                                 f"(byte {exc.start})") from None
        raise FileUnreadable("檔案似為 Big5 編碼，請另存為 UTF-8 / the file looks like Big5; save it as UTF-8 "
                             "(with or without BOM) and upload it again") from None


def read_csv(data: bytes) -> tuple[list[CsvDocument], list[FieldError]]:
    """The vouchers of a CSV batch file, and the errors the layout itself shows."""
    try:
        return _read_rows(csv.reader(io.StringIO(decode(data), newline="")))
    except csv.Error as exc:  # a NUL byte, an unclosed quote at the end, an absurdly long cell
        raise FileUnreadable(f"CSV 無法讀取 / not readable as CSV: {exc}") from None


def _read_rows(rows: Iterator[list[str]]) -> tuple[list[CsvDocument], list[FieldError]]:
    header = [name.strip() for name in next(rows, [])]
    _check_header(header)
    documents: list[CsvDocument] = []
    errors: list[FieldError] = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FileUnreadable(f"第 {number} 列有 {len(row)} 欄，標題列有 {len(header)} 欄 / row {number} has "
                                 f"{len(row)} cells, the header row {len(header)}")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        kind = cells["kind"] = KIND_NAMES.get(cells["kind"], cells["kind"])
        current = documents[-1] if documents else None
        if current is None or (current.data.get("kind"), current.data.get("voucher_no")) != (kind, cells["voucher_no"]):
            current = _start_document(kind, cells, number)
            documents.append(current)
        else:
            errors += _repeated_header(len(documents) - 1, current, cells, number)
        _add_line(current, cells, number)
    if not documents:
        raise FileUnreadable("檔案沒有任何憑單列 / the file has no voucher rows")
    return documents, errors


def _check_header(header: list[str]) -> None:
    known = set(HEADER_COLUMNS) | set(LINE_COLUMNS)
    unknown = [name for name in header if name not in known]
    if unknown:
        raise FileUnreadable(f"不認得的欄位 / unknown column(s): {', '.join(unknown[:10])}")
    if len(set(header)) != len(header):
        raise FileUnreadable("欄位名稱重複 / a column name appears twice")
    missing = [name for name in ("kind", "voucher_no") if name not in header]
    if missing:
        raise FileUnreadable(f"缺少欄位 / missing column(s): {', '.join(missing)}")


def _start_document(kind: str, cells: dict[str, str], number: int) -> CsvDocument:
    doc = CsvDocument({}, number)
    for name in HEADER_COLUMNS:
        value = cells.get(name, "")
        if not value:
            continue  # an empty cell is an absent field: the schema says whether it may be
        doc.data[name] = int(value) if name == "fiscal_year" and value.isdigit() else value
        doc.cells[f"$.{name}"] = f"row {number}, column {name}"
    doc.data["kind"] = kind
    doc.data[LINES_FIELD.get(kind, "payees")] = []
    return doc


def _repeated_header(index: int, doc: CsvDocument, cells: dict[str, str], number: int) -> list[FieldError]:
    errors = []
    for name in HEADER_COLUMNS:
        value, first = cells.get(name, ""), doc.data.get(name, "")
        if value and value != str(first):
            errors.append(FieldError(index, f"row {number}, column {name}", "DOCUMENT_INVALID",
                                     f"{value!r} 與第 {doc.first_row} 列不同 / differs from row {doc.first_row} "
                                     f"of the same voucher ({str(first)!r})", f"$.{name}"))
    return errors


def _add_line(doc: CsvDocument, cells: dict[str, str], number: int) -> None:
    lines_field = LINES_FIELD.get(doc.data["kind"], "payees")
    lines = doc.data[lines_field]
    base = f"$.{lines_field}[{len(lines)}]"
    line = {}
    for column, name in LINE_COLUMNS.items():
        if cells.get(column):
            line[name] = cells[column]
            doc.cells[f"{base}.{name}"] = f"row {number}, column {column}"
    doc.cells[base] = f"row {number}"
    lines.append(line)
