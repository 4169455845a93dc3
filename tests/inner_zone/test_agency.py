"""Agency modes (live / parallel-test) and per-agency e-payment limits, through the real pipeline."""

from __future__ import annotations

import json
import sqlite3

from .ikit import cli, envelope, make_zone, numbered_documents, process_json

A, B = "A10001", "A10002"


def rows(zone, sql: str) -> list[tuple]:
    with sqlite3.connect(zone.db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


def agency(zone, *args: str) -> tuple[int, str]:
    return cli("inner", "agency", *args, "--config", str(zone.config))


def test_set_and_list(zone):
    assert agency(zone, "set", A, "--mode", "parallel-test", "--contact", "acct@example.gov.tw")[0] == 0
    assert agency(zone, "set", B, "--epayment-limit", "5000")[0] == 0
    code, out = agency(zone, "list", "--json")
    assert code == 0
    listed = {a["code"]: a for a in json.loads(out)["agencies"]}
    assert listed[A]["mode"] == "parallel-test" and listed[A]["contact"] == "acct@example.gov.tw"
    assert listed[A]["epayment_limit"] is None
    assert listed[B]["mode"] == "live" and listed[B]["epayment_limit"] == 5000
    # Only the options given change.
    assert agency(zone, "set", A, "--epayment-limit", "7000")[0] == 0
    assert agency(zone, "set", B, "--default-limit")[0] == 0
    listed = {a["code"]: a for a in json.loads(agency(zone, "list", "--json")[1])["agencies"]}
    assert listed[A]["mode"] == "parallel-test" and listed[A]["epayment_limit"] == 7000
    assert listed[B]["epayment_limit"] is None
    code, out = agency(zone, "list")
    assert code == 0 and A in out and "parallel-test" in out


def test_bad_settings_are_usage_errors(zone):
    assert agency(zone, "set", "a1", "--mode", "live")[0] == 2  # not an agency code
    assert agency(zone, "set", A, "--mode", "paper")[0] == 2
    assert agency(zone, "set", A, "--epayment-limit", "0")[0] == 2
    assert agency(zone, "set", A, "--contact", "nobody")[0] == 2
    assert agency(zone, "set", A)[0] == 2  # nothing to set
    assert json.loads(agency(zone, "list", "--json")[1])["agencies"] == []


def test_parallel_test_envelopes_are_checked_recorded_and_never_released(zone, fkit, tmp_path):
    agency(zone, "set", A, "--mode", "parallel-test")
    vouchers = numbered_documents(A, 2, number=400, kinds=["payment_voucher"])
    test_env = tmp_path / "T0400.p7m"
    test_env.write_bytes(envelope(fkit, A, number=400, docs=vouchers))
    code, out = process_json(zone, test_env)
    assert code == 0 and out["mode"] == "parallel-test" and out["released_for_payment"] is False
    assert rows(zone, "SELECT is_test, released_for_payment, mode FROM intake_envelopes") == [(1, 0, "parallel-test")]
    assert {r[0] for r in rows(zone, "SELECT ledger FROM intake_documents")} == {"test"}
    # Every check still applies to test envelopes: a repeated voucher among test envelopes is refused.
    again = tmp_path / "T0401.p7m"
    again.write_bytes(envelope(fkit, A, number=401, docs=vouchers[:1]))
    code, out = process_json(zone, again)
    assert code == 1 and out["reason"] == "DUPLICATE_VOUCHER"
    # Live at last: the rehearsed vouchers are sent for real and must not count as duplicates.
    agency(zone, "set", A, "--mode", "live")
    live_env = tmp_path / "T0402.p7m"
    live_env.write_bytes(envelope(fkit, A, number=402, docs=vouchers))
    code, out = process_json(zone, live_env)
    assert code == 0 and out["released_for_payment"] is True
    assert rows(zone, "SELECT envelope_id, released_for_payment FROM intake_envelopes ORDER BY id") == [
        ("A10001-E00000400", 0), ("A10001-E00000402", 1)]


def test_default_mode_from_config_applies_to_unlisted_agencies(tmp_path, demo_pki, fkit):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"default_agency_mode": "parallel-test"})
    src = tmp_path / "T0410.p7m"
    src.write_bytes(envelope(fkit, B, number=410))
    code, out = process_json(zone, src)
    assert code == 0 and out["mode"] == "parallel-test" and out["released_for_payment"] is False


def _voucher_over(number: int, agency_code: str, amount: int) -> list[tuple[str, str, bytes]]:
    """One payment voucher with a single payee of `amount`."""
    from tgw.demo.documents import encode

    path, kind, data = numbered_documents(agency_code, 1, number=number, kinds=["payment_voucher"])[0]
    doc = json.loads(data)
    doc["payees"] = doc["payees"][:1]
    doc["payees"][0]["amount"] = amount
    doc["total_amount"] = amount
    return [(path, kind, encode(doc))]


def test_agency_limit_refuses_through_the_pipeline(zone, fkit, tmp_path):
    agency(zone, "set", B, "--epayment-limit", "50000")
    over = tmp_path / "T0420.p7m"
    over.write_bytes(envelope(fkit, B, number=420, docs=_voucher_over(420, B, 60_000)))
    code, out = process_json(zone, over)
    assert code == 1
    assert (out["reason"], out["layer"]) == ("OVER_EPAYMENT_LIMIT", "documents")
    assert "50000" in out["message"]
    # The same amount from an agency on the default limit (documents.epayment_limit) loads.
    fine = tmp_path / "T0421.p7m"
    fine.write_bytes(envelope(fkit, A, number=421, docs=_voucher_over(421, A, 60_000)))
    assert process_json(zone, fine)[0] == 0
    # And the default limit is enforced as well.
    zone2 = make_zone(tmp_path / "zone2", fkit.pki, documents={"epayment_limit": 10_000})
    code, out = process_json(zone2, fine)
    assert code == 1 and out["reason"] == "OVER_EPAYMENT_LIMIT"
