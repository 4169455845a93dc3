"""`tgw envelope`: look at one envelope, or judge it as the gateway would."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from tgw_common.cli_support import EXIT_REFUSED, UsageProblem, config_option, emit_json, load


@click.group(name="envelope")
def envelope() -> None:
    """電子信封 Inspect or open a TPE/1 envelope."""


@envelope.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def inspect(file: Path, as_json: bool) -> None:
    """檢視 Show layers, signers, recipients, algorithms and sizes (no key needed)."""
    from tgw_common.tpe.inspect import describe

    info = describe(file.read_bytes())
    if as_json:
        emit_json(info)
    else:
        click.echo(f"{file}: {info['bytes']} bytes, sha256 {info['sha256']}")
        for layer in info["layers"]:
            click.echo(f"- {layer['layer']}: {layer['type']}")
            for s in layer.get("signers", []):
                click.echo(f"    signer {s.get('subject') or s.get('serial')}: {s['digest']} {s['signature']} "
                           f"signed {s['signing_time']}")
            for r in layer.get("recipients", []):
                click.echo(f"    recipient {r.get('issuer', '')} serial {r.get('serial', '')}: "
                           f"{r.get('key_transport', r['type'])} {r.get('oaep_hash', '')}")
            if "cipher" in layer:
                click.echo(f"    cipher {layer['cipher']}, {layer['ciphertext_bytes']} bytes encrypted")
        if "note" in info:
            click.echo(info["note"])
    if "error" in info:
        click.echo(f"stopped: {info['error']}", err=True)
        raise SystemExit(EXIT_REFUSED)


@envelope.command("open")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@config_option()
@click.option("--json", "as_json", is_flag=True, help="Print the full verdict as JSON.")
@click.option("--at", "at", help="Judge as of this moment (ISO 8601 with offset) instead of now.")
@click.option("--release-only", is_flag=True, help="Check only the release layer, as the outer zone does (no key).")
def open_(file: Path, config_path: str, as_json: bool, at: str | None, release_only: bool) -> None:
    """開啟驗證 Open and verify every layer; exit 0 accepted, 1 refused, 2 usage/config error.

    Nothing is loaded or recorded: this is the verdict only (the inner runner does the loading).
    """
    from tgw_common.config import ConfigError
    from tgw_common.tpe.factory import opener_from_config

    moment = None
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise UsageProblem(f"--at {at!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise UsageProblem("--at needs a UTC offset, e.g. +08:00")
    config = load(config_path, "trust")
    try:
        opener = opener_from_config(config, with_private_key=not release_only)
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None
    verdict = opener.verdict(file.read_bytes(), moment=moment, release_only=release_only)
    if as_json:
        emit_json(verdict)
    elif verdict["accepted"]:
        click.echo(f"accepted: envelope {verdict.get('envelope_id', '')} from {verdict.get('agency') or verdict['release']['agency']}")
    else:
        hold = " (held: fix the CRL and retry)" if verdict["hold"] else ""
        click.echo(f"refused: {verdict['reason']} at {verdict['layer']}: {verdict['message']}{hold}")
    raise SystemExit(0 if verdict["accepted"] else EXIT_REFUSED)
