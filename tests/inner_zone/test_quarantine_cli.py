"""`tgw inner quarantine list|show|retry|reject` over real quarantine entries."""

from __future__ import annotations

import json
import sqlite3

from tgw_common.config import load_config
from tgw_common.db import make_engine
from tgw_common.pki.certs import fingerprint
from tgw_common.registry import SignerRegistry

from .ikit import cli, envelope

A = "A10001"


def qcli(zone, *args: str) -> tuple[int, str]:
    return cli("inner", "quarantine", *args, "--config", str(zone.config))


def run_once(zone):
    from inner_zone.runner import InnerRunner

    InnerRunner(load_config(zone.config)).run(until_idle=True)


def loaded(zone) -> list[str]:
    with sqlite3.connect(zone.db_url.removeprefix("sqlite:///")) as conn:
        return [r[0] for r in conn.execute("SELECT tracking_id FROM intake_envelopes ORDER BY id")]


def test_refused_then_fixed_then_retried_loads(zone, fkit):
    registry = SignerRegistry(make_engine(load_config(zone.config).database.url))
    releaser = fkit.pair(A, "releaser")[0]
    registry.revoke(fingerprint(releaser))
    zone.drop("T0500.p7m", envelope(fkit, A, number=500))
    zone.drop("T0501.p7m", envelope(fkit, A, number=501))
    zone.drop("T0502.p7m", b"garbage")
    run_once(zone)
    code, out = qcli(zone, "list", "--json")
    assert code == 0
    listed = {e["id"]: e for e in json.loads(out)}
    assert set(listed) == {"T0500", "T0501", "T0502"}
    assert listed["T0500"]["reason"] == "SIGNER_REGISTRATION_REVOKED" and listed["T0500"]["file_present"]

    code, out = qcli(zone, "show", "T0500", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["layer"] == "release" and shown["events"][-1]["event"] == "quarantined"
    assert qcli(zone, "show", "T0500")[1].startswith("id ")

    # The registry is fixed; both envelopes are put back in one command and load.
    registry.add(releaser, agency=A, role="releaser", replace=True)
    code, out = qcli(zone, "retry", "T0500", "T0501", "--note", "releaser re-registered")
    assert code == 0 and "T0500: retried" in out and "T0501: retried" in out
    assert (zone.inbound / "T0500.p7m").exists()
    run_once(zone)
    assert loaded(zone) == ["T0500", "T0501"]
    entry = json.loads(qcli(zone, "show", "T0500", "--json")[1])
    assert entry["status"] == "retried" and entry["actions"][0]["note"] == "releaser re-registered"
    assert [e["id"] for e in json.loads(qcli(zone, "list", "--json")[1])] == ["T0502"]


def test_reject_needs_a_note_and_keeps_the_file(zone, fkit):
    zone.drop("T0510.p7m", b"junk one")
    zone.drop("T0511.p7m", b"junk two")
    run_once(zone)
    code, _ = qcli(zone, "reject", "T0510")
    assert code == 2  # --note is required
    code, out = qcli(zone, "reject", "T0510", "T0511", "--note", "agency confirmed: test upload")
    assert code == 0 and "T0510: rejected" in out and "T0511: rejected" in out
    for qid in ("T0510", "T0511"):
        entry = json.loads((zone.quarantine / f"{qid}.json").read_text())
        assert entry["status"] == "rejected" and entry["rejected_at"]
        assert (zone.quarantine / f"{qid}.p7m").exists()
    assert json.loads(qcli(zone, "list", "--json")[1]) == []
    assert len(json.loads(qcli(zone, "list", "--all", "--json")[1])) == 2
    # Closed is closed; unknown is unknown; one bad ID does not stop the others.
    code, _ = cli("inner", "quarantine", "retry", "T0510", "NOPE", "--config", str(zone.config))
    assert code == 1
    with sqlite3.connect(zone.db_url.removeprefix("sqlite:///")) as conn:
        events = [r[0] for r in conn.execute("SELECT event FROM provenance_events WHERE tracking_id = 'T0511'")]
    assert events[-1] == "rejected"


def test_a_held_envelope_can_be_rejected(zone):
    from inner_zone.context import open_inner
    from tgw_common.db import utcnow

    inner = open_inner(load_config(zone.config))
    src = zone.root / "held.p7m"
    src.write_bytes(b"waiting for a CRL")
    inner.quarantine.put(src, name="T0520.p7m", sha256="ab" * 32, size=17, tracking_id="T0520", status="held",
                         reason="CRL_STALE", layer="release", message="stale", detail={"hold": True}, events=[],
                         first_seen_at=utcnow(), tries=1)
    code, out = qcli(zone, "list")
    assert code == 0 and "held" in out
    assert qcli(zone, "reject", "T0520", "--note", "revoked anyway")[0] == 0
    assert not list(zone.held.glob("T0520.*"))
    entry = json.loads((zone.quarantine / "T0520.json").read_text())
    assert entry["status"] == "rejected" and (zone.quarantine / "T0520.p7m").exists()
