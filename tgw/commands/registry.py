"""`tgw registry`: which certificate signs for which agency and role (憑證 IC 卡註冊)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, load, operational


def _registry(config_path: str):
    from tgw_common.db import make_engine
    from tgw_common.registry import SignerRegistry

    config = load(config_path, check_files=False)
    registry = SignerRegistry(make_engine(config.database.url, echo=config.database.echo))
    registry.zone = config.node.zone
    return registry


def _audit(registry, action: str, *, target: str | None, before, after, agency: str | None = None,
           **detail) -> None:
    """Into the zone's own audit log: the console's inside, the portal's outside."""
    if registry.zone == "outer":
        from outer_zone import audit
        from outer_zone.models import AuditEntry  # noqa: F401 - registers the table for create_tables
        from tgw_common.db import create_tables

        create_tables(registry.engine)
        who, where = audit.cli_actor()
        audit.record(registry.engine, action, actor=who, ip=where, agency=agency, target=target, before=before,
                     after=after, **detail)
    else:
        from inner_zone.console.audit import record_cli_change

        record_cli_change(registry.engine, action, target=target, before=before, after=after, agency=agency,
                          **detail)


def _entry(signer) -> dict | None:
    return None if signer is None else signer.as_dict()


class _When(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2026-12-01T08:00:00+08:00", param, ctx)
        if when.tzinfo is None:
            self.fail(f"{value!r} needs a UTC offset, e.g. +08:00", param, ctx)
        return when


@click.group(name="registry")
def registry() -> None:
    """簽章憑證註冊 The signer registry, keyed by SHA-256 fingerprint."""


@registry.command("add")
@config_option()
@click.option("--cert", "cert_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The signer's certificate (PEM or DER).")
@click.option("--agency", required=True, help="Agency code, e.g. A10001.")
@click.option("--role", required=True, type=click.Choice(["accountant", "head", "releaser"]))
@click.option("--delegate", is_flag=True, help="A delegate (代理人) standing in for the role, within --from/--until.")
@click.option("--from", "window_from", type=_When(), help="Delegation starts (ISO 8601 with offset).")
@click.option("--until", "window_until", type=_When(), help="Delegation ends (ISO 8601 with offset).")
@click.option("--replace", is_flag=True, help="Replace an existing registration of the same certificate.")
@operational
def add(config_path, cert_path, agency, role, delegate, window_from, window_until, replace) -> None:
    """註冊憑證 Register a certificate for an agency and role."""
    from tgw_common.pki.certs import load_certificate_file
    from tgw_common.registry import RegistryError

    try:
        cert = load_certificate_file(cert_path)
    except ValueError as exc:
        raise UsageProblem(f"{cert_path}: not a certificate: {exc}") from None
    from tgw_common.pki.certs import fingerprint

    reg = _registry(config_path)
    before = _entry(reg.get(fingerprint(cert)))
    try:
        entry = reg.add(cert, agency=agency, role=role, delegate=delegate,
                        window_from=window_from, window_until=window_until, replace=replace)
    except RegistryError as exc:
        raise UsageProblem(str(exc)) from None
    _audit(reg, "signer_registered", target=entry.fingerprint, before=before, after=entry.as_dict(),
           agency=entry.agency, replaced=before is not None)
    click.echo(f"registered {entry.fingerprint} {entry.agency} {entry.role}{' (delegate)' if entry.delegate else ''}"
               f" {entry.subject}")


@registry.command("list")
@config_option()
@click.option("--agency", help="Only this agency.")
@click.option("--role", type=click.Choice(["accountant", "head", "releaser"]), help="Only this role.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def list_(config_path, agency, role, as_json) -> None:
    """列出註冊憑證 List registered certificates."""
    entries = _registry(config_path).list(agency=agency, role=role)
    if as_json:
        emit_json([e.as_dict() for e in entries])
        return
    if not entries:
        click.echo("(no registered certificates)")
    for e in entries:
        state = "REVOKED" if e.revoked_at else "active"
        window = f" delegate {e.window_from:%Y-%m-%d}..{e.window_until:%Y-%m-%d}" if e.delegate else ""
        click.echo(f"{e.fingerprint[:16]}  {e.agency:<8} {e.role:<10} {state:<7} expires {e.not_after:%Y-%m-%d}"
                   f"{window}  {e.subject}")


@registry.command("revoke")
@config_option()
@click.argument("fingerprint")
@click.option("--note", help="Why (kept with the entry).")
@operational
def revoke(config_path, fingerprint, note) -> None:
    """撤銷註冊 Revoke a registration (the certificate is refused from now on)."""
    from tgw_common.registry import RegistryError

    reg = _registry(config_path)
    before = _entry(reg.get(fingerprint))
    try:
        entry = reg.revoke(fingerprint, note=note)
    except RegistryError as exc:
        raise UsageProblem(str(exc)) from None
    _audit(reg, "signer_revoked", target=entry.fingerprint, before=before, after=entry.as_dict(),
           agency=entry.agency, note=note)
    click.echo(f"revoked {entry.fingerprint} ({entry.agency} {entry.role})")


@registry.command("import")
@config_option()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--replace", is_flag=True, help="Replace registrations that already exist.")
@operational
def import_(config_path, file, replace) -> None:
    """匯入註冊檔 Import a registry YAML file (e.g. the demo PKI's registry.yaml)."""
    from tgw_common.registry import RegistryError

    reg = _registry(config_path)
    was = reg.current()
    try:
        added = reg.import_file(file, replace=replace)
    except RegistryError as exc:
        raise UsageProblem(str(exc)) from None
    if added:
        _audit(reg, "registry_imported", target=str(file)[-200:],
               before=[_entry(was.get(e.fingerprint)) for e in added], after=[e.as_dict() for e in added],
               count=len(added))
    click.echo(f"imported {len(added)} registrations from {file}")
