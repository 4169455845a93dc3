"""The `tgw transfer` commands' contracts: exit codes, listings, bad input named.

The commands run in-process through click's test runner (the same `tgw` entry point, without
paying the interpreter start-up for each call); the daemon test runs real processes.
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from transfer.resend import parse_gaps_listing, parse_seq_ranges

from .conftest import Link, free_udp_port


def tgw(*args: str):
    from tgw.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cfg(tmp_path):
    lk = Link(tmp_path, free_udp_port(), free_udp_port())
    lk.write_configs()
    yield lk
    lk.stop_all()


def test_seq_ranges():
    assert parse_seq_ranges("5") == [5]
    assert parse_seq_ranges("3-5, 9,4") == [3, 4, 5, 9]
    for bad in ("5-3", "a", "1-2-3", "-4"):
        with pytest.raises(ValueError):
            parse_seq_ranges(bad)


def test_gap_listing_text_and_json_are_understood():
    text = ("# tgw transfer gaps: 2 個缺漏檔案 / open gap(s)\n# seq\ttracking_id\n"
            "17\tABC\t100\tff\t2026\tledger\n18-19\t-\t-\t-\t2026\tsequence\n\n")
    assert parse_gaps_listing(text) == [17, 18, 19]
    assert parse_gaps_listing(json.dumps({"open": 2, "gaps": [{"seq": 4}, {"seq": 2}]})) == [2, 4]
    with pytest.raises(ValueError, match="line 1"):
        parse_gaps_listing("hello world\n")


def test_gaps_exit_0_when_none_and_json_shape(cfg):
    r = tgw("transfer", "gaps", "--config", str(cfg.recv_cfg))
    assert r.exit_code == 0, r.stderr
    assert "0 個缺漏檔案" in r.stdout
    r = tgw("transfer", "gaps", "--config", str(cfg.recv_cfg), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["gaps"] == []


def test_gaps_exit_1_with_open_gaps_and_listing_feeds_resend(cfg):
    from tgw_common.db import make_engine
    from tgw_common.events import Provenance
    from transfer.keeper import Keeper

    engine = make_engine(f"sqlite:///{cfg.inner_db}")
    keeper = Keeper(engine, Provenance(engine, zone="inner", host="t"), inbound=cfg.inbound, staging=cfg.root)
    keeper.open_gap(7, "ledger", "ab" * 8, "TRK7.p7m", 123, "c" * 64)
    keeper.open_gap(9, "sequence", "ab" * 8, None, None, None)
    r = tgw("transfer", "gaps", "--config", str(cfg.recv_cfg))
    assert r.exit_code == 1
    assert "7\tTRK7\t123\t" + "c" * 64 in r.stdout
    assert parse_gaps_listing(r.stdout) == [7, 9]
    events = Provenance(engine, zone="inner", host="t").recent(5, event="gap")
    assert {(e["detail"]["seq"], e["tracking_id"]) for e in events} == {(7, "TRK7"), (9, None)}


def test_resend_queues_known_files_and_names_unknown_ones(cfg):
    from tgw_common.db import make_engine
    from transfer.sender_store import SenderStore

    sent = cfg.root / "outer" / "sent"
    sent.mkdir(parents=True)
    store = SenderStore(make_engine(f"sqlite:///{cfg.outer_db}"), sent)
    for seq in (1, 2, 3):
        (sent / f"{seq:012d}-TRK{seq}.p7m").write_bytes(b"x")
        store.add(seq, f"TRK{seq}.p7m", sent / f"{seq:012d}-TRK{seq}.p7m")
    r = tgw("transfer", "resend", "--config", str(cfg.send_cfg), "--seq", "1-2", "--id", "TRK3", "--no-wait")
    assert r.exit_code == 0, r.stderr
    assert "queued for resend: 3 file(s) (seq 1-3)" in r.stdout
    # waiting for a sender that is not running does not hang
    r = tgw("transfer", "resend", "--config", str(cfg.send_cfg), "--seq", "2,40", "--id", "NOPE")
    assert r.exit_code == 1
    assert "unknown: 40" in r.stderr and "unknown: NOPE" in r.stderr and "not running" in r.stderr
    assert cfg.outer_rows("select seq, resend_pending from transfer_sent order by seq") == [(1, 1), (2, 2), (3, 1)]
    r = tgw("transfer", "ledger", "--config", str(cfg.send_cfg), "--json")
    assert [row["seq"] for row in json.loads(r.stdout)] == [1, 2, 3]


@pytest.mark.parametrize(("args", "needle"), [
    (["--seq", "9-1"], "runs backwards"),
    (["--seq", "x"], "not a sequence number"),
    ([], "give --seq, --id or --gaps"),
])
def test_resend_usage_errors_exit_2(cfg, args, needle):
    r = tgw("transfer", "resend", "--config", str(cfg.send_cfg), *args)
    assert r.exit_code == 2 and needle in r.stderr


def test_bad_config_is_named(cfg):
    data = yaml.safe_load(cfg.send_cfg.read_text())
    data["transfer_send"].update(fec_k=20, fec_m=10)
    cfg.send_cfg.write_text(yaml.safe_dump(data))
    r = tgw("transfer", "send", "--config", str(cfg.send_cfg))
    assert r.exit_code == 2 and "fec_m" in r.stderr
    data["transfer_send"].update(fec_k=16, fec_m=20, target="no-port-here")
    cfg.send_cfg.write_text(yaml.safe_dump(data))
    r = tgw("transfer", "send", "--config", str(cfg.send_cfg))
    assert r.exit_code == 2 and "transfer_send.target" in r.stderr
    r = tgw("transfer", "gaps", "--config", str(cfg.send_cfg))
    assert r.exit_code == 2 and "transfer_receive" in r.stderr


def test_stats_before_any_heartbeat_and_with_kernel_counters(cfg):
    r = tgw("transfer", "stats", "--config", str(cfg.recv_cfg), "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["receiver"] is None and "udp_rcvbuf_errors" in out["kernel_now"]
    r = tgw("transfer", "stats", "--config", str(cfg.send_cfg))
    assert r.exit_code == 0 and "[sender]" in r.stdout


def test_second_sender_on_the_same_state_is_refused(cfg):
    first = cfg.sender()
    import time

    from .conftest import wait_until

    wait_until(lambda: b"sender ready" in (cfg.root / "sender.log").read_bytes(), 20, "first sender")
    r = cfg.tgw("transfer", "send", "--config", str(cfg.send_cfg), timeout=30)
    assert r.returncode == 3 and "already running" in r.stderr
    time.sleep(0.1)
    assert first.alive()
