"""Daily reports: totals per agency and document kind, and the reconciliation of what the
outer zone sent, what arrived and what was loaded, per Taipei calendar day.

Sources, all in the inner zone's database:
- sent: the sequence numbers the sender gave out, as the receiver learnt them across the
  one-way link (each number is in `transfer_received` once it arrived, or in
  `transfer_gaps` when the sender's ledger or the numbering showed it missing), plus the
  numbers above those that the sender's latest heartbeat (`outer.transfer-send`,
  `last_seq`) says went out and nothing has been heard of yet;
- arrived: the receiver's `arrived` events;
- loaded: rows of `intake_envelopes` by `loaded_at`.
A number is counted on the day the receiver first heard of it.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import func, inspect, select

from tgw_common.db import transaction
from tgw_common.documents import KINDS
from tgw_common.events import DaemonStatusRow, EventRow

from ..models import Document, Envelope
from .state import Console
from .timefmt import day_bounds, local, taipei_day

MAX_DAYS = 92


class ReportError(ValueError):
    pass


def kind_title(kind: str) -> str:
    """A document kind's name in the request's language (English outside a request)."""
    info = KINDS.get(kind)
    if info is None:
        return kind
    locale = get_locale()
    return info.zh if locale is not None and locale.language == "zh" else info.en


def check_range(day_from: date, day_until: date) -> None:
    if day_until < day_from:
        raise ReportError(_("the end date is before the start date"))
    if (day_until - day_from).days >= MAX_DAYS:
        raise ReportError(_("at most %(days)s days per report", days=MAX_DAYS))


def totals(console: Console, day_from: date, day_until: date, agency: str = "") -> list[dict[str, Any]]:
    """Per day, agency, document kind and ledger: envelopes, documents and amount loaded."""
    check_range(day_from, day_until)
    since, until = day_bounds(day_from)[0], day_bounds(day_until)[1]
    stmt = (select(Envelope.id, Envelope.loaded_at, Envelope.agency, Envelope.is_test, Document.kind,
                   func.count(Document.id), func.coalesce(func.sum(Document.amount), 0))
            .join(Document, Document.envelope_pk == Envelope.id)
            .where(Envelope.loaded_at >= since, Envelope.loaded_at < until)
            .group_by(Envelope.id, Envelope.loaded_at, Envelope.agency, Envelope.is_test, Document.kind))
    if agency:
        stmt = stmt.where(Envelope.agency == agency)
    groups: dict[tuple, dict[str, Any]] = {}
    with transaction(console.engine) as s:
        for _eid, loaded_at, ag, is_test, kind, docs, amount in s.execute(stmt):
            key = (taipei_day(loaded_at), ag, kind, "test" if is_test else "live")
            g = groups.setdefault(key, {"day": key[0], "agency": ag, "kind": kind, "ledger": key[3], "envelopes": set(),
                                        "documents": 0, "amount": 0})
            g["envelopes"].add(_eid)
            g["documents"] += docs
            g["amount"] += int(amount)
    rows = []
    for key in sorted(groups):
        g = groups[key]
        rows.append({**g, "envelopes": len(g["envelopes"]), "kind_title": kind_title(g["kind"])})
    return rows


# ------------------------------------------------------------------ reconciliation
def _has(console: Console, table: str) -> bool:
    return inspect(console.engine).has_table(table)


def reconciliation(console: Console, day_from: date, day_until: date) -> dict[str, Any]:
    check_range(day_from, day_until)
    since, until = day_bounds(day_from)[0], day_bounds(day_until)[1]
    days = [day_from + timedelta(days=i) for i in range((day_until - day_from).days + 1)]
    sent: dict[date, set[int]] = {}
    missing: list[dict[str, Any]] = []
    transfer_known = _has(console, "transfer_received") and _has(console, "transfer_gaps")
    with transaction(console.engine) as s:
        if transfer_known:
            sent, missing = _sent_side(s, since, until)
        seen = _RunnerSide(s, since, until)
    entries = {e["sha256"]: e for e in console.quarantine.list(statuses=("open", "held", "retried", "rejected"))}
    arrived, not_loaded = _arrived_not_loaded(seen, entries)
    loaded, unannounced = _loaded_unannounced(seen)
    rows = [{"day": d, "sent": len(sent.get(d, ())) if transfer_known else None, "arrived": arrived.get(d, 0),
             "loaded": loaded.get(d, 0)} for d in days]
    for r in rows:
        r["sent_minus_arrived"] = None if r["sent"] is None else r["sent"] - r["arrived"]
        r["arrived_minus_loaded"] = r["arrived"] - r["loaded"]
    return {"days": rows, "missing": missing, "not_loaded": not_loaded, "unannounced": unannounced,
            "transfer_known": transfer_known}


def _sent_side(s, since: datetime, until: datetime) -> tuple[dict[date, set[int]], list[dict[str, Any]]]:
    """The numbers the sender gave out (per day the receiver first heard of them) and those missing."""
    from transfer.models import ReceivedFile, TransferGap

    sent: dict[date, set[int]] = defaultdict(set)
    missing: list[dict[str, Any]] = []
    first_heard: dict[int, datetime] = {}
    for seq, at in s.execute(select(ReceivedFile.seq, func.min(ReceivedFile.at)).group_by(ReceivedFile.seq)):
        first_heard[seq] = at
    gap_rows = s.scalars(select(TransferGap)).all()
    for g in gap_rows:
        if g.seq not in first_heard or g.opened_at < first_heard[g.seq]:
            first_heard[g.seq] = g.opened_at
    for seq, at in first_heard.items():
        if since <= at < until:
            sent[taipei_day(at)].add(seq)
    for g in gap_rows:
        if g.closed_at is None and since <= g.opened_at < until:
            missing.append({"day": taipei_day(g.opened_at), "seq": g.seq, "name": g.name,
                            "tracking_id": g.as_dict()["tracking_id"], "since": g.opened_at,
                            "what": _("gap: never arrived"), "source": g.source})
    _sent_not_heard_of(s, max(first_heard, default=0), since, until, sent, missing)
    return sent, missing


def _sent_not_heard_of(s, top_known: int, since: datetime, until: datetime, sent: dict[date, set[int]],
                       missing: list[dict[str, Any]]) -> None:
    """Numbers above the highest one heard of that the sender's heartbeat says went out."""
    hb = s.get(DaemonStatusRow, "outer.transfer-send")
    last_seq = int((hb.state or {}).get("last_seq") or 0) if hb is not None else 0
    if hb is not None and last_seq > top_known and since <= hb.at < until:
        day = taipei_day(hb.at)
        for seq in range(top_known + 1, last_seq + 1):
            sent[day].add(seq)
            missing.append({"day": day, "seq": seq, "name": None, "tracking_id": None, "since": hb.at,
                            "what": _("sent, not heard of yet"), "source": "heartbeat"})


