"""The return link end to end, as real processes over real UDP with loss: the inner zone's
receipts cross inner to outer through `tgw transfer send`/`receive` and a lossy relay, and
the outer end stores each fate once, verified; a forged receipt that rides the same link is
set aside, and the outer host holds no receipt key."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime

import yaml

from outer_zone.models import Upload
from tests.inner_zone.ikit import envelope, make_zone, run_once
from tests.kit import Kit, wait_until
from tests.transfer.conftest import Proc, free_udp_port
from tgw_common.db import create_tables, make_engine, transaction
from tgw_common.tpe.signed import sign_new

TRACKING = "20261207T1015000000{:02d}Z-A10001-a1b2c3"


def _rows(db, sql):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def _outer_uploads(db, envelopes: dict[str, bytes]) -> None:
    engine = make_engine(f"sqlite:///{db}")
    create_tables(engine)
    with transaction(engine) as s:
        for tracking, data in envelopes.items():
            s.add(Upload(tracking_id=tracking, agency="A10001", username="a1-rel", via="api", client_ip="192.0.2.1",
                         received_at=datetime.now(UTC), size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         state="accepted"))
    engine.dispose()


def _configs(tmp_path, pki, zone, relay_port, recv_port):
    outer_db = tmp_path / "outer" / "outer.db"
    receipts_in = tmp_path / "outer" / "receipts"
    send = {"node": {"zone": "inner", "host": "inner-test"}, "database": {"url": zone.db_url},
            "transfer_send": {"outbound": str(zone.root / "receipts"), "sent_dir": str(zone.root / "receipts-sent"),
                              "state_dir": str(zone.root / "return-send"), "target": f"127.0.0.1:{relay_port}",
                              "repeat": 2, "repeat_spacing_seconds": 1.0, "heartbeat_seconds": 1.0,
                              "rescan_seconds": 5}}
    recv = {"node": {"zone": "outer", "host": "outer-test"}, "database": {"url": f"sqlite:///{outer_db}"},
            "transfer_receive": {"listen": f"127.0.0.1:{recv_port}", "inbound": str(receipts_in),
                                 "staging_dir": str(tmp_path / "outer" / "staging"),
                                 "state_dir": str(tmp_path / "outer" / "return-recv"), "heartbeat_seconds": 1.0}}
    intake = {"node": {"zone": "outer", "host": "outer-test"}, "database": {"url": f"sqlite:///{outer_db}"},
              "trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                        "crl_dir": str(pki / "crl")},
              "receipts": {"certificate": str(pki / "treasury" / "receipt.pem"), "inbound": str(receipts_in),
                           "dropped_dir": str(tmp_path / "outer" / "receipts-dropped"), "poll_seconds": 0.2}}
    paths = {}
    for name, body in (("send", send), ("recv", recv), ("intake", intake)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(body))
    return paths, outer_db


def test_every_fate_crosses_the_lossy_return_link_once_and_forgeries_are_dropped(tmp_path, demo_pki):
    kit = Kit(demo_pki)
    receipts_section = {"certificate": str(demo_pki / "treasury" / "receipt.pem"),
                        "private_key": str(demo_pki / "treasury" / "receipt.key"),
                        "chain": [str(demo_pki / "gca.pem")], "outbound": str(tmp_path / "zone" / "receipts"),
                        "poll_seconds": 0.2}
    zone = make_zone(tmp_path / "zone", demo_pki, receipts=receipts_section)
    envelopes = {TRACKING.format(n): envelope(kit, number=100 + n) for n in range(5)}
    envelopes[TRACKING.format(9)] = b"not an envelope at all"
    for tracking, data in envelopes.items():
        zone.drop(f"{tracking}.p7m", data)
    run_once(zone)
    relay_port, recv_port = free_udp_port(), free_udp_port()
    paths, outer_db = _configs(tmp_path, demo_pki, zone, relay_port, recv_port)
    _outer_uploads(outer_db, envelopes)
    # A forged receipt (another key) published into the same outbound folder rides the link too.
    releaser = kit.pair("A10001", "releaser")
    forged = sign_new(b'{"format":"TPR/1"}', *releaser)
    (zone.root / "receipts").mkdir(parents=True, exist_ok=True)
    (zone.root / "receipts" / f"{TRACKING.format(0)}.forged.p7s").write_bytes(forged)

    procs = [Proc(["transfer", "relay", "--listen", f"127.0.0.1:{relay_port}", "--to", f"127.0.0.1:{recv_port}",
                   "--loss", "0.05", "--seed", "3"], tmp_path / "relay.log"),
             Proc(["transfer", "receive", "--config", str(paths["recv"])], tmp_path / "recv.log"),
             Proc(["outer", "receipts", "run", "--config", str(paths["intake"])], tmp_path / "intake.log"),
             Proc(["inner", "receipts", "run", "--config", str(zone.config)], tmp_path / "issuer.log"),
             Proc(["transfer", "send", "--config", str(paths["send"])], tmp_path / "send.log")]
    try:
        wait_until(lambda: len(_rows(outer_db, "SELECT tracking_id FROM outer_receipts")) >= len(envelopes)
                   and list((tmp_path / "outer" / "receipts-dropped").glob("*")), 120, "receipts at the outer end")
    finally:
        for p in reversed(procs):
            p.stop()
    stored = _rows(outer_db, "SELECT tracking_id, state, der FROM outer_receipts ORDER BY tracking_id")
    assert [(t, s) for t, s, _ in stored] == sorted(
        [(TRACKING.format(n), "loaded") for n in range(5)] + [(TRACKING.format(9), "refused")])
    for _t, _s, der in stored:
        path = tmp_path / "check.p7s"
        path.write_bytes(der)
        done = subprocess.run([shutil.which("openssl"), "cms", "-verify", "-inform", "DER", "-in", str(path),
                               "-CAfile", str(demo_pki / "root.pem"), "-purpose", "any"], capture_output=True,
                              check=False)
        assert done.returncode == 0, done.stderr.decode()
    dropped = [p.name for p in (tmp_path / "outer" / "receipts-dropped").iterdir()]
    assert len(dropped) == 1 and "-wrong_signer-" in dropped[0]
    # The outer host's side holds the receipt certificate's path in its config, never a key.
    assert not list((tmp_path / "outer").rglob("*.key"))
    assert "private_key" not in paths["intake"].read_text()
