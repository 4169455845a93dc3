"""Spool entries the runner cannot read: a directory, a FIFO, symbolic links, a file whose open
fails. The runner must survive them, account for each (a POISON quarantine entry that names
the OS error, the entry itself kept there or set aside in inbound/.bad/) and go on with the
envelopes after them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from .ikit import TGW, Zone, cli, envelope, make_zone, q, run_once, wait_until

A = "A10001"


def loaded(zone: Zone) -> list[str]:
    return [r[0] for r in q(zone, "SELECT tracking_id FROM intake_envelopes ORDER BY tracking_id")]


def visible(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


# A FIFO opened for reading blocks until a writer comes: should the runner ever open one again,
# the timeout ends the test instead of hanging the suite.
@pytest.mark.timeout(120)
def test_strays_in_the_spool_are_quarantined_and_the_runner_goes_on(zone, fkit):
    run_once(zone)  # creates the spool folders
    inbound = zone.inbound
    zone.drop("U0001.p7m", envelope(fkit, A, number=101))
    (inbound / "U0002.p7m").mkdir()
    (inbound / "U0002.p7m" / "inside.txt").write_text("a folder is not an envelope")
    os.mkfifo(inbound / "U0003.p7m")
    (inbound / "U0004.p7m").symlink_to(zone.root / "no-such-file.p7m")
    # Valid from inbound/, dangling once the claim renames it into inbound/.claimed/.
    (zone.root / "outside.p7m").write_bytes(envelope(fkit, A, number=105))
    (inbound / "U0005.p7m").symlink_to("../outside.p7m")
    zone.drop("U0006.p7m", envelope(fkit, A, number=106))

    runner = run_once(zone)

    assert loaded(zone) == ["U0001", "U0006"]
    assert len(zone.archived()) == 2
    assert runner.counts["loaded"] == 2 and runner.counts["poison"] == 4
    entries = {e["id"]: e for e in zone.quarantine_entries()}
    assert sorted(entries) == ["U0002", "U0003", "U0004", "U0005"]
    for qid, kind in [("U0002", "a directory"), ("U0003", "a FIFO"), ("U0004", "a symbolic link to "),
                      ("U0005", "a symbolic link to ../outside.p7m")]:
        e = entries[qid]
        assert (e["reason"], e["layer"], e["status"], e["sha256"]) == ("POISON", "intake", "open", None)
        assert f"not a regular file: {kind}" in e["message"]
        # Never kept in quarantine (its readers could block on it or be led elsewhere): set aside.
        assert e["file"] is None and not (zone.quarantine / f"{qid}.p7m").exists()
        aside = zone.root / e["set_aside_path"]
        assert aside.parent == inbound / ".bad" and os.path.lexists(aside)
        assert [ev["event"] for ev in e["events"] if ev["hop"] == "inner-runner"] == [
            "claimed", "refused", "quarantined"]
    assert (inbound / ".bad" / "U0002.p7m" / "inside.txt").read_text() == "a folder is not an envelope"
    assert (zone.root / "outside.p7m").exists()  # what a link points at is not the runner's to move
    assert visible(inbound) == [] and not os.listdir(inbound / ".claimed") and not os.listdir(inbound / ".tries")
    events = q(zone, "SELECT event, reason, sha256 FROM provenance_events WHERE tracking_id = 'U0003' ORDER BY id")
    assert events == [("claimed", None, None), ("refused", "POISON", None), ("quarantined", "POISON", None)]

    # The operator's tools show them; retry says why it cannot, reject closes them.
    code, out = cli("inner", "quarantine", "list", "--config", str(zone.config))
    assert code == 0 and "U0003" in out and "set aside in" in out
    code, _ = cli("inner", "quarantine", "retry", "U0003", "--config", str(zone.config))
    assert code == 1
    code, out = cli("inner", "quarantine", "reject", "U0003", "--note", "a FIFO, removed", "--config",
                    str(zone.config))
    assert code == 0 and "rejected" in out


@pytest.mark.timeout(120)
def test_a_stray_out_of_tries_at_start_up_is_set_aside_not_opened(tmp_path, demo_pki, fkit):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 3})
    run_once(zone)
    claimed, tries = zone.inbound / ".claimed", zone.inbound / ".tries"
    # What a crash loop on a FIFO would leave: the poison check used to open it, and block.
    os.mkfifo(claimed / "V0001.p7m")
    (tries / "V0001.p7m").write_text("3")
    (zone.inbound / ".bad" / "V0001.p7m").write_text("an older file set aside under the same name")
    zone.drop("V0002.p7m", envelope(fkit, A, number=202))

    runner = run_once(zone)

    assert loaded(zone) == ["V0002"] and runner.counts["poison"] == 1
    [entry] = zone.quarantine_entries()
    assert (entry["id"], entry["reason"], entry["tries"]) == ("V0001", "POISON", 3)
    assert "a FIFO" in entry["message"]
    # The older file keeps its name; this one gets a suffix.
    assert entry["set_aside_path"].endswith("/.bad/V0001.p7m.2")
    assert (zone.inbound / ".bad" / "V0001.p7m").read_text() == "an older file set aside under the same name"
    assert not os.listdir(claimed) and not os.listdir(tries)


def _runner_without_root_read(zone: Zone, log) -> subprocess.Popen:
    """`tgw inner run` for which a mode-000 file is unreadable, even when the tests run as root:
    root only reads such a file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, which setpriv
    drops from the capability bounding set before the exec."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is not installed")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.Popen([*prefix, TGW, "--log-level", "INFO", "inner", "run", "--config", str(zone.config)],
                            stdout=subprocess.DEVNULL, stderr=log)


