"""The new user's path through the documented CLI, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def tgw(*args: str, cwd: Path, check_code: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "tgw", *args], cwd=cwd, capture_output=True, text=True,
                            check=False)
    if check_code is not None:
        assert result.returncode == check_code, f"tgw {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of config/inner.yaml beside a fresh demo PKI, as the README's quickstart does."""
    root = tmp_path_factory.mktemp("newuser")
    (root / "config").mkdir()
    (root / "config" / "inner.yaml").write_text((REPO / "config" / "inner.yaml").read_text())
    tgw("pki", "demo", "--out", "var/demo", "--agencies", "2", cwd=root)
    tgw("registry", "import", "var/demo/registry.yaml", "--config", "config/inner.yaml", cwd=root)
    return root


def test_agency_cli_builds_an_envelope_that_opens(workspace):
    w = workspace
    tgw("demo-data", "documents", "--agency", "A10001", "--count", "5", "--out", "docs", "--seed", "7", cwd=w)
    docs = sorted(str(p.relative_to(w)) for p in (w / "docs").glob("*.json"))
    assert len(docs) == 5
    a = "var/demo/agencies/A10001"
    tgw("agency", "payload", "--agency", "A10001", "--out", "payload.zip", *docs, cwd=w)
    tgw("agency", "sign", "--in", "payload.zip", "--out", "approved1.der", "--cert", f"{a}/accountant.pem",
        "--key", f"{a}/accountant.key", cwd=w)
    tgw("agency", "sign", "--in", "approved1.der", "--out", "approved.der", "--cert", f"{a}/head.pem",
        "--key", f"{a}/head.key", cwd=w)
    tgw("agency", "seal", "--in", "approved.der", "--out", "envelope.p7m", "--recipient",
        "var/demo/treasury/envelope.pem", "--cert", f"{a}/releaser.pem", "--key", f"{a}/releaser.key", cwd=w)

    opened = tgw("envelope", "open", "envelope.p7m", "--config", "config/inner.yaml", "--json", cwd=w)
    verdict = json.loads(opened.stdout)
    assert verdict["accepted"] is True and verdict["reason"] is None
    assert verdict["agency"] == "A10001" and len(verdict["documents"]) == 5

    tampered = bytearray((w / "envelope.p7m").read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (w / "tampered.p7m").write_bytes(bytes(tampered))
    refused = tgw("envelope", "open", "tampered.p7m", "--config", "config/inner.yaml", "--json", cwd=w, check_code=1)
    verdict = json.loads(refused.stdout)
    assert verdict["accepted"] is False and verdict["reason"] and verdict["layer"]

    inspected = json.loads(tgw("envelope", "inspect", "envelope.p7m", "--json", cwd=w).stdout)
    assert [layer["layer"] for layer in inspected["layers"]] == ["release", "seal"]
    assert inspected["layers"][1]["recipients"][0]["key_transport"] == "rsaes_oaep"
    assert inspected["layers"][1]["cipher"] == "aes256_cbc"


def test_release_only_check_needs_no_private_key(workspace):
    w = workspace
    tgw("demo-data", "documents", "--agency", "A10002", "--count", "2", "--out", "docs2", cwd=w)
    docs = sorted(str(p.relative_to(w)) for p in (w / "docs2").glob("*.json"))
    tgw("agency", "build", "--pki", "var/demo", "--agency", "A10002", "--out", "e2.p7m", *docs, cwd=w)
    config = yaml.safe_load((w / "config" / "inner.yaml").read_text())
    config["treasury"].pop("private_key")
    (w / "config" / "outer-check.yaml").write_text(yaml.safe_dump(config))
    out = tgw("envelope", "open", "e2.p7m", "--config", "config/outer-check.yaml", "--release-only", "--json", cwd=w)
    assert json.loads(out.stdout)["release"]["agency"] == "A10002"
    # Without --release-only the same config cannot open: a config error, exit 2.
    err = tgw("envelope", "open", "e2.p7m", "--config", "config/outer-check.yaml", cwd=w, check_code=2)
    assert "treasury.private_key" in err.stderr


def test_revoked_registration_and_fresh_crl(workspace):
    w = workspace
    tgw("demo-data", "documents", "--agency", "A10001", "--count", "1", "--out", "docs3", cwd=w)
    docs = [str(p.relative_to(w)) for p in (w / "docs3").glob("*.json")]
    tgw("agency", "build", "--pki", "var/demo", "--agency", "A10001", "--out", "e3.p7m", *docs, cwd=w)
    # Revoke the releaser's certificate at the CA: after a fresh CRL the envelope is refused.
    tgw("pki", "crl", "--pki", "var/demo", "--revoke", "var/demo/agencies/A10001/releaser.pem", cwd=w)
    refused = tgw("envelope", "open", "e3.p7m", "--config", "config/inner.yaml", "--json", cwd=w, check_code=1)
    assert json.loads(refused.stdout)["reason"] == "CERT_REVOKED"


def test_registry_cli(workspace):
    w = workspace
    listed = json.loads(tgw("registry", "list", "--config", "config/inner.yaml", "--json", "--agency", "A10002",
                            cwd=w).stdout)
    assert {e["role"] for e in listed} == {"accountant", "head", "releaser"}
    delegate = next(e for e in listed if e["delegate"])
    assert delegate["window_from"] and delegate["window_until"]
    fp = next(e for e in listed if e["role"] == "head")["fingerprint"]
    tgw("registry", "revoke", fp, "--config", "config/inner.yaml", cwd=w)
    again = json.loads(tgw("registry", "list", "--config", "config/inner.yaml", "--json", cwd=w).stdout)
    assert next(e for e in again if e["fingerprint"] == fp)["revoked_at"]
    bad = tgw("registry", "add", "--config", "config/inner.yaml", "--cert", "var/demo/agencies/A10002/delegate.pem",
              "--agency", "A10002", "--role", "releaser", "--delegate", "--from", "2026-01-01T00:00:00+08:00",
              "--until", "2026-02-01T00:00:00+08:00", cwd=w, check_code=2)
    assert "delegate" in bad.stderr


def test_config_errors_name_file_key_and_problem(workspace):
    w = workspace
    config = yaml.safe_load((w / "config" / "inner.yaml").read_text())
    config["limits"]["max_entries"] = "many"
    config["policy"]["colour"] = "blue"
    config["trust"]["anchors"] = ["../var/demo/nope.pem"]
    (w / "config" / "broken.yaml").write_text(yaml.safe_dump(config))
    err = tgw("envelope", "open", "e2.p7m", "--config", "config/broken.yaml", cwd=w, check_code=2).stderr
    assert "broken.yaml" in err
    assert "limits.max_entries" in err and "policy.colour: unknown key" in err and "nope.pem" in err
    missing = tgw("envelope", "open", "e2.p7m", "--config", "config/absent.yaml", cwd=w, check_code=2).stderr
    assert "absent.yaml: config file not found" in missing


def test_help_explains(workspace):
    out = tgw("--help", cwd=workspace).stdout
    for group in ("pki", "agency", "envelope", "registry", "inner", "outer", "transfer", "monitor"):
        assert group in out
    assert "Exit codes" in out