class _RunnerSide:
    """What arrived and what was loaded in the range, and what the rest of history says about them."""

    def __init__(self, s, since: datetime, until: datetime) -> None:
        self.arrivals = s.execute(select(EventRow.sha256, EventRow.tracking_id, EventRow.at)
                                  .where(EventRow.event == "arrived", EventRow.at >= since, EventRow.at < until)
                                  .order_by(EventRow.at)).all()
        self.loads = s.execute(select(Envelope.sha256, Envelope.tracking_id, Envelope.envelope_id, Envelope.agency,
                                      Envelope.loaded_at)
                               .where(Envelope.loaded_at >= since, Envelope.loaded_at < until)).all()
        shas = list({a[0] for a in self.arrivals if a[0]})
        # Loaded at any time (perhaps a later day), arrived at any time (perhaps an earlier day).
        self.loaded_any = dict(s.execute(select(Envelope.sha256, Envelope.loaded_at)
                                         .where(Envelope.sha256.in_(shas))).all()) if shas else {}
        load_shas = [ld[0] for ld in self.loads]
        self.arrived_any = set(s.scalars(select(EventRow.sha256).where(
            EventRow.event == "arrived", EventRow.sha256.in_(load_shas)))) if self.loads else set()
        self.duplicates = set(s.scalars(select(EventRow.sha256).where(
            EventRow.event == "duplicate", EventRow.hop == "inner-runner", EventRow.sha256.in_(shas)))) if shas else set()


def _arrived_not_loaded(seen: _RunnerSide, entries: dict[str, dict[str, Any]]
                        ) -> tuple[dict[date, int], list[dict[str, Any]]]:
    """Arrivals per day, and each arrival not loaded the same day with what became of it."""
    arrived: dict[date, int] = defaultdict(int)
    not_loaded: list[dict[str, Any]] = []
    for sha, tid, at in seen.arrivals:
        day = taipei_day(at)
        arrived[day] += 1
        loaded_at = seen.loaded_any.get(sha)
        if loaded_at is not None and taipei_day(loaded_at) == day:
            continue
        if loaded_at is not None:
            what = _("loaded later, %(when)s", when=local(loaded_at, "%Y-%m-%d %H:%M"))
        elif sha in entries:
            e = entries[sha]
            what = _("quarantine %(status)s: %(reason)s", status=e["status"], reason=e.get("reason"))
        elif sha in seen.duplicates:
            what = _("identical copy of a loaded envelope")
        else:
            what = _("waiting for the runner")
        not_loaded.append({"day": day, "sha256": sha, "tracking_id": tid, "arrived_at": at, "what": what,
                           "quarantine_id": entries.get(sha, {}).get("id")})
    return arrived, not_loaded


def _loaded_unannounced(seen: _RunnerSide) -> tuple[dict[date, int], list[dict[str, Any]]]:
    """Loads per day, and each load no arrival event announced."""
    loaded: dict[date, int] = defaultdict(int)
    unannounced: list[dict[str, Any]] = []
    for sha, tid, eid, ag, at in seen.loads:
        loaded[taipei_day(at)] += 1
        if sha not in seen.arrived_any:
            unannounced.append({"day": taipei_day(at), "sha256": sha, "tracking_id": tid, "envelope_id": eid,
                                "agency": ag, "loaded_at": at,
                                "what": _("no arrival recorded (processed by hand?)")})
    return loaded, unannounced


