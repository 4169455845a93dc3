"""`tgw inner process` and `tgw inner status`: the operator's one-envelope path and overview."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tgw.demo.documents import bad_documents

from .ikit import cli, envelope, process_json

A = "A10001"


def count(zone, table: str) -> int:
    with sqlite3.connect(zone.db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_accepted_envelope_is_loaded_and_a_copy_archived(zone, fkit, tmp_path):
    src = tmp_path / "T0100.p7m"
    src.write_bytes(envelope(fkit, A, number=100, count=3))
    code, out = process_json(zone, src)
    assert code == 0
    assert {"accepted", "reason", "layer", "loaded_documents"} <= set(out)
    assert (out["accepted"], out["reason"], out["layer"], out["loaded_documents"]) == (True, None, None, 3)
    assert src.exists(), "the operator's file stays where it was"
    assert [p.read_bytes() for p in zone.archived()] == [src.read_bytes()]
    assert count(zone, "intake_documents") == 3
    # The same file again: an identical copy, nothing loaded twice.
    code, out = process_json(zone, src)
    assert code == 0 and out["status"] == "duplicate" and out["loaded_documents"] == 0
    assert count(zone, "intake_envelopes") == 1


def test_refused_envelope_exits_1_and_is_quarantined(zone, fkit, tmp_path):
    docs = [(f"documents/{d.path}", d.kind, d.data) for d in bad_documents("BAD_BANK_CODE", A, seed=2)]
    src = tmp_path / "T0101.p7m"
    src.write_bytes(fkit.envelope(A, payload=fkit.payload(A, docs=docs)))
    code, out = process_json(zone, src)
    assert code == 1
    assert (out["accepted"], out["reason"], out["layer"], out["loaded_documents"]) == (False, "BAD_BANK_CODE",
                                                                                      "documents", 0)
    assert out["quarantine_id"] == "T0101" and src.exists()
    assert (zone.quarantine / "T0101.p7m").read_bytes() == src.read_bytes()
    assert count(zone, "intake_envelopes") == 0


def test_dry_run_judges_everything_and_changes_nothing(zone, fkit, tmp_path):
    good = tmp_path / "T0102.p7m"
    good.write_bytes(envelope(fkit, A, number=102, envelope_id="A10001-DRY"))
    replay = tmp_path / "T0103.p7m"
    replay.write_bytes(envelope(fkit, A, number=103, envelope_id="A10001-DRY"))
    code, out = process_json(zone, good, "--dry-run")
    assert code == 0 and out["status"] == "checked" and out["dry_run"] is True
    assert count(zone, "intake_envelopes") == 0 and count(zone, "provenance_events") == 0
    assert process_json(zone, good)[0] == 0
    # The database checks run in a dry run too (then roll back): the replay is found.
    code, out = process_json(zone, replay, "--dry-run")
    assert code == 1 and out["reason"] == "REPLAY"
    assert not zone.quarantine_entries() and count(zone, "intake_envelopes") == 1


def test_text_output_and_usage_errors(zone, fkit, tmp_path):
    src = tmp_path / "T0104.p7m"
    src.write_bytes(envelope(fkit, A, number=104))
    code, out = cli("inner", "process", str(src), "--config", str(zone.config))
    assert code == 0 and out.startswith("accepted: loaded envelope A10001-E00000104")
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("node: {zone: inner}\ninner: {max_tries: 0}\n")
    code, out = cli("inner", "process", str(src), "--config", str(bad_config))
    assert code == 2


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_status_shows_depths_counts_and_events(zone, fkit, tmp_path, fmt):
    src = tmp_path / "T0105.p7m"
    src.write_bytes(envelope(fkit, A, number=105))
    process_json(zone, src)
    zone.drop("T0106.p7m", b"waiting")
    args = ["inner", "status", "--config", str(zone.config)] + (["--json"] if fmt == "json" else [])
    code, out = cli(*args)
    assert code == 0
    if fmt == "json":
        info = json.loads(out)
        assert info["inbound"]["files"] == 1 and info["quarantine"] == 0 and info["held"] == 0
        assert info["loaded"]["live"]["envelopes"] == 1
        assert [e["event"] for e in info["events"]][:2] == ["archived", "loaded"]
    else:
        assert "inbound" in out and "1 files" in out and "loaded" in out