def test_a_file_that_cannot_be_opened_is_quarantined_by_a_real_runner(tmp_path, demo_pki, fkit):
    zone = make_zone(tmp_path / "zone", demo_pki, inner={"max_tries": 3})
    run_once(zone)
    claimed, tries = zone.inbound / ".claimed", zone.inbound / ".tries"
    # One that has used up its tries already: its poison check at start-up hashed the file and
    # raised, so every restart died in the same place.
    (claimed / "W0000.p7m").write_bytes(envelope(fkit, A, number=300))
    (tries / "W0000.p7m").write_text("3")
    os.chmod(claimed / "W0000.p7m", 0)
    zone.drop("W0001.p7m", envelope(fkit, A, number=301))
    os.chmod(zone.drop("W0002.p7m", envelope(fkit, A, number=302)), 0)
    zone.drop("W0003.p7m", envelope(fkit, A, number=303))

    with open(tmp_path / "runner.log", "wb") as log:
        proc = _runner_without_root_read(zone, log)
        try:
            wait_until(lambda: (len(zone.archived()) == 2 and len(zone.quarantine_entries()) == 2)
                       or proc.poll() is not None, 120, "the spool to drain")
            assert proc.poll() is None, (tmp_path / "runner.log").read_text()
        finally:
            proc.terminate()
            assert proc.wait(60) == 0

    assert loaded(zone) == ["W0001", "W0003"]
    entries = {e["id"]: e for e in zone.quarantine_entries()}
    assert sorted(entries) == ["W0000", "W0002"]
    for qid, tried in (("W0000", 3), ("W0002", 1)):
        e = entries[qid]
        assert (e["reason"], e["status"], e["sha256"], e["tries"]) == ("POISON", "open", None, tried)
        assert "cannot read the file: EACCES (Permission denied)" in e["message"]
        # A regular file is kept in quarantine, as it arrived.
        assert e["file"] == f"{qid}.p7m" and (zone.quarantine / e["file"]).stat().st_size == e["size_bytes"] > 0
    lines = [json.loads(line) for line in (tmp_path / "runner.log").read_text().splitlines() if line.startswith("{")]
    assert {rec["file"] for rec in lines if rec["message"] == "unreadable file quarantined"} == {"W0000.p7m",
                                                                                                 "W0002.p7m"}
    assert not os.listdir(claimed) and visible(zone.inbound) == []

    # Once the permissions are fixed the operator puts it back and it loads like any other.
    os.chmod(zone.quarantine / "W0002.p7m", 0o640)
    code, out = cli("inner", "quarantine", "retry", "W0002", "--config", str(zone.config))
    assert code == 0, out
    run_once(zone)
    assert loaded(zone) == ["W0001", "W0002", "W0003"]
