"""`tgw demo-data envelopes`: every file gets the outcome expected.json promises.

Judged here without the appliance, by the same opener the zones use: the release check
with the uploading agency (what the outer zone does at upload) and the full opening (what
the inner runner does before the database). The database's own refusals (a replayed
envelope id, a voucher loaded before) need the appliance: tests/e2e/test_appliance.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import tgw
from tgw.appliance.envelopes import BAD_KINDS
from tgw_common.reasons import Refusal


@pytest.fixture(scope="module")
def batch(demo_pki, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("batch")
    tgw("demo-data", "envelopes", "--pki", demo_pki, "--out", out, "--count", "90", "--seed", "3",
        "--bad-fraction", "0.5")
    return out


def _judge(opener, data: bytes, upload_as: str) -> tuple:
    if not data:
        return ("outer", "EMPTY_UPLOAD", "upload")
    try:
        opener.check_release(data, agency=upload_as)
    except Refusal as r:
        return ("outer", r.code, str(r.layer))
    try:
        opener.open(data)
    except Refusal as r:
        return ("inner", r.code, str(r.layer))
    return ("accepted",)


def test_every_file_gets_its_expected_outcome(batch, opener):
    summary = json.loads((batch / "expected.json").read_text(encoding="utf-8"))
    files = summary["files"]
    assert len(files) == 90 and summary["counts"]["files"] == 90
    assert sorted(p.name for p in batch.glob("*.p7m")) == sorted(f["file"] for f in files)
    wrong = []
    for f in files:
        data = (batch / f["file"]).read_bytes()
        assert f["sha256"] and f["size"] == len(data)
        got = _judge(opener, data, f["upload_as"])
        if f["expect"] == "loaded" or f["layer"] == "intake" or f["kind"] == "resubmitted":
            want = ("accepted",)  # valid as a file; only the database (or the replay guard) says no
        else:
            want = (f["zone"], f["reason"], f["layer"])
        if got != want:
            wrong.append(f"{f['file']}: expected {want}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_the_mix_covers_every_kind_and_orders_dependent_files_last(batch):
    files = json.loads((batch / "expected.json").read_text(encoding="utf-8"))["files"]
    kinds = Counter(f["kind"] for f in files)
    assert kinds["valid"] == 45
    assert set(kinds) - {"valid"} == set(BAD_KINDS)  # 45 bad files: every kind at least once
    for f in files:
        if f["expect"] == "refused":
            assert f["zone"] in ("outer", "inner") and f["reason"]
            assert ("http_status" in f) == (f["zone"] == "outer")
    names = [f["file"] for f in files]
    for i, f in enumerate(files):
        if "after" in f:
            original = next(x for x in files if x["file"] == f["after"])
            assert original["expect"] == "loaded" and names.index(f["after"]) < i
            if f["kind"] == "replayed-envelope-id":
                assert f["envelope_id"] == original["envelope_id"] and f["sha256"] != original["sha256"]
            if f["kind"] == "resubmitted":
                assert f["sha256"] == original["sha256"]
    # Valid envelopes never share an envelope id or a voucher: the database would refuse the second.
    valid_ids = [f["envelope_id"] for f in files if f["expect"] == "loaded"]
    assert len(set(valid_ids)) == len(valid_ids)


def test_same_seed_same_mix_and_bad_arguments(demo_pki, tmp_path):
    for name in ("a", "b"):
        tgw("demo-data", "envelopes", "--pki", demo_pki, "--out", tmp_path / name, "--count", "12", "--seed", "5",
            "--agency", "A10002")
    a, b = (json.loads((tmp_path / n / "expected.json").read_text())["files"] for n in ("a", "b"))
    assert [(f["file"], f["kind"], f.get("reason")) for f in a] == [(f["file"], f["kind"], f.get("reason")) for f in b]
    assert {f["upload_as"] for f in a} == {"A10002"}
    # The demo PKI's extra certificates belong to A10001: A10002's batch uses the faults it can show.
    assert not {f["kind"] for f in a} & {"revoked-releaser", "expired-signer", "untrusted-releaser"}
    err = tgw("demo-data", "envelopes", "--pki", demo_pki, "--out", tmp_path / "c", "--agency", "A10009",
              check=2).stderr
    assert "A10009" in err and "A10001" in err
    assert "not a demo PKI" in tgw("demo-data", "envelopes", "--pki", tmp_path, "--out", tmp_path / "d",
                                   check=2).stderr
