"""Demo IC cards: the demo officers' keys on SoftHSM2 tokens (`tgw pki demo --softhsm DIR`).

One token per officer (accountant, head, releaser of each demo agency), labelled
`<agency>-<role>`, holding that officer's key and certificate from the demo PKI. The key is
imported, not generated, so a token signature and a key-file signature verify against the
same registered certificate; on the token it is CKA_SENSITIVE and not CKA_EXTRACTABLE, so
nothing can read it back out (the key files beside it stay: tests and `tgw agency build`
use them). docs/pki-demo.md lists the files written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from tgw_common.pki.certs import load_certificate_file, load_private_key_file, subject_key_id
from tgw_common.pki.pkcs11key import library, reload_library
from tgw_common.spool import write_atomic

from .pki import ROLES

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class SoftHsmMissing(RuntimeError):
    """softhsm2 is not installed (`apt-get install softhsm2`)."""


def token_label(agency: str, role: str) -> str:
    return f"{agency}-{role}"


def write_softhsm_conf(folder: Path) -> Path:
    """A softhsm2.conf keeping its tokens in folder/tokens; point SOFTHSM2_CONF at it."""
    folder = Path(folder).resolve()
    (folder / "tokens").mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
                    f"log.level = ERROR\nslots.removable = false\n", encoding="utf-8")
    return conf


def put_officers_on_tokens(pki_dir: Path, folder: Path, agencies: list[str], *,
                           module: str = SOFTHSM_MODULE) -> dict:
    """Make the officers' tokens in `folder`; write and return folder/pins.json."""
    if not Path(module).is_file() or shutil.which("softhsm2-util") is None:
        raise SoftHsmMissing(f"SoftHSM2 is not installed ({module}, softhsm2-util): apt-get install softhsm2")
    conf = write_softhsm_conf(folder)
    cards: dict[str, dict] = {}
    with _using_conf(conf):
        for agency in agencies:
            for role in ROLES:
                label = token_label(agency, role)
                pin, so_pin = _pin(), _pin(16)
                _init_token(conf, label, pin, so_pin)
                cards[label] = {"agency": agency, "role": role, "pin": pin, "so_pin": so_pin,
                                "key_label": role, "certificate": f"agencies/{agency}/{role}.pem"}
        reload_library(module)  # SoftHSM2 reads its token folder at C_Initialize
        for label, card in cards.items():
            folder_of = Path(pki_dir) / "agencies" / card["agency"]
            _import(module, label, card["pin"], role=card["role"],
                    cert=load_certificate_file(folder_of / f"{card['role']}.pem"),
                    key=load_private_key_file(folder_of / f"{card['role']}.key"))
    summary = {"module": module, "softhsm2_conf": str(conf), "tokens": cards}
    write_atomic(Path(folder) / "pins.json", json.dumps(summary, ensure_ascii=False, indent=2).encode())
    (Path(folder) / "pins.json").chmod(0o600)
    return summary


@contextmanager
def _using_conf(conf: Path):
    """SOFTHSM2_CONF for this process while the tokens are made (the module reads it at start)."""
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


def _pin(digits: int = 8) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def _init_token(conf: Path, label: str, pin: str, so_pin: str) -> None:
    done = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                           "--so-pin", so_pin], env={**os.environ, "SOFTHSM2_CONF": str(conf)},
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"softhsm2-util --init-token {label}: {done.stderr.strip() or done.stdout.strip()}")


def _import(module: str, label: str, pin: str, *, role: str, cert: x509.Certificate,
            key: rsa.RSAPrivateKey) -> None:
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

    key_id = subject_key_id(cert) or cert.fingerprint(cert.signature_hash_algorithm)[:20]
    priv, pub = key.private_numbers(), key.public_key().public_numbers()
    token = library(module).get_token(token_label=label)
    with token.open(rw=True, user_pin=pin) as session:
        session.create_object({
            Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.LABEL: role, Attribute.ID: key_id,
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False,
            Attribute.MODULUS: _big(pub.n), Attribute.PUBLIC_EXPONENT: _big(pub.e),
            Attribute.PRIVATE_EXPONENT: _big(priv.d), Attribute.PRIME_1: _big(priv.p),
            Attribute.PRIME_2: _big(priv.q), Attribute.EXPONENT_1: _big(priv.dmp1),
            Attribute.EXPONENT_2: _big(priv.dmq1), Attribute.COEFFICIENT: _big(priv.iqmp),
        })
        session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True,
            Attribute.LABEL: role, Attribute.ID: key_id, Attribute.VERIFY: True,
            Attribute.MODULUS: _big(pub.n), Attribute.PUBLIC_EXPONENT: _big(pub.e),
        })
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.LABEL: role, Attribute.ID: key_id,
            Attribute.SUBJECT: cert.subject.public_bytes(), Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: _der_integer(cert.serial_number),
            Attribute.VALUE: cert.public_bytes(Encoding.DER),
        })


def _big(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def _der_integer(n: int) -> bytes:
    from asn1crypto.core import Integer

    return Integer(n).dump()
