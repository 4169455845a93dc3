"""The runner over a real spool and a real database: loads, duplicates, refusals, recovery."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.kit import NOW
from tgw.demo.documents import bad_documents
from tgw_common.config import load_config

from .ikit import RunnerProc, Zone, envelope, make_zone, q, run_once, wait_until

A = "A10001"


def events_of(zone: Zone, tracking_id: str) -> list[str]:
    return [r[0] for r in q(zone, "SELECT event FROM provenance_events WHERE tracking_id = ? ORDER BY id", tracking_id)]


def test_loads_archives_and_records_every_step(zone, fkit):
    for n in range(3):
        zone.drop(f"T{n:04d}.p7m", envelope(fkit, A, number=n, count=3))
    runner = run_once(zone)
    assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 3
    assert q(zone, "SELECT count(*) FROM intake_documents")[0][0] == 9
    assert q(zone, "SELECT count(*) FROM intake_payees")[0][0] > 0
    assert q(zone, "SELECT count(*) FROM intake_loads WHERE archived_at IS NOT NULL")[0][0] == 3
    assert events_of(zone, "T0001") == ["claimed", "decrypted", "verified", "unpacked", "validated", "loaded",
                                        "archived"]
    # Every event carries the envelope's three names.
    assert q(zone, "SELECT count(*) FROM provenance_events WHERE tracking_id = 'T0001' AND "
                   "(sha256 IS NULL OR envelope_id IS NULL OR hop != 'inner-runner')")[0][0] == 0
    assert len(zone.archived()) == 3
    assert not list(zone.inbound.glob("*.p7m"))
    assert not [p for d in (".claimed", ".tries") for p in (zone.inbound / d).iterdir()]
    assert runner.counts["loaded"] == 3
    state = json.loads(q(zone, "SELECT state FROM daemon_status WHERE daemon = 'inner-runner'")[0][0])
    assert {"queue_depth", "oldest_age_seconds", "quarantine", "held"} <= set(state)
    assert state["queue_depth"] == 0 and state["quarantine"] == 0 and state["held"] == 0


def test_identical_redelivery_is_a_duplicate_not_a_second_load(zone, fkit):
    data = envelope(fkit, A, number=10)
    zone.drop("T0010.p7m", data)
    run_once(zone)
    zone.drop("T0010-copy.p7m", data)  # the link delivered it twice
    run_once(zone)
    assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 1
    assert events_of(zone, "T0010-copy") == ["duplicate"]
    assert len(zone.archived()) == 1 and not list(zone.inbound.glob("*.p7m"))


def test_refused_envelope_goes_to_quarantine_with_its_story(zone, fkit):
    docs = [(f"documents/{d.path}", d.kind, d.data) for d in bad_documents("VOUCHER_TOTAL_MISMATCH", A, seed=4)]
    zone.drop("T0020.p7m", fkit.envelope(A, payload=fkit.payload(A, docs=docs)))
    zone.drop("T0021.p7m", b"not an envelope at all")
    run_once(zone)
    assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 0
    entries = {e["id"]: e for e in zone.quarantine_entries()}
    assert set(entries) == {"T0020", "T0021"}
    e = entries["T0020"]
    assert (e["reason"], e["layer"], e["status"]) == ("VOUCHER_TOTAL_MISMATCH", "documents", "open")
    assert e["message"] and e["reason_zh"] and e["envelope_id"] and e["agency"] == A
    assert e["quarantined_at"] and e["first_seen_at"] and e["tries"] == 1
    assert [ev["event"] for ev in e["events"]] == ["claimed", "decrypted", "verified", "unpacked", "refused",
                                                   "quarantined"]
    assert (zone.quarantine / e["file"]).read_bytes()[:1] == b"0"  # the DER envelope itself
    assert entries["T0021"]["reason"] == "MALFORMED_DER"
    assert [ev["event"] for ev in entries["T0021"]["events"]] == ["claimed", "refused", "quarantined"]


def test_start_up_recovers_claimed_files_and_quarantines_exhausted_ones(tmp_path, demo_pki, fkit):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 3})
    run_once(zone)  # creates the spool folders
    claimed, tries = zone.inbound / ".claimed", zone.inbound / ".tries"
    # What a runner killed mid-work leaves: a claimed file and its try count.
    (claimed / "T0030.p7m").write_bytes(envelope(fkit, A, number=30))
    (tries / "T0030.p7m").write_text("1")
    (claimed / "T0031.p7m").write_bytes(envelope(fkit, A, number=31))
    (tries / "T0031.p7m").write_text("3")  # it has killed the runner three times
    run_once(zone)
    assert [r[0] for r in q(zone, "SELECT tracking_id FROM intake_envelopes")] == ["T0030"]
    [entry] = zone.quarantine_entries()
    assert (entry["id"], entry["reason"], entry["layer"], entry["tries"]) == ("T0031", "POISON", "intake", 3)
    assert not any(claimed.iterdir()) and not any(tries.iterdir())


def test_crash_between_commit_and_archive_is_finished_not_loaded_twice(zone, fkit, monkeypatch):
    import inner_zone.intake as intake

    real = intake.place_file
    calls = {"n": 0}

    def dies_once(src, dest, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after the commit")
        return real(src, dest, **kw)

    monkeypatch.setattr(intake, "place_file", dies_once)
    zone.drop("T0040.p7m", envelope(fkit, A, number=40))
    run_once(zone)
    assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 1
    assert events_of(zone, "T0040") == ["claimed", "decrypted", "verified", "unpacked", "validated", "loaded",
                                        "archived"]
    assert len(zone.archived()) == 1 and not zone.quarantine_entries()


def archived_marks(zone: Zone) -> list[tuple]:
    return q(zone, "SELECT envelope_id, tracking_id FROM provenance_events WHERE event = 'archived'")


def test_a_copy_in_the_same_pass_is_a_duplicate_not_a_second_archive(zone, fkit):
    # The copy sorts first and is loaded; the original comes later in the same pass, while the
    # copy's "archived" mark still waits for the end of the pass.
    data = envelope(fkit, A, number=70)
    zone.drop("T0070.p7m", data)
    zone.drop("T0070-copy.p7m", data)
    run_once(zone)
    assert [r[0] for r in q(zone, "SELECT tracking_id FROM intake_envelopes")] == ["T0070-copy"]
    assert events_of(zone, "T0070") == ["duplicate"]
    assert archived_marks(zone) == [(f"{A}-E00000070", "T0070-copy")]
    assert len(zone.archived()) == 1 and not list(zone.inbound.glob("*.p7m"))


def test_a_copy_met_before_the_crashed_original_is_a_duplicate(zone, fkit, monkeypatch):
    import inner_zone.intake as intake
    from inner_zone.runner import InnerRunner

    real = intake.place_file
    calls = {"n": 0}

    def dies_once(src, dest, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after the commit")
        return real(src, dest, **kw)

    monkeypatch.setattr(intake, "place_file", dies_once)
    data = envelope(fkit, A, number=80)
    zone.drop("T0080.p7m", data)
    runner = InnerRunner(load_config(zone.config))
    runner.startup()
    runner.one_iteration()  # loaded, then "dies" before the archive: the file goes back
    runner.shutdown()
    assert (zone.inbound / "T0080.p7m").exists() and not zone.archived()
    zone.drop("T0080-copy.p7m", data)  # the link's second copy, judged before the original's retry
    run_once(zone)
    assert [r[0] for r in q(zone, "SELECT tracking_id FROM intake_envelopes")] == ["T0080"]
    assert events_of(zone, "T0080-copy") == ["duplicate"]
    assert events_of(zone, "T0080")[-2:] == ["loaded", "archived"]
    assert archived_marks(zone) == [(f"{A}-E00000080", "T0080")]
    assert len(zone.archived()) == 1 and not list(zone.inbound.glob("*.p7m"))


def test_a_loaded_file_out_of_tries_is_archived_once_at_start_up(tmp_path, demo_pki, fkit, monkeypatch):
    import inner_zone.intake as intake
    from inner_zone.runner import InnerRunner

    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 3})
    real = intake.place_file
    calls = {"n": 0}

    def dies_once(src, dest, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after the commit")
        return real(src, dest, **kw)

    monkeypatch.setattr(intake, "place_file", dies_once)
    zone.drop("T0090.p7m", envelope(fkit, A, number=90))
    runner = InnerRunner(load_config(zone.config))
    runner.startup()
    runner.one_iteration()  # loaded, not archived
    runner.shutdown()
    # What a runner killed again and again leaves: the loaded file claimed, out of tries.
    (zone.inbound / "T0090.p7m").rename(zone.inbound / ".claimed" / "T0090.p7m")
    (zone.inbound / ".tries" / "T0090.p7m").write_text("3")
    run_once(zone)  # start-up: the poison check archives it, then the mark repair looks
    assert archived_marks(zone) == [(f"{A}-E00000090", "T0090")]
    assert len(zone.archived()) == 1 and not zone.quarantine_entries()


def test_a_failure_inside_the_load_leaves_nothing_behind(zone, fkit, monkeypatch):
    from tgw_common.events import Provenance

    real = Provenance.record
    state = {"fail": True}

    def record(self, event, hop, **kw):
        if event == "loaded" and state["fail"]:
            state["fail"] = False
            raise RuntimeError("simulated failure after documents and payees were inserted")
        return real(self, event, hop, **kw)

    monkeypatch.setattr(Provenance, "record", record)
    zone.drop("T0050.p7m", envelope(fkit, A, number=50, count=4))
    from inner_zone.runner import InnerRunner

    runner = InnerRunner(load_config(zone.config))
    runner.startup()
    runner.one_iteration()  # fails inside the transaction and gives the file back
    for table in ("intake_envelopes", "intake_documents", "intake_payees", "intake_loads"):
        assert q(zone, f"SELECT count(*) FROM {table}")[0][0] == 0, table
    assert (zone.inbound / "T0050.p7m").exists()
    runner.one_iteration()  # the second try loads all of it
    runner.shutdown()
    assert q(zone, "SELECT count(*) FROM intake_documents")[0][0] == 4
    assert q(zone, "SELECT tries FROM intake_loads")[0][0] == 2


@pytest.fixture
def stale_pki(pki):
    """A private PKI whose CRLs went stale yesterday."""
    from tgw.demo.pki import issue_crls

    issue_crls(pki, days=1, now=NOW - timedelta(days=2))
    return pki


def test_stale_crl_holds_the_envelope_until_a_fresh_crl_arrives(tmp_path, stale_pki, fkit):
    from tgw.demo.pki import issue_crls

    zone = make_zone(tmp_path / "zone", stale_pki)
    zone.drop("T0060.p7m", envelope(fkit, A, number=60))
    proc = RunnerProc(zone, tmp_path / "runner.log")
    try:
        wait_until(lambda: zone.quarantine_entries("held"), 60, "the envelope to be held")
        [held] = zone.quarantine_entries("held")
        assert held["reason"] == "CRL_STALE" and held["hold"] is True
        assert (zone.held / held["file"]).exists() and not list(zone.quarantine.glob("*.json"))
        assert q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 0
        issue_crls(stale_pki)  # the operator installs fresh CRLs; no restart, no command
        wait_until(lambda: q(zone, "SELECT count(*) FROM intake_envelopes")[0][0] == 1, 60, "the held envelope to load")
    finally:
        assert proc.stop() == 0
    [entry] = zone.quarantine_entries()
    assert entry["status"] == "retried" and entry["actions"][0]["action"] == "auto-retry"
    assert events_of(zone, "T0060")[-8:] == ["retried", "claimed", "decrypted", "verified", "unpacked", "validated",
                                             "loaded", "archived"]
