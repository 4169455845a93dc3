"""`tgw outer agency`: agencies and the public addresses each may sign in from."""

from __future__ import annotations

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, operational

from .cli_common import account_call, open_engine


@click.group("agency")
def agency() -> None:
    """機關與公眾位址白名單 Agencies and their public-address allow-lists."""


@agency.command("add")
@config_option()
@click.argument("code")
@click.option("--name", required=True, help="機關名稱 The agency's name.")
@operational
def agency_add(config_path: str, code: str, name: str) -> None:
    """新增機關 Add an agency (its allow-list starts empty: nobody can sign in yet)."""
    from . import audit
    from .accounts import add_agency

    _, engine = open_engine(config_path)
    account_call(add_agency, engine, code, name)
    who, where = audit.cli_actor()
    audit.record(engine, "agency_added", actor=who, agency=code, ip=where, target=code, name=name)
    click.echo(f"added agency {code} {name}")


def _change_networks(config_path: str, code: str, cidrs: tuple[str, ...], change, action: str) -> list[str]:
    """Apply an allow-list change and audit it; returns the networks it changed."""
    from . import audit

    _, engine = open_engine(config_path)
    try:
        changed = account_call(change, engine, code, list(cidrs))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    who, where = audit.cli_actor()
    audit.record(engine, action, actor=who, agency=code, ip=where, target=code, networks=changed)
    return changed


@agency.command("allow-ip")
@config_option()
@click.argument("code")
@click.argument("cidrs", nargs=-1, required=True)
@operational
def agency_allow_ip(config_path: str, code: str, cidrs: tuple[str, ...]) -> None:
    """加入白名單 Add CIDR networks (e.g. 203.0.113.0/24) to an agency's allow-list."""
    from .accounts import allow_networks

    added = _change_networks(config_path, code, cidrs, allow_networks, "agency_ip_allowed")
    click.echo(f"{code}: allowed {', '.join(added) if added else 'nothing new'}")


@agency.command("remove-ip")
@config_option()
@click.argument("code")
@click.argument("cidrs", nargs=-1, required=True)
@operational
def agency_remove_ip(config_path: str, code: str, cidrs: tuple[str, ...]) -> None:
    """移出白名單 Remove CIDR networks from an agency's allow-list."""
    from .accounts import remove_networks

    gone = _change_networks(config_path, code, cidrs, remove_networks, "agency_ip_removed")
    click.echo(f"{code}: removed {', '.join(gone) if gone else 'nothing (not on the list)'}")


@agency.command("list")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def agency_list(config_path: str, as_json: bool) -> None:
    """列出機關 List agencies with their allow-lists."""
    from .accounts import list_agencies

    _, engine = open_engine(config_path)
    rows = list_agencies(engine)
    if as_json:
        emit_json(rows)
        return
    for a in rows:
        click.echo(f"{a['code']}\t{a['name']}\t{a['users']} users\t{' '.join(a['networks']) or '(no addresses)'}")
