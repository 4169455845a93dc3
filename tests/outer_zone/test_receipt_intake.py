"""The outer end of the return link judges every receipt: stored once when genuine and about
one of its uploads, set aside with a named reason when forged, replayed or unknown."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from outer_zone.models import StoredReceipt, Upload
from outer_zone.receipt_intake import ReceiptIntake
from tgw_common.db import create_tables, make_engine, transaction
from tgw_common.pki.certs import load_certificate_file, load_crl, load_private_key_file
from tgw_common.pki.trust import TrustStore
from tgw_common.receipts import Receipt, issue_receipt, now_text
from tgw_common.tpe.signed import sign_new

ENVELOPE = b"an uploaded envelope"
TRACKING = "20261207T101500000001Z-A10001-a1b2c3"
OTHERS = "20261207T101500000002Z-A10002-d4e5f6"


@pytest.fixture
def intake(tmp_path, demo_pki):
    engine = make_engine(f"sqlite:///{tmp_path / 'outer.db'}")
    create_tables(engine)
    with transaction(engine) as s:
        for tracking, agency in ((TRACKING, "A10001"), (OTHERS, "A10002")):
            s.add(Upload(tracking_id=tracking, agency=agency, username="rel", via="api", client_ip="192.0.2.1",
                         received_at=datetime.now(UTC), size=len(ENVELOPE), sha256=hashlib.sha256(ENVELOPE).hexdigest(),
                         state="accepted"))
    crls = [load_crl((demo_pki / "crl" / n).read_bytes()) for n in ("gca.crl", "root.crl")]
    trust = TrustStore([load_certificate_file(demo_pki / "root.pem")], [load_certificate_file(demo_pki / "gca.pem")],
                       crls)
    return ReceiptIntake(engine, load_certificate_file(demo_pki / "treasury" / "receipt.pem"), trust,
                         tmp_path / "dropped")


def _receipt(**changes) -> Receipt:
    return replace(Receipt(tracking_id=TRACKING, envelope_sha256=hashlib.sha256(ENVELOPE).hexdigest(), agency="A10001",
                           state="refused", issued_at=now_text(), reason="BAD_SIGNATURE", layer="release",
                           message="a signature does not verify"), **changes)


def _signed(pki, receipt: Receipt) -> bytes:
    return issue_receipt(receipt, load_certificate_file(pki / "treasury" / "receipt.pem"),
                         load_private_key_file(pki / "treasury" / "receipt.key"),
                         [load_certificate_file(pki / "gca.pem")])


def _deliver(tmp_path, name: str, data: bytes):
    folder = tmp_path / "inbound"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def _stored(intake) -> list[StoredReceipt]:
    with transaction(intake.engine) as s:
        return list(s.scalars(select(StoredReceipt)))


def test_a_genuine_receipt_is_stored_once_however_often_it_arrives(intake, demo_pki, tmp_path):
    der = _signed(demo_pki, _receipt())
    assert intake.take_safely(_deliver(tmp_path, "r.1.p7s", der)) == "stored"
    assert intake.take_safely(_deliver(tmp_path, "r.1.p7s", der)) == "duplicate"
    rows = _stored(intake)
    assert len(rows) == 1 and rows[0].der == der and rows[0].state == "refused"
    assert rows[0].document["reason"] == "BAD_SIGNATURE"
    assert not list((tmp_path / "inbound").iterdir()) and intake.counts == {"stored": 1, "duplicate": 1}


def test_forged_replayed_and_unknown_receipts_are_set_aside_by_name(intake, demo_pki, tmp_path):
    genuine = _signed(demo_pki, _receipt())
    changed = bytearray(genuine)
    changed[genuine.index(b'"A10001"') + 2] ^= 0x01
    releaser = (load_certificate_file(demo_pki / "agencies" / "A10001" / "releaser.pem"),
                load_private_key_file(demo_pki / "agencies" / "A10001" / "releaser.key"))
    cases = {
        "bad_signature": bytes(changed),
        "wrong_signer": sign_new(_receipt().to_json(), *releaser),
        # A genuine receipt about A10002's upload, claiming to be A10001's (a replay elsewhere).
        "wrong_agency": _signed(demo_pki, _receipt(tracking_id=OTHERS)),
        "wrong_envelope": _signed(demo_pki, _receipt(envelope_sha256="0" * 64)),
        "unknown_envelope": _signed(demo_pki, _receipt(tracking_id="20261207T101500000009Z-A10001-ffffff")),
        "bad_document": sign_new(b'{"format":"TPR/1"}', load_certificate_file(demo_pki / "treasury" / "receipt.pem"),
                                 load_private_key_file(demo_pki / "treasury" / "receipt.key")),
    }
    for why, der in cases.items():
        assert intake.take_safely(_deliver(tmp_path, f"{why}.p7s", der)) == why
    assert _stored(intake) == []
    dropped = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "dropped").iterdir())
    assert dropped == sorted(f"{why}-{why}.p7s" for why in cases)
    assert intake.counts == dict.fromkeys(cases, 1)


def test_an_oversized_file_is_set_aside_unread(intake, tmp_path):
    path = _deliver(tmp_path, "huge.p7s", b"\0" * (4 * 1024 * 1024 + 1))
    assert intake.take_safely(path) == "too_large"
    assert not path.exists() and len(list((tmp_path / "dropped").iterdir())) == 1


def test_the_outer_zone_refuses_a_receipt_key(tmp_path, demo_pki):
    from outer_zone.receipt_runner import OuterReceiptRunner
    from tests.outer_zone.conftest import outer_config
    from tgw_common.config import ConfigError, load_config

    path = outer_config(tmp_path, demo_pki, tmp_path / "outer.db")
    text = path.read_text() + (f"receipts:\n  certificate: {demo_pki / 'treasury' / 'receipt.pem'}\n"
                               f"  private_key: {demo_pki / 'treasury' / 'receipt.key'}\n")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"receipts\.private_key"):
        OuterReceiptRunner(load_config(path))