# ------------------------------------------------------------------ exports
def totals_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_("Day"), _("Agency"), _("Document kind"), _("Ledger"), _("Envelopes (count)"), _("Documents"),
                _("Amount (NT$)")])
    for r in rows:
        w.writerow([r["day"].isoformat(), r["agency"], r["kind"], r["ledger"], r["envelopes"], r["documents"],
                    r["amount"]])
    # A BOM so spreadsheet programs on Windows read the Chinese headers as UTF-8.
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def reconciliation_csv(rec: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_("Day"), _("Sent"), _("Arrived"), _("Loaded (count)"), _("Sent − arrived"), _("Arrived − loaded")])
    for r in rec["days"]:
        w.writerow([r["day"].isoformat(), "" if r["sent"] is None else r["sent"], r["arrived"], r["loaded"],
                    "" if r["sent_minus_arrived"] is None else r["sent_minus_arrived"], r["arrived_minus_loaded"]])
    w.writerow([])
    w.writerow([_("Difference"), _("Day"), _("Seq / SHA-256"), _("Tracking id"), _("Explanation")])
    for m in rec["missing"]:
        w.writerow(["sent-not-arrived", m["day"].isoformat(), m["seq"], m["tracking_id"] or "", m["what"]])
    for m in rec["not_loaded"]:
        w.writerow(["arrived-not-loaded", m["day"].isoformat(), m["sha256"], m["tracking_id"] or "", m["what"]])
    for m in rec["unannounced"]:
        w.writerow(["loaded-not-arrived", m["day"].isoformat(), m["sha256"], m["tracking_id"] or "", m["what"]])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def pdf(rows: list[dict[str, Any]], rec: dict[str, Any], *, day_from: date, day_until: date, agency: str,
        printed_by: str) -> bytes:
    """A printable A4 report; reportlab's built-in CID font MSung-Light renders Traditional Chinese."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = "MSung-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    title = ParagraphStyle("t", fontName=font, fontSize=15, leading=20)
    h2 = ParagraphStyle("h", fontName=font, fontSize=11.5, leading=16, spaceBefore=8)
    small = ParagraphStyle("s", fontName=font, fontSize=8.5, leading=11)
    style = TableStyle([("FONT", (0, 0), (-1, -1), font, 8.5), ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.92, 0.95)),
                        ("ALIGN", (4, 1), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=14 * mm,
                            bottomMargin=14 * mm, title=_("Treasury e-Payment Gateway daily report"), author="tgw inner console")
    story: list[Any] = [
        Paragraph(_("Treasury e-Payment Gateway daily report"), title),
        Paragraph(_("Period: %(start)s to %(until)s (Taipei time). Agency: %(agency)s. Printed: %(when)s by %(who)s",
                    start=day_from, until=day_until, agency=agency or _("all"),
                    when=local(datetime.now().astimezone()), who=printed_by), small),
        Paragraph(_("1. Totals per agency and document kind"), h2),
    ]
    data = [[_("Day"), _("Agency"), _("Document kind"), _("Ledger"), _("Envelopes (count)"), _("Documents"), _("Amount (NT$)")]]
    data += [[r["day"].isoformat(), r["agency"], r["kind_title"], _("live") if r["ledger"] == "live" else _("test"),
              f"{r['envelopes']:,}", f"{r['documents']:,}", f"{r['amount']:,}"] for r in rows]
    if len(data) == 1:
        data.append(["—", "", _("no data"), "", "", "", ""])
    story += [Table(data, repeatRows=1, style=style), Spacer(1, 4 * mm),
              Paragraph(_("2. Reconciliation of sent, arrived and loaded"), h2)]
    rdata = [[_("Day"), _("Sent"), _("Arrived"), _("Loaded (count)"), _("Sent − arrived"), _("Arrived − loaded")]]
    rdata += [[r["day"].isoformat(), "-" if r["sent"] is None else f"{r['sent']:,}", f"{r['arrived']:,}",
               f"{r['loaded']:,}", "-" if r["sent_minus_arrived"] is None else str(r["sent_minus_arrived"]),
               str(r["arrived_minus_loaded"])] for r in rec["days"]]
    rstyle = TableStyle([*style.getCommands()[:4], ("ALIGN", (1, 1), (-1, -1), "RIGHT")])
    story.append(Table(rdata, repeatRows=1, style=rstyle))
    diffs = [[m["day"].isoformat(), str(m["seq"]), m["tracking_id"] or "", m["what"]] for m in rec["missing"]]
    diffs += [[m["day"].isoformat(), m["sha256"][:16] + "…", m["tracking_id"] or "", m["what"]]
              for m in rec["not_loaded"] + rec["unannounced"]]
    if diffs:
        story += [Paragraph(_("Differences"), h2),
                  Table([[_("Day"), _("Seq / SHA-256"), _("Tracking id"), _("Explanation")], *diffs], repeatRows=1,
                        style=TableStyle(style.getCommands()[:4]), colWidths=[24 * mm, 40 * mm, 50 * mm, 68 * mm])]
    doc.build(story)
    return buf.getvalue()
