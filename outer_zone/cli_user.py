"""`tgw outer user`: an agency's first users, unlocks and password resets (the agency
administrator manages the rest on the web)."""

from __future__ import annotations

import sys

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, operational

from .cli_common import account_call, open_engine


@click.group("user")
def user() -> None:
    """機關使用者 Agency users (the agency administrator manages the rest on the web)."""


def _read_password() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise UsageProblem("--password-stdin: no password on standard input")
    return password


@user.command("add")
@config_option()
@click.option("--agency", "agency_code", required=True, help="機關代號 Agency code.")
@click.option("--username", required=True, help="帳號 Username (unique across agencies).")
@click.option("--role", "roles", required=True, multiple=True,
              type=click.Choice(["admin", "preparer", "reviewer", "accountant", "head", "releaser"]),
              help="角色 Role, repeatable; admin = 權限管理者.")
@click.option("--name", "display_name", default="", help="姓名 Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.option("--no-force-change", is_flag=True,
              help="Do not require a password change at first sign-in (e.g. a service account).")
@operational
def user_add(config_path, agency_code, username, roles, display_name, password_stdin, no_force_change) -> None:
    """新增使用者 Add a user; without --password-stdin a one-time password is printed."""
    from tgw_common.db import transaction

    from . import audit
    from .accounts import add_user, generate_password

    config, engine = open_engine(config_path)
    password = _read_password() if password_stdin else generate_password()
    min_length = config.outer.password_min_length if config.outer else 12
    with transaction(engine) as s:
        account_call(add_user, s, agency=agency_code, username=username, roles=list(roles), password=password,
                      display_name=display_name, must_change=not no_force_change,
                      min_length=min_length if password_stdin else len(password))
        who, where = audit.cli_actor()
        audit.record(s, "cli_user_added", actor=who, agency=agency_code, ip=where, target=username,
                     roles=sorted(roles))
    click.echo(f"added user {username} ({agency_code}: {', '.join(sorted(roles))})")
    if not password_stdin:
        click.echo(f"one-time password (shown once): {password}")


@user.command("list")
@config_option()
@click.option("--agency", "agency_code", help="Only this agency.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def user_list(config_path: str, agency_code: str | None, as_json: bool) -> None:
    """列出使用者 List users, roles, lock state and live tokens."""
    from .accounts import list_users

    _, engine = open_engine(config_path)
    rows = list_users(engine, agency_code)
    if as_json:
        emit_json(rows)
        return
    for u in rows:
        state = "disabled" if not u["active"] else "locked" if u["locked"] else "active"
        click.echo(f"{u['agency']}\t{u['username']}\t{','.join(u['roles'])}\t{state}\t{u['tokens']} tokens")


@user.command("unlock")
@config_option()
@click.argument("username")
@operational
def user_unlock(config_path: str, username: str) -> None:
    """解除鎖定 Unlock an account locked by wrong passwords."""
    from tgw_common.db import transaction

    from . import audit
    from .accounts import find_user

    _, engine = open_engine(config_path)
    with transaction(engine) as s:
        row = account_call(find_user, s, username)
        row.locked_until, row.failed_logins = None, 0
        who, where = audit.cli_actor()
        audit.record(s, "cli_user_unlocked", actor=who, agency=row.agency, ip=where, target=username)
    click.echo(f"unlocked {username}")


@user.command("set-password")
@config_option()
@click.argument("username")
@click.option("--no-force-change", is_flag=True, help="Do not require a change at the next sign-in.")
@operational
def user_set_password(config_path: str, username: str, no_force_change: bool) -> None:
    """設定密碼 Set a user's password from standard input (one line); unlocks the account."""
    from tgw_common.db import transaction

    from . import audit
    from .accounts import find_user, set_password
    from .signin import SignIn

    config, engine = open_engine(config_path, "outer")
    password = _read_password()
    with transaction(engine) as s:
        row = account_call(find_user, s, username)
        account_call(set_password, s, row, password, must_change=not no_force_change,
                      min_length=config.outer.password_min_length)
        who, where = audit.cli_actor()
        audit.record(s, "cli_password_set", actor=who, agency=row.agency, ip=where, target=username)
        user_id = row.id
    SignIn(engine, config.outer).end_all(user_id)
    click.echo(f"password set for {username}; their sessions were ended")
