"""`tgw inner payments import`: results matched to loaded documents whole or not at all,
every refused row named by its line, a second import changing nothing, and a `payments`
receipt per envelope for the agency."""

from __future__ import annotations

import json

import pytest

from tgw_common.config import load_config
from tgw_common.pki.certs import load_certificate_file
from tgw_common.receipts import read_receipt

from .ikit import cli, envelope, make_zone, q, run_once

HEADER = "document_id,result,date,bank_reference,failure_reason\n"
TRACKING = "20261207T1015000000{:02d}Z-A10001-a1b2c3"


@pytest.fixture
def loaded(tmp_path, demo_pki, fkit):
    root = tmp_path / "zone"
    zone = make_zone(root, demo_pki, receipts={
        "certificate": str(demo_pki / "treasury" / "receipt.pem"),
        "private_key": str(demo_pki / "treasury" / "receipt.key"), "chain": [str(demo_pki / "gca.pem")],
        "outbound": str(root / "receipts")})
    for n in (1, 2):
        zone.drop(f"{TRACKING.format(n)}.p7m", envelope(fkit, number=n, count=2))
    run_once(zone)
    numbers = [r[0] for r in q(zone, "SELECT document_no FROM intake_documents ORDER BY id")]
    assert len(numbers) == 4
    return zone, numbers


def _import(zone, tmp_path, text: str) -> tuple[int, dict]:
    path = tmp_path / "results.csv"
    path.write_text(text, encoding="utf-8")
    code, out = cli("inner", "payments", "import", str(path), "--config", str(zone.config), "--json")
    return code, json.loads(out)


def test_results_are_imported_once_and_reported_in_signed_receipts(loaded, tmp_path, demo_pki):
    zone, numbers = loaded
    text = (HEADER + f"{numbers[0]},paid,2026-12-08,BR1,\n{numbers[1]},failed,2026-12-08,,帳號已結清 closed\n"
            f"{numbers[2]},paid,2026-12-09,BR3,\n")
    code, report = _import(zone, tmp_path, "\ufeff" + text)
    assert code == 0 and report["imported"] == 3 and report["envelopes"] == 2 and report["problems"] == []
    code, again = _import(zone, tmp_path, text)
    assert code == 0 and again["imported"] == 0 and again["already_imported"] == 3
    assert q(zone, "SELECT count(*) FROM intake_payment_results") == [(3,)]
    assert q(zone, "SELECT count(*) FROM provenance_events WHERE event = 'payments'") == [(2,)]

    from inner_zone.receipt_runner import ReceiptRunner

    ReceiptRunner(load_config(zone.config)).run(until_idle=True)
    cert = load_certificate_file(demo_pki / "treasury" / "receipt.pem")
    receipts = [read_receipt(p.read_bytes(), signer=cert, trust=None) for p in (zone.root / "receipts").glob("*.p7s")]
    payments = {p.document_id: p for r in receipts if r.state == "payments" for p in r.payments}
    assert sorted(payments) == sorted(numbers[:3])
    assert payments[numbers[1]].result == "failed" and payments[numbers[1]].failure_reason == "帳號已結清 closed"
    assert payments[numbers[0]].bank_reference == "BR1" and payments[numbers[2]].date == "2026-12-09"
    assert sorted(r.state for r in receipts) == ["loaded", "loaded", "payments", "payments"]


def test_any_bad_row_refuses_the_whole_file_naming_each_line(loaded, tmp_path):
    zone, numbers = loaded
    _import(zone, tmp_path, HEADER + f"{numbers[3]},paid,2026-12-08,BR4,\n")
    text = (HEADER
            + f"{numbers[0]},paid,2026-12-08,BR1,\n"  # fine on its own
            + "T99999999999,paid,2026-12-08,,\n"  # line 3: unknown
            + f"{numbers[1]},lost,2026-02-30,,\n"  # line 4: result and date
            + f"{numbers[2]},failed,2026-12-08,,\n"  # line 5: no reason
            + f"{numbers[3]},failed,2026-12-08,,other\n"  # line 6: contradicts the earlier import
            + f"{numbers[0]},paid,2026-12-08,BR1,\n"  # line 7: twice in the file
            + "a,b\n")  # line 8: fields
    code, report = _import(zone, tmp_path, text)
    assert code == 1 and report["imported"] == 0
    assert [p.split(":")[0] for p in report["problems"]] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "already has the result paid" in report["problems"][3]
    assert q(zone, "SELECT count(*) FROM intake_payment_results") == [(1,)]


def test_row_problems_are_reported_before_matching(loaded, tmp_path):
    zone, numbers = loaded
    code, report = _import(zone, tmp_path, HEADER + f"{numbers[1]},lost,2026-02-30,,\n{numbers[2]},failed,2026-12-08,,\n")
    assert code == 1
    assert report["problems"] == ["line 2: result 'lost' is not paid or failed; date '2026-02-30' is not YYYY-MM-DD",
                                  "line 3: a failed payment needs its failure_reason"]
    code, report = _import(zone, tmp_path, HEADER + "T99999999999,paid,2026-12-08,,\n"
                           + f"{numbers[0]},paid,2026-12-08,,\n{numbers[0]},paid,2026-12-08,,\n")
    assert code == 1 and report["problems"] == ["line 2: no loaded document T99999999999",
                                                f"line 4: document {numbers[0]} is also on line 3"]
    code, report = _import(zone, tmp_path, HEADER + "T99999999999,paid,2026-12-08,,\n")
    assert code == 1 and report["problems"] == ["line 2: no loaded document T99999999999"]
    assert q(zone, "SELECT count(*) FROM intake_payment_results") == [(0,)]


def test_a_wrong_header_or_encoding_is_named(loaded, tmp_path):
    zone, _numbers = loaded
    code, report = _import(zone, tmp_path, "document,result\nx,paid\n")
    assert code == 1 and report["problems"][0].startswith("line 1: the header must be document_id,result,")
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + b"\xff\xfe,paid,2026-12-08,,\n")
    code, out = cli("inner", "payments", "import", str(path), "--config", str(zone.config), "--json")
    assert code == 1 and "not UTF-8" in json.loads(out)["problems"][0]


def test_the_text_report_says_what_happened(loaded, tmp_path):
    zone, numbers = loaded
    path = tmp_path / "r.csv"
    path.write_text(HEADER + f"{numbers[0]},paid,2026-12-08,BR1,\n", encoding="utf-8")
    code, out = cli("inner", "payments", "import", str(path), "--config", str(zone.config))
    assert code == 0 and out.startswith("imported 1 results for 1 envelopes (0 already imported)")
