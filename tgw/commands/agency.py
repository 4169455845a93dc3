"""`tgw agency`: what an agency does, step by step (payload, approvals, seal and release).

Each step reads and writes files, so two people on two machines can sign in turn:
the accountant runs `sign` on the payload, the head runs `sign` on the accountant's output,
the releaser runs `seal`. `build` does all of it at once with a demo PKI.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from tgw_common.cli_support import UsageProblem, config_option, load

FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
OUT = click.Path(dir_okay=False, writable=True, path_type=Path)
CIPHERS = {"aes-256-cbc": "aes256_cbc", "aes-128-cbc": "aes128_cbc", "aes-256-gcm": "aes256_gcm"}


def _signer(cert: Path, key: Path):
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file

    try:
        return load_certificate_file(cert), load_private_key_file(key)
    except (ValueError, TypeError) as exc:
        raise UsageProblem(f"cannot load signer {cert} / {key}: {exc}") from None


def _read_documents(paths: tuple[Path, ...]) -> list[tuple[str, str, bytes]]:
    docs, names = [], set()
    for p in paths:
        data = p.read_bytes()
        try:
            kind = json.loads(data.decode("utf-8"))["kind"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise UsageProblem(f"{p}: not a JSON document with a \"kind\" field") from None
        if p.name in names:
            raise UsageProblem(f"two documents are named {p.name}")
        names.add(p.name)
        docs.append((f"documents/{p.name}", kind, data))
    return docs


def _write(path: Path, data: bytes) -> None:
    from tgw_common.spool import write_atomic

    write_atomic(path.resolve(), data)


def _new_envelope_id(agency: str) -> str:
    return f"{agency}-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:12]}"


@click.group(name="agency")
def agency() -> None:
    """機關端作業 Build, sign, seal and release an envelope (TPE/1)."""


@agency.command("payload")
@click.option("--agency", "agency_code", required=True, help="The agency code the manifest names.")
@click.option("--out", required=True, type=OUT, help="The payload ZIP to write.")
@click.option("--envelope-id", help="Globally unique envelope id (default: agency-time-random).")
@click.argument("documents", nargs=-1, required=True, type=FILE)
def payload(agency_code: str, out: Path, envelope_id: str | None, documents: tuple[Path, ...]) -> None:
    """製作 payload Pack documents and a manifest with control totals into a payload ZIP."""
    from tgw_common.reasons import Refusal
    from tgw_common.tpe import build_payload

    docs = _read_documents(documents)
    try:
        data = build_payload(envelope_id or _new_envelope_id(agency_code), agency_code, docs)
    except Refusal as exc:
        raise UsageProblem(f"{exc.code}: {exc.message}") from None
    _write(out, data)
    click.echo(f"wrote {out} ({len(docs)} documents, {len(data)} bytes)")


@agency.command("sign")
@click.option("--in", "src", required=True, type=FILE, help="A payload ZIP, or an approval SignedData to add to.")
@click.option("--out", required=True, type=OUT)
@click.option("--cert", required=True, type=FILE, help="The signer's certificate.")
@click.option("--key", required=True, type=FILE, help="The signer's private key.")
@click.option("--digest", default="sha256", show_default=True, type=click.Choice(["sha256", "sha384", "sha512"]))
@click.option("--pss", is_flag=True, help="Sign with RSASSA-PSS instead of PKCS #1 v1.5.")
def sign(src: Path, out: Path, cert: Path, key: Path, digest: str, pss: bool) -> None:
    """核章 Add ONE approval signature (accountant, head or delegate).

    On a payload ZIP it starts the approval layer; on an approval layer it adds a signature.
    """
    from tgw_common.tpe import add_signature, sign_new

    data = src.read_bytes()
    certificate, private_key = _signer(cert, key)
    if data[:2] == b"PK":
        result = sign_new(data, certificate, private_key, digest=digest, pss=pss)
        what = "started the approval layer"
    else:
        try:
            result = add_signature(data, certificate, private_key, digest=digest, pss=pss)
        except Exception as exc:
            raise UsageProblem(f"{src}: neither a payload ZIP nor an approval SignedData ({exc})") from None
        what = "added a signature"
    _write(out, result)
    click.echo(f"{what}: wrote {out}")


@agency.command("seal")
@click.option("--in", "src", required=True, type=FILE, help="The approval layer (signed by accountant and head).")
@click.option("--out", required=True, type=OUT, help="The envelope to upload.")
@click.option("--recipient", required=True, multiple=True, type=FILE,
              help="The treasury's envelope certificate (repeatable for a key roll-over).")
@click.option("--cert", required=True, type=FILE, help="The releaser's certificate.")
@click.option("--key", required=True, type=FILE, help="The releaser's private key.")
@click.option("--cipher", default="aes-256-cbc", show_default=True, type=click.Choice(list(CIPHERS)))
@click.option("--pss", is_flag=True, help="Release-sign with RSASSA-PSS.")
def seal(src: Path, out: Path, recipient: tuple[Path, ...], cert: Path, key: Path, cipher: str, pss: bool) -> None:
    """封裝放行 Seal for the treasury (RSAES-OAEP-SHA256 + AES) and release-sign."""
    from tgw_common.pki.certs import load_certificate_file
    from tgw_common.tpe import make_seal, sign_new

    recipients = [load_certificate_file(p) for p in recipient]
    certificate, private_key = _signer(cert, key)
    sealed = make_seal(src.read_bytes(), recipients, cipher=CIPHERS[cipher])
    envelope = sign_new(sealed, certificate, private_key, pss=pss)
    _write(out, envelope)
    click.echo(f"sealed and released: wrote {out} ({len(envelope)} bytes)")


@agency.command("build")
@click.option("--pki", "pki_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder written by `tgw pki demo`.")
@click.option("--agency", "agency_code", required=True)
@click.option("--out", required=True, type=OUT)
@click.option("--envelope-id")
@click.option("--delegate", is_flag=True, help="The delegate signs in place of the accountant.")
@click.argument("documents", nargs=-1, required=True, type=FILE)
def build(pki_dir: Path, agency_code: str, out: Path, envelope_id: str | None, delegate: bool,
          documents: tuple[Path, ...]) -> None:
    """示範 One step with the demo PKI: payload, accountant and head sign, seal, release."""
    from tgw_common.pki.certs import load_certificate_file
    from tgw_common.tpe import add_signature, build_payload, make_seal, sign_new

    folder = pki_dir / "agencies" / agency_code
    if not folder.is_dir():
        raise UsageProblem(f"{pki_dir} has no agency {agency_code}")
    first = "delegate" if delegate else "accountant"
    data = build_payload(envelope_id or _new_envelope_id(agency_code), agency_code, _read_documents(documents))
    approved = sign_new(data, *_signer(folder / f"{first}.pem", folder / f"{first}.key"))
    approved = add_signature(approved, *_signer(folder / "head.pem", folder / "head.key"))
    sealed = make_seal(approved, [load_certificate_file(pki_dir / "treasury" / "envelope.pem")])
    envelope = sign_new(sealed, *_signer(folder / "releaser.pem", folder / "releaser.key"))
    _write(out, envelope)
    click.echo(f"wrote {out} ({len(envelope)} bytes)")


@agency.command("signer")
@config_option()
@click.option("--pin-prompt", is_flag=True, help="Ask the card PIN once here, in the terminal (not on the page).")
@click.option("--pin-file", type=FILE, help="Read the card PIN from this file (tests and demos only).")
def signer(config_path: str, pin_prompt: bool, pin_file: Path | None) -> None:
    """本機簽章服務 The officer's local signing service (127.0.0.1, the portal's origin only).

    Every request is signed only after the officer confirms it on the service's own page;
    see docs/agency-workflow.md.
    """
    from agency_signer.server import serve

    cfg = load(config_path, "signer")
    mode = "prompt" if pin_prompt else "file" if pin_file else cfg.signer.pin_entry
    held = None
    if mode == "prompt":
        held = click.prompt(f"PIN for {cfg.signer.token_label or cfg.signer.pkcs11_uri}", hide_input=True)
    elif mode == "file":
        held = (pin_file or cfg.signer.pin_file).read_text(encoding="utf-8").strip()
    click.echo(f"signer on http://{cfg.signer.listen} for {cfg.signer.portal_origin} (PIN: {mode})", err=True)
    serve(cfg, held_pin=held)
