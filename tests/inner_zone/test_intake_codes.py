"""The intake layer's reason codes, each triggered through the real pipeline.

REPLAY and DUPLICATE_VOUCHER go through `tgw inner process` (the operator's path) and the
runner; POISON needs a runner that dies on a file: a real `tgw inner run` process is
killed with SIGKILL while it works on the file, `inner.max_tries` times, and the next
start quarantines it. tests/foundation/test_reason_codes.py imports TRIGGERED to check
that every documented code has a test.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tgw_common.reasons import REASONS

from .ikit import RunnerProc, Zone, bulk_voucher, envelope, make_zone, numbered_documents, process_json, wait_until

A = "A10001"
TRIGGERED = {"REPLAY", "POISON", "DUPLICATE_VOUCHER"}


def _loaded_ids(zone: Zone) -> list[str]:
    db = zone.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT envelope_id FROM intake_envelopes ORDER BY id")]


def replay(zone: Zone, kit, tmp_path) -> dict:
    first = tmp_path / "first.p7m"
    first.write_bytes(envelope(kit, A, number=101, envelope_id="A10001-REPLAYED"))
    again = tmp_path / "again.p7m"  # other documents, same envelope id
    again.write_bytes(envelope(kit, A, number=102, envelope_id="A10001-REPLAYED"))
    code, out = process_json(zone, first)
    assert code == 0 and out["status"] == "loaded", out
    code, out = process_json(zone, again)
    assert code == 1
    assert _loaded_ids(zone) == ["A10001-REPLAYED"]
    return out


def duplicate_voucher(zone: Zone, kit, tmp_path) -> dict:
    vouchers = numbered_documents(A, 2, number=201, kinds=["payment_voucher"])
    first = tmp_path / "first.p7m"
    first.write_bytes(envelope(kit, A, number=201, docs=vouchers))
    # A later envelope carries one new voucher and one loaded before.
    later = [*numbered_documents(A, 1, number=202, kinds=["payment_voucher"]), vouchers[1]]
    second = tmp_path / "second.p7m"
    second.write_bytes(envelope(kit, A, number=202, docs=later))
    assert process_json(zone, first)[0] == 0
    code, out = process_json(zone, second)
    assert code == 1
    assert json.loads(vouchers[1][2])["voucher_no"] in out["message"]
    assert _loaded_ids(zone) == ["A10001-E00000201"]
    return out


def poison(zone: Zone, kit, tmp_path) -> dict:
    # Big enough that verifying its payees takes a while: every kill lands mid-work.
    data = envelope(kit, A, number=301, docs=[bulk_voucher(A, 301, 6000)])
    zone.drop("T-POISON.p7m", data)
    claimed = zone.inbound / ".claimed" / "T-POISON.p7m"
    tries = zone.inbound / ".tries" / "T-POISON.p7m"

    def claimed_by_this_runner(n: int) -> bool:
        # The claim counts the try, then renames: both must show this runner's claim.
        return claimed.exists() and tries.exists() and tries.read_text() == str(n)

    for round_ in range(2):  # inner.max_tries: 2 in this zone
        proc = RunnerProc(zone, tmp_path / f"runner{round_}.log")
        wait_until(lambda n=round_ + 1: claimed_by_this_runner(n), 60, "the runner to claim the file")
        proc.kill9()
        assert claimed.exists(), "the kill came after the runner had finished the file"
    proc = RunnerProc(zone, tmp_path / "runner-last.log")
    try:
        wait_until(lambda: zone.quarantine_entries(), 60, "the poison file in quarantine")
    finally:
        proc.stop()
    assert not claimed.exists() and _loaded_ids(zone) == []
    entry = zone.quarantine_entries()[0]
    assert entry["tries"] == 2 and (zone.quarantine / entry["file"]).exists()
    return entry


SCENARIOS = {"REPLAY": replay, "DUPLICATE_VOUCHER": duplicate_voucher, "POISON": poison}
assert set(SCENARIOS) == TRIGGERED


@pytest.mark.parametrize("code", sorted(TRIGGERED))
def test_intake_code_triggered_through_the_pipeline(code, tmp_path, demo_pki, fkit):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 2})
    result = SCENARIOS[code](zone, fkit, tmp_path)
    assert result["reason"] == code, result
    assert result["layer"] == "intake" and "intake" in [str(x) for x in REASONS[code].layers]
    # The refusal is in quarantine with its reason, and nothing of it was loaded.
    entries = zone.quarantine_entries()
    assert [e["reason"] for e in entries] == [code]
    events = [e["event"] for e in entries[0]["events"]]
    assert events[-2:] == ["refused", "quarantined"]
