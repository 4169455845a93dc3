"""Interoperability with the real `openssl cms`, both ways, with the exact commands of the profile."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
A = "A10001"


def run(*args: str, cwd) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"openssl {' '.join(args)}\n{result.stderr}"


@pytest.fixture
def chain(demo_pki, tmp_path):
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes((demo_pki / "root.pem").read_bytes() + (demo_pki / "gca.pem").read_bytes())
    crls = tmp_path / "crls.pem"
    for name in ("gca", "root"):
        run("crl", "-inform", "DER", "-in", str(demo_pki / "crl" / f"{name}.crl"), "-out", str(tmp_path / f"{name}.pem"),
            cwd=tmp_path)
    # openssl cms has no -CRLfile: CRLs placed in the -CAfile bundle are used for -crl_check_all.
    crls.write_bytes(bundle.read_bytes() + (tmp_path / "gca.pem").read_bytes() + (tmp_path / "root.pem").read_bytes())
    return crls


@pytest.mark.parametrize("cipher", ["aes256_cbc", "aes128_cbc", "aes256_gcm"])
def test_tgw_envelope_verifies_and_decrypts_with_openssl(kit, demo_pki, tmp_path, chain, cipher):
    bundle = chain
    payload = kit.payload(A)
    (tmp_path / "envelope.p7m").write_bytes(kit.release(kit.seal(kit.approve(payload), cipher=cipher), A))
    verify = ["cms", "-verify", "-binary", "-inform", "DER", "-CAfile", str(bundle), "-crl_check_all"]
    run(*verify, "-in", "envelope.p7m", "-out", "sealed.der", cwd=tmp_path)
    treasury = demo_pki / "treasury"
    run("cms", "-decrypt", "-binary", "-inform", "DER", "-in", "sealed.der", "-recip", str(treasury / "envelope.pem"),
        "-inkey", str(treasury / "envelope.key"), "-out", "approved.der", cwd=tmp_path)
    run(*verify, "-in", "approved.der", "-out", "payload.zip", cwd=tmp_path)
    assert (tmp_path / "payload.zip").read_bytes() == payload


def test_openssl_envelope_opens_with_tgw(kit, demo_pki, tmp_path, opener):
    """The four commands of envelope-profile.md, verbatim but for the file paths."""
    (tmp_path / "payload.zip").write_bytes(kit.payload(A))
    agency = demo_pki / "agencies" / A
    acct, head, rel = (agency / "accountant", agency / "head", agency / "releaser")
    treasury = demo_pki / "treasury" / "envelope.pem"
    run("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-in", "payload.zip", "-signer", f"{acct}.pem",
        "-inkey", f"{acct}.key", "-outform", "DER", "-out", "approved1.der", cwd=tmp_path)
    run("cms", "-resign", "-binary", "-nodetach", "-md", "sha256", "-inform", "DER", "-in", "approved1.der",
        "-signer", f"{head}.pem", "-inkey", f"{head}.key", "-outform", "DER", "-out", "approved.der", cwd=tmp_path)
    run("cms", "-encrypt", "-binary", "-aes-256-cbc", "-recip", str(treasury), "-keyopt", "rsa_padding_mode:oaep",
        "-keyopt", "rsa_oaep_md:sha256", "-in", "approved.der", "-outform", "DER", "-out", "sealed.der", cwd=tmp_path)
    run("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-in", "sealed.der", "-signer", f"{rel}.pem",
        "-inkey", f"{rel}.key", "-outform", "DER", "-out", "envelope.p7m", cwd=tmp_path)
    verdict = opener.verdict((tmp_path / "envelope.p7m").read_bytes())
    assert verdict["accepted"] is True, verdict
    assert verdict["seal"]["key_transport"] == "rsaes_oaep"
    assert {a["role"] for a in verdict["approvals"]} == {"accountant", "head"}


def test_openssl_pss_gcm_and_sha384_open_with_tgw(kit, demo_pki, tmp_path, opener):
    (tmp_path / "payload.zip").write_bytes(kit.payload(A))
    agency = demo_pki / "agencies" / A
    acct, head, rel = (agency / "accountant", agency / "head", agency / "releaser")
    treasury = demo_pki / "treasury" / "envelope.pem"
    pss = ["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:48"]
    # -keyopt applies to the -signer/-inkey before it; -resign must keep the first digest.
    run("cms", "-sign", "-binary", "-nodetach", "-md", "sha384", "-in", "payload.zip", "-signer", f"{acct}.pem",
        "-inkey", f"{acct}.key", *pss, "-outform", "DER", "-out", "approved1.der", cwd=tmp_path)
    run("cms", "-resign", "-binary", "-nodetach", "-md", "sha384", "-inform", "DER", "-in", "approved1.der",
        "-signer", f"{head}.pem", "-inkey", f"{head}.key", "-outform", "DER", "-out", "approved.der", cwd=tmp_path)
    run("cms", "-encrypt", "-binary", "-aes-256-gcm", "-recip", str(treasury), "-keyopt", "rsa_padding_mode:oaep",
        "-keyopt", "rsa_oaep_md:sha256", "-in", "approved.der", "-outform", "DER", "-out", "sealed.der", cwd=tmp_path)
    run("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-in", "sealed.der", "-signer", f"{rel}.pem",
        "-inkey", f"{rel}.key", "-outform", "DER", "-out", "envelope.p7m", cwd=tmp_path)
    verdict = opener.verdict((tmp_path / "envelope.p7m").read_bytes())
    assert verdict["accepted"] is True, verdict
    assert verdict["seal"]["cipher"] == "aes256_gcm"
    assert {a["signature"] for a in verdict["approvals"]} == {"rsassa_pss", "rsassa_pkcs1v15"}


def test_openssl_pkcs1v15_seal_refused_unless_legacy(kit, demo_pki, tmp_path, opener):
    (tmp_path / "approved.der").write_bytes(kit.approve(kit.payload(A)))
    treasury = demo_pki / "treasury" / "envelope.pem"
    run("cms", "-encrypt", "-binary", "-aes-256-cbc", "-recip", str(treasury), "-in", "approved.der",
        "-outform", "DER", "-out", "sealed.der", cwd=tmp_path)
    envelope = kit.release((tmp_path / "sealed.der").read_bytes())
    verdict = opener.verdict(envelope)
    assert (verdict["reason"], verdict["layer"]) == ("UNSUPPORTED_ALGORITHM", "seal")
    opener.legacy = True
    assert opener.verdict(envelope)["accepted"] is True
