"""Payment results from the payment system (回饋帳務資訊): `tgw inner payments import FILE`.

The file is CSV, UTF-8 (a BOM is allowed), with the header
`document_id,result,date,bank_reference,failure_reason` (docs/payments.md). Each row names a
loaded document by its number (`document_no`), says `paid` or `failed`, the value date, the
bank's reference and, when failed, why.

A file is imported whole or not at all: any row that is malformed, names no loaded
document or more than one, or contradicts a result already imported refuses the file, each
problem named by its line, and nothing is stored. A row equal to a result already imported
is skipped, so importing the same file twice changes nothing. Imported rows are committed
with one `payments` provenance event per envelope they touch, in the same transaction: the
receipt issuer turns each event into a receipt for the agency.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tgw_common.db import transaction, utcnow
from tgw_common.events import Provenance

from .models import Document, Envelope, PaymentResult

HEADER = ("document_id", "result", "date", "bank_reference", "failure_reason")
RESULTS = ("paid", "failed")
MAX_ROWS = 1_000_000
HOP = "inner-payments"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Row:
    line: int
    document_id: str
    result: str
    value_date: str
    bank_reference: str
    failure_reason: str


@dataclass
class ImportReport:
    import_id: str
    imported: int = 0
    already: int = 0
    envelopes: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"import_id": self.import_id, "imported": self.imported, "already_imported": self.already,
                "envelopes": self.envelopes, "problems": self.problems}


def read_rows(data: bytes, problems: list[str]) -> list[Row]:
    """The file's rows; what is wrong with a row goes to `problems` (line: what)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(f"the file is not UTF-8 (byte {exc.start})")
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        problems.append(f"line 1: the header must be {','.join(HEADER)}")
        return []
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            problems.append(f"line {number}: more than {MAX_ROWS} rows")
            break
        row = _row(number, cells, problems)
        if row is not None:
            rows.append(row)
    return rows


def _row(number: int, cells: list[str], problems: list[str]) -> Row | None:
    if len(cells) != len(HEADER):
        problems.append(f"line {number}: {len(cells)} fields, expected {len(HEADER)}")
        return None
    doc, result, when, reference, reason = (c.strip() for c in cells)
    wrong = []
    if not doc or len(doc) > 64:
        wrong.append("document_id is empty or longer than 64 characters")
    if result not in RESULTS:
        wrong.append(f"result {result!r} is not paid or failed")
    if not _DATE.match(when) or not _is_date(when):
        wrong.append(f"date {when!r} is not YYYY-MM-DD")
    if len(reference) > 64:
        wrong.append("bank_reference is longer than 64 characters")
    if result == "failed" and not reason:
        wrong.append("a failed payment needs its failure_reason")
    if len(reason) > 500:
        wrong.append("failure_reason is longer than 500 characters")
    if wrong:
        problems.append(f"line {number}: " + "; ".join(wrong))
        return None
    return Row(number, doc, result, when, reference, reason)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def import_results(engine: Engine, provenance: Provenance, data: bytes) -> ImportReport:
    """Import the file whole or not at all (see the module docstring)."""
    report = ImportReport(import_id=uuid.uuid4().hex)
    rows = read_rows(data, report.problems)
    _no_repeats(rows, report.problems)
    with transaction(engine) as s:
        # Matched even when some rows are malformed: the operator learns every problem at once.
        fresh = _match(s, rows, report)
        if report.problems:
            report.problems.sort(key=_line_of)
            report.already = 0
            return report
        _store(s, provenance, fresh, report)
    return report


def _line_of(problem: str) -> int:
    found = re.match(r"line (\d+):", problem)
    return int(found.group(1)) if found else 0


def _no_repeats(rows: list[Row], problems: list[str]) -> None:
    first: dict[str, int] = {}
    for row in rows:
        if row.document_id in first:
            problems.append(f"line {row.line}: document {row.document_id} is also on line {first[row.document_id]}")
        first.setdefault(row.document_id, row.line)


def _match(s: Session, rows: list[Row], report: ImportReport) -> list[tuple[Row, Document]]:
    """Each row's loaded document; rows equal to a stored result are counted and left out."""
    fresh = []
    for row in rows:
        docs = s.scalars(select(Document).where(Document.document_no == row.document_id,
                                                Document.ledger == "live")).all()
        if not docs:
            report.problems.append(f"line {row.line}: no loaded document {row.document_id}")
            continue
        if len(docs) > 1:
            report.problems.append(f"line {row.line}: {len(docs)} loaded documents are numbered {row.document_id}")
            continue
        stored = s.scalar(select(PaymentResult).where(PaymentResult.document_pk == docs[0].id))
        if stored is None:
            fresh.append((row, docs[0]))
        elif (stored.result, stored.value_date, stored.bank_reference, stored.failure_reason) == (
                row.result, row.value_date, row.bank_reference, row.failure_reason):
            report.already += 1
        else:
            report.problems.append(f"line {row.line}: document {row.document_id} already has the result "
                                   f"{stored.result} of {stored.value_date} (import {stored.import_id})")
    return fresh


def _store(s: Session, provenance: Provenance, fresh: list[tuple[Row, Document]], report: ImportReport) -> None:
    now = utcnow()
    touched: dict[int, dict[str, int]] = {}
    for row, doc in fresh:
        s.add(PaymentResult(document_pk=doc.id, envelope_pk=doc.envelope_pk, result=row.result,
                            value_date=row.value_date, bank_reference=row.bank_reference,
                            failure_reason=row.failure_reason, import_id=report.import_id, imported_at=now))
        counts = touched.setdefault(doc.envelope_pk, {"paid": 0, "failed": 0})
        counts[row.result] += 1
    s.flush()
    for envelope_pk, counts in touched.items():
        envelope = s.get(Envelope, envelope_pk)
        provenance.record("payments", HOP, session=s, at=now, sha256=envelope.sha256,
                          tracking_id=envelope.tracking_id, envelope_id=envelope.envelope_id,
                          agency=envelope.agency, import_id=report.import_id, **counts)
    report.imported = len(fresh)
    report.envelopes = len(touched)
