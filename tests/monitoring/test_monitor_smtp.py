"""Mail over STARTTLS with login, against a real aiosmtpd server that requires both."""

from __future__ import annotations

import ipaddress
import os
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .mkit import TGW, SmtpServer, body, write_monitor_config


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail relay 郵件中繼")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (folder / "relay.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "relay.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return folder / "relay.pem", folder / "relay.key"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"monitor" and auth_data.password == b"s3cret!"
    return AuthResult(success=ok)


@pytest.fixture
def secure_smtp(tls_files):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    server = SmtpServer(tls_context=ctx, require_starttls=True, authenticator=_auth, auth_require_tls=True)
    yield server
    server.stop()


def _test_mail(cfg_path, password: str | None):
    env = dict(os.environ)
    env.pop("TGW_TEST_SMTP_PASSWORD", None)
    if password is not None:
        env["TGW_TEST_SMTP_PASSWORD"] = password
    return subprocess.run([TGW, "monitor", "test-mail", "--config", str(cfg_path)], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_starttls_and_login(tmp_path, secure_smtp, tls_files):
    smtp = {"starttls": True, "ca_file": str(tls_files[0]), "username": "monitor",
            "password_env": "TGW_TEST_SMTP_PASSWORD", "timeout_seconds": 2}
    cfg_path = write_monitor_config(tmp_path, smtp_port=secure_smtp.port, smtp=smtp)

    done = _test_mail(cfg_path, "s3cret!")
    assert done.returncode == 0, done.stderr
    [mail] = secure_smtp.sink.mails()
    assert "這是一封測試信" in body(mail) and "this is a test mail" in body(mail)

    # A refused login (smtplib then tries the next mechanism, which aiosmtpd lets time out).
    done = _test_mail(cfg_path, "wrong")
    assert done.returncode == 3 and f"SMTP 127.0.0.1:{secure_smtp.port}" in done.stderr

    done = _test_mail(cfg_path, None)
    assert done.returncode == 3 and "TGW_TEST_SMTP_PASSWORD is not set" in done.stderr

    # Without the relay's certificate as trust anchor the TLS handshake fails: no mail in clear.
    data = yaml.safe_load(cfg_path.read_text())
    del data["monitor"]["smtp"]["ca_file"]
    cfg_path.write_text(yaml.safe_dump(data))
    done = _test_mail(cfg_path, "s3cret!")
    assert done.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in done.stderr

    data["monitor"]["smtp"]["starttls"] = False
    cfg_path.write_text(yaml.safe_dump(data))
    done = _test_mail(cfg_path, "s3cret!")
    assert done.returncode == 3  # the relay requires STARTTLS before login
    assert len(secure_smtp.sink.mails()) == 1
