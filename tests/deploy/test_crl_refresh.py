"""systemd/common/tgw-crl-refresh: what tgw-crl-refresh.timer runs to install fresh CRLs.

Real curl (file:// sources) and real openssl against CRLs of the session's demo PKI, and
CRLs signed here with the demo GCA's key to be stale, older or from the wrong issuer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.deploy.units import SYSTEMD

SCRIPT = SYSTEMD / "common" / "tgw-crl-refresh"

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")),
                                reason="needs curl and openssl (Debian packages curl, openssl)")


def sign_crl(pki: Path, *, last: datetime, next_: datetime, issuer: str = "gca") -> bytes:
    cert = x509.load_pem_x509_certificate((pki / f"{issuer}.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{issuer}.key").read_bytes(), password=None)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
               .last_update(last).next_update(next_)
               .add_extension(x509.CRLNumber(int(last.timestamp())), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Refresh:
    def __init__(self, tmp: Path, pki: Path) -> None:
        self.tmp, self.pki = tmp, pki
        self.crl_dir = tmp / "crl"
        self.crl_dir.mkdir()
        self.src = tmp / "src"
        self.src.mkdir()
        self.sources = tmp / "sources.list"

    def offer(self, name: str, data: bytes, issuer: str = "gca") -> None:
        (self.src / f"{name}.crl").write_bytes(data)
        with self.sources.open("a") as fh:
            fh.write(f"{name} file://{self.src / name}.crl {self.pki / issuer}.pem\n")

    def run(self, *args: str) -> tuple[int, list[dict]]:
        argv = [str(SCRIPT), *(args or (str(self.sources), str(self.crl_dir)))]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def refresh(tmp_path, demo_pki) -> Refresh:
    return Refresh(tmp_path, demo_pki)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_installs_the_demo_crls_then_reports_them_unchanged(refresh, demo_pki):
    refresh.offer("gca", (demo_pki / "crl" / "gca.crl").read_bytes())
    refresh.offer("root", (demo_pki / "crl" / "root.crl").read_bytes(), issuer="root")
    code, log = refresh.run()
    assert code == 0
    assert [(e["name"], e["msg"]) for e in log] == [("gca", "installed"), ("root", "installed")]
    assert (refresh.crl_dir / "gca.crl").read_bytes() == (demo_pki / "crl" / "gca.crl").read_bytes()
    assert oct((refresh.crl_dir / "gca.crl").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in refresh.crl_dir.iterdir()) == ["gca.crl", "root.crl"], "no temporary left"
    code, log = refresh.run()
    assert code == 0 and {e["msg"] for e in log} == {"unchanged"}


def test_a_pem_crl_is_installed_as_der(refresh, demo_pki):
    der = sign_crl(demo_pki, last=now(), next_=now() + timedelta(days=2))
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    refresh.offer("gca", pem)
    code, _ = refresh.run()
    assert code == 0
    assert (refresh.crl_dir / "gca.crl").read_bytes() == der


def test_a_crl_from_the_wrong_issuer_is_refused(refresh, demo_pki):
    refresh.offer("gca", (demo_pki / "crl" / "root.crl").read_bytes())  # the root's CRL offered as GCA's
    code, log = refresh.run()
    assert code == 1
    assert log[0]["level"] == "error" and "signature" in log[0]["msg"]
    assert not (refresh.crl_dir / "gca.crl").exists()


def test_a_tampered_crl_is_refused(refresh, demo_pki):
    data = bytearray(sign_crl(demo_pki, last=now(), next_=now() + timedelta(days=2)))
    data[-5] ^= 0x01  # inside the signature
    refresh.offer("gca", bytes(data))
    code, log = refresh.run()
    assert code == 1 and "signature" in log[0]["msg"]
    assert not (refresh.crl_dir / "gca.crl").exists()


def test_a_stale_crl_is_refused(refresh, demo_pki):
    refresh.offer("gca", sign_crl(demo_pki, last=now() - timedelta(days=3), next_=now() - timedelta(hours=1)))
    code, log = refresh.run()
    assert code == 1 and "stale" in log[0]["msg"]
    assert not (refresh.crl_dir / "gca.crl").exists()


def test_an_older_crl_does_not_replace_a_newer_one(refresh, demo_pki):
    newer = sign_crl(demo_pki, last=now() - timedelta(hours=1), next_=now() + timedelta(days=2))
    (refresh.crl_dir / "gca.crl").write_bytes(newer)
    refresh.offer("gca", sign_crl(demo_pki, last=now() - timedelta(days=1), next_=now() + timedelta(days=1)))
    code, log = refresh.run()
    assert code == 1 and "rollback" in log[0]["msg"]
    assert (refresh.crl_dir / "gca.crl").read_bytes() == newer


def test_one_bad_source_fails_the_run_but_the_others_install(refresh, demo_pki):
    with refresh.sources.open("w") as fh:
        fh.write(f"# comment\n\nmissing file://{refresh.src}/nope.crl {demo_pki}/gca.pem\n")
    refresh.offer("root", (demo_pki / "crl" / "root.crl").read_bytes(), issuer="root")
    code, log = refresh.run()
    assert code == 1
    assert [(e["name"], e["level"]) for e in log] == [("missing", "error"), ("root", "info")]
    assert (refresh.crl_dir / "root.crl").exists()


def test_usage_errors_exit_2(refresh):
    code, _ = refresh.run(str(refresh.tmp / "no-such.list"), str(refresh.crl_dir))
    assert code == 2
    refresh.sources.write_text("")
    code, _ = refresh.run(str(refresh.sources), str(refresh.tmp / "no-such-dir"))
    assert code == 2
