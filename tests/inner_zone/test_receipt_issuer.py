"""`tgw inner receipts run`: one signed receipt per fate (loaded, refused, held), published
into receipts.outbound, none twice across restarts, and the same bytes again after a crash
between signing and publishing; on SQLite and PostgreSQL; openssl verifies what it wrote."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from tgw_common.config import load_config
from tgw_common.pki.certs import load_certificate_file
from tgw_common.receipts import Receipt, read_receipt

from .ikit import RunnerProc, envelope, make_zone, q, run_once, wait_until

TRACKING = "20261207T101500{:06d}Z-A10001-a1b2c3"


def _receipts_section(zone_root, pki) -> dict:
    return {"certificate": str(pki / "treasury" / "receipt.pem"), "private_key": str(pki / "treasury" / "receipt.key"),
            "chain": [str(pki / "gca.pem")], "outbound": str(zone_root / "receipts"), "poll_seconds": 0.1}


@pytest.fixture
def rzone(tmp_path, demo_pki):
    root = tmp_path / "zone"
    return make_zone(root, demo_pki, receipts=_receipts_section(root, demo_pki))


def _issue(zone):
    from inner_zone.receipt_runner import ReceiptRunner

    runner = ReceiptRunner(load_config(zone.config))
    runner.run(until_idle=True)
    return runner


def _read_all(zone, pki) -> dict[str, Receipt]:
    cert = load_certificate_file(pki / "treasury" / "receipt.pem")
    return {p.name: read_receipt(p.read_bytes(), signer=cert, trust=None)
            for p in sorted((zone.root / "receipts").glob("*.p7s"))}


def _three_fates(zone, fkit) -> tuple[bytes, bytes]:
    good = envelope(fkit, number=1)
    bad = bytearray(envelope(fkit, number=2))
    bad[len(bad) // 2] ^= 0xFF
    zone.drop(TRACKING.format(1) + ".p7m", good)
    zone.drop(TRACKING.format(2) + ".p7m", bytes(bad))
    run_once(zone)
    return good, bytes(bad)


def test_each_fate_gets_one_receipt_that_openssl_verifies(rzone, fkit, demo_pki):
    good, bad = _three_fates(rzone, fkit)
    _issue(rzone)
    receipts = _read_all(rzone, demo_pki)
    by_tracking = {r.tracking_id: r for r in receipts.values()}
    assert len(receipts) == 2 and set(by_tracking) == {TRACKING.format(1), TRACKING.format(2)}
    loaded, refused = by_tracking[TRACKING.format(1)], by_tracking[TRACKING.format(2)]
    assert loaded.state == "loaded" and loaded.envelope_sha256 == hashlib.sha256(good).hexdigest()
    assert loaded.agency == "A10001" and loaded.documents == 2 and len(loaded.document_ids) == 2
    assert loaded.control_total == q(rzone, "SELECT total_amount FROM intake_envelopes")[0][0]
    assert refused.state == "refused" and refused.reason and refused.layer and refused.message
    assert refused.envelope_sha256 == hashlib.sha256(bad).hexdigest()
    for path in (rzone.root / "receipts").glob("*.p7s"):
        done = subprocess.run([shutil.which("openssl"), "cms", "-verify", "-inform", "DER", "-in", str(path),
                               "-CAfile", str(demo_pki / "root.pem"), "-purpose", "any"],
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
    # Restarted, the issuer finds nothing new to say.
    _issue(rzone)
    assert len(list((rzone.root / "receipts").glob("*.p7s"))) == 2
    assert q(rzone, "SELECT count(*) FROM intake_receipts")[0][0] == 2


def test_a_crash_between_signing_and_publishing_republishes_the_same_bytes(rzone, fkit, demo_pki):
    _three_fates(rzone, fkit)
    _issue(rzone)
    files = {p.name: p.read_bytes() for p in (rzone.root / "receipts").glob("*.p7s")}
    # What a kill -9 after the commit and before the file leaves: a signed row, no file.
    for name in files:
        (rzone.root / "receipts" / name).unlink()
    q(rzone, "UPDATE intake_receipts SET published_at = NULL")
    _issue(rzone)
    assert {p.name: p.read_bytes() for p in (rzone.root / "receipts").glob("*.p7s")} == files


def test_a_held_envelope_gets_a_held_receipt_then_its_final_one(tmp_path, pki, fkit):
    from tgw.demo.pki import issue_crls

    root = tmp_path / "zone"
    zone = make_zone(root, pki, receipts=_receipts_section(root, pki))
    issue_crls(pki, days=1, now=datetime.now(UTC) - timedelta(days=3))
    zone.drop(TRACKING.format(3) + ".p7m", envelope(fkit, number=3))
    run_once(zone)
    _issue(zone)
    states = [r.state for r in _read_all(zone, pki).values()]
    assert states == ["held"]
    issue_crls(pki)
    run_once(zone)
    run_once(zone)
    _issue(zone)
    assert sorted(r.state for r in _read_all(zone, pki).values()) == ["held", "loaded"]


def _loaded_count(zone) -> int:
    try:
        return q(zone, "SELECT count(*) FROM intake_envelopes")[0][0]
    except sqlite3.OperationalError:  # the runner has not created the tables yet
        return 0


def test_kill9_of_the_issuer_loses_and_doubles_nothing(rzone, fkit, demo_pki, tmp_path):
    from tests.inner_zone.ikit import TGW

    count = 12
    for n in range(count):
        rzone.drop(TRACKING.format(10 + n) + ".p7m", envelope(fkit, number=10 + n))
    runner = RunnerProc(rzone, tmp_path / "runner.log")
    pause = random.Random(7)
    try:
        # Issuers killed at random moments while the runner is still loading.
        for _ in range(6):
            proc = subprocess.Popen([TGW, "inner", "receipts", "run", "--config", str(rzone.config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(pause.uniform(0.3, 1.5))
            proc.kill()
            proc.wait(10)
        wait_until(lambda: _loaded_count(rzone) == count, 60, "loads")
    finally:
        runner.stop()
    _issue(rzone)
    receipts = _read_all(rzone, demo_pki)
    assert sorted(r.tracking_id for r in receipts.values()) == sorted(TRACKING.format(10 + n) for n in range(count))
    assert q(rzone, "SELECT count(*), count(DISTINCT event_id) FROM intake_receipts") == [(count, count)]


@pytest.mark.postgres
def test_receipts_on_postgresql(tmp_path, demo_pki, pg_url, fkit):
    root = tmp_path / "zone"
    zone = make_zone(root, demo_pki, db_url=pg_url, receipts=_receipts_section(root, demo_pki))
    zone.drop(TRACKING.format(20) + ".p7m", envelope(fkit, number=20))
    run_once(zone)
    _issue(zone)
    _issue(zone)
    assert [r.state for r in _read_all(zone, demo_pki).values()] == ["loaded"]


def test_the_issuer_needs_its_key(tmp_path, demo_pki):
    from .ikit import cli

    root = tmp_path / "zone"
    section = _receipts_section(root, demo_pki)
    del section["private_key"]
    zone = make_zone(root, demo_pki, receipts=section)
    code, _out = cli("inner", "receipts", "run", "--config", str(zone.config))
    assert code == 2


def test_a_refusal_is_mailed_once_to_the_agency_contact(tmp_path, demo_pki, fkit):
    from tests.monitoring.mkit import SmtpServer, body

    from .ikit import cli

    server = SmtpServer()
    try:
        root = tmp_path / "zone"
        zone = make_zone(root, demo_pki, receipts=_receipts_section(root, demo_pki), monitor={
            "smtp": {"host": "127.0.0.1", "port": server.port, "sender": "tgw@treasury.example.tw",
                     "recipients": ["ops@treasury.example.tw"], "timeout_seconds": 5}})
        assert cli("inner", "agency", "set", "A10001", "--contact", "payments@a10001.example.tw",
                   "--config", str(zone.config))[0] == 0
        bad = bytearray(envelope(fkit, number=30))
        bad[len(bad) // 2] ^= 0xFF
        zone.drop(TRACKING.format(30) + ".p7m", bytes(bad))
        zone.drop(TRACKING.format(31) + ".p7m", envelope(fkit, number=31))
        zone.drop("20261207T101500000032Z-A10002-a1b2c3.p7m", b"refused, and A10002 has no contact")
        run_once(zone)
        _issue(zone)
        _issue(zone)
        [mail] = server.sink.messages
        assert mail["To"] == "payments@a10001.example.tw" and TRACKING.format(30) in mail["Subject"]
        text = body(mail)
        assert text.index("信封未被國庫署受理") < text.index("was refused by the treasury")
        assert "原因代碼：" in text and "Reason code:" in text
        assert q(zone, "SELECT agency, mailed_to FROM intake_receipts WHERE state = 'refused' ORDER BY agency") == [
            ("A10001", "payments@a10001.example.tw"), ("A10002", "")]
    finally:
        server.stop()
