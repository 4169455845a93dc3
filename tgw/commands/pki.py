"""`tgw pki`: a demo PKI to try the gateway with, and fresh CRLs for it."""

from __future__ import annotations

from pathlib import Path

import click

from tgw_common.cli_support import UsageProblem, emit_json


@click.group(name="pki")
def pki() -> None:
    """示範憑證 Demo PKI: root, GCA, treasury envelope and receipt certificates, agency signers, CRLs."""


@pki.command("demo")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (created; must be empty or absent unless --force).")
@click.option("--agencies", default=3, show_default=True, type=click.IntRange(1, 9), help="How many demo agencies.")
@click.option("--key-size", default=2048, show_default=True, type=click.Choice(["2048", "3072", "4096"]),
              help="RSA key size for every key.")
@click.option("--crl-days", default=7, show_default=True, type=click.IntRange(1, 365),
              help="Days until the CRLs' nextUpdate.")
@click.option("--force", is_flag=True, help="Write even if the folder is not empty (overwrites).")
@click.option("--softhsm", "softhsm_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also put the officers' keys on SoftHSM2 tokens in this folder (demo IC cards).")
def demo(out: Path, agencies: int, key_size: str, crl_days: int, force: bool, softhsm_dir: Path | None) -> None:
    """建立示範 PKI Write a demo PKI (see docs/pki-demo.md for every file).

    Not for production: private keys are written unencrypted.
    """
    from tgw.demo.pki import build_demo_pki

    if out.exists() and any(out.iterdir()) and not force:
        raise UsageProblem(f"{out} is not empty; use --force to overwrite")
    if softhsm_dir is not None and softhsm_dir.exists() and any(softhsm_dir.iterdir()):
        raise UsageProblem(f"{softhsm_dir} is not empty: SoftHSM2 tokens go into an empty folder")
    summary = build_demo_pki(out, agencies=agencies, key_size=int(key_size), crl_days=crl_days)
    click.echo(f"demo PKI written to {out} ({len(summary['agencies'])} agencies: "
               f"{', '.join(summary['agencies'])})")
    click.echo(f"  trust anchor: {out / 'root.pem'}   intermediate: {out / 'gca.pem'}   CRLs: {out / 'crl'}")
    click.echo(f"  treasury envelope certificate: {out / 'treasury/envelope.pem'}   "
               f"receipt certificate: {out / 'treasury/receipt.pem'}")
    click.echo(f"  registry file: {out / 'registry.yaml'}  (tgw registry import {out / 'registry.yaml'} --config ...)")
    if softhsm_dir is not None:
        _demo_cards(out, softhsm_dir, list(summary["agencies"]))


def _demo_cards(pki_dir: Path, folder: Path, agencies: list[str]) -> None:
    from tgw.demo.softhsm import SoftHsmMissing, put_officers_on_tokens
    try:
        cards = put_officers_on_tokens(pki_dir, folder, agencies)
    except SoftHsmMissing as exc:
        raise UsageProblem(str(exc)) from None
    click.echo(f"  demo IC cards: {len(cards['tokens'])} SoftHSM2 tokens in {folder}; PINs in {folder / 'pins.json'}")
    click.echo(f"  (export SOFTHSM2_CONF={cards['softhsm2_conf']})")


@pki.command("crl")
@click.option("--pki", "pki_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder written by `tgw pki demo`.")
@click.option("--revoke", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Also revoke this certificate (PEM or DER); repeatable.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 365), help="Days until nextUpdate.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def crl(pki_dir: Path, revoke: tuple[Path, ...], days: int, as_json: bool) -> None:
    """簽發新的憑證廢止清冊 Issue fresh CRLs for the demo GCA and root."""
    from tgw.demo.pki import issue_crls

    if not (pki_dir / "crl" / "state.json").is_file():
        raise UsageProblem(f"{pki_dir} was not written by `tgw pki demo` (no crl/state.json)")
    try:
        written = issue_crls(pki_dir, days=days, revoke=list(revoke))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        emit_json({"written": [str(p) for p in written], "revoked_now": [str(p) for p in revoke]})
    else:
        for p in written:
            click.echo(f"wrote {p}")
