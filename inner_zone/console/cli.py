"""`tgw inner console` (the web console under gunicorn) and `tgw inner console-user` (its accounts).

Registered on the `tgw inner` group by `register()`, called at the end of inner_zone/cli.py.
"""

from __future__ import annotations

import sys

import click

from tgw_common.cli_support import EXIT_REFUSED, UsageProblem, config_option, emit_json, load, operational


def _config(config_path: str, *, check_files: bool = True):
    return load(config_path, "console", "inner", "trust", check_files=check_files)


def _engine(config_path: str):
    from tgw_common.db import make_engine

    from .models import create_tables

    config = load(config_path, "console", check_files=False)
    engine = make_engine(config.database.url, echo=config.database.echo)
    create_tables(engine)
    return config, engine


@click.command("console")
@config_option()
@operational
def console(config_path: str) -> None:
    """操作主控台：內網網頁介面（gunicorn），供國庫署作業人員使用。

    The operator console: the intranet web console under gunicorn, on console.bind.
    Prepares its tables and cookie key first; runs until SIGTERM. See docs/console.md.
    """
    from tgw_common.config import ConfigError

    from .server import serve

    config = _config(config_path)
    try:
        from .state import check_config

        check_config(config)
        serve(config)
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None


@click.group("console-user")
def console_user() -> None:
    """主控台帳號：新增、列出、停用、啟用、解鎖、重設密碼。

    Console accounts (roles viewer, operator, administrator): add, list, disable,
    enable, unlock, password. Every change is in the console's audit log.
    """


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated): read one line from stdin, or make one to show once."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageProblem("--password-stdin: no password on standard input")
        return line, False
    from .accounts import generate_password

    return generate_password(), True


@console_user.command("add")
@config_option()
@click.option("--username", required=True, help="帳號 / Login name (letters, digits, . _ @ -).")
@click.option("--role", required=True, type=click.Choice(["viewer", "operator", "administrator"]),
              help="角色 / viewer: read only; operator: also fixes envelopes; administrator: also agencies, "
                   "revocations, audit log.")
@click.option("--name", "display_name", default="", help="顯示名稱 / Display name.")
@click.option("--password-stdin", is_flag=True,
              help="由標準輸入讀取密碼 / Read the password from stdin (else one is generated, shown once, "
                   "and must be changed at the first sign-in).")
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def add(config_path: str, username: str, role: str, display_name: str, password_stdin: bool, as_json: bool) -> None:
    """新增主控台帳號 / Add a console account."""
    from .accounts import AccountError, add_user
    from .audit import cli_actor

    config, engine = _engine(config_path)
    password, generated = _password(password_stdin)
    actor, where = cli_actor()
    try:
        user = add_user(engine, username=username, role=role, password=password, display_name=display_name,
                        must_change=generated, min_length=config.console.password_min_length, actor=actor,
                        where=where)
    except AccountError as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        emit_json({**user, **({"initial_password": password} if generated else {})})
        return
    click.echo(f"{username}: added as {role}")
    if generated:
        click.echo(f"initial password (shown once; must be changed at first sign-in): {password}")


@console_user.command("list")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def list_(config_path: str, as_json: bool) -> None:
    """列出主控台帳號 / List console accounts."""
    from .accounts import list_users

    _config_obj, engine = _engine(config_path)
    users = list_users(engine)
    if as_json:
        emit_json(users)
        return
    if not users:
        click.echo("沒有帳號 / no console users (add one with `tgw inner console-user add`)")
    for u in users:
        flags = [f for f, on in (("disabled", not u["active"]), ("locked", u["locked"]),
                                 ("must-change-password", u["must_change_password"])) if on]
        click.echo(f"{u['username']:<24} {u['role']:<14} {(u['last_login_at'] or 'never')[:19]:<20} "
                   f"{' '.join(flags)}")


def _one(config_path: str, username: str, act) -> None:
    from .accounts import AccountError
    from .audit import cli_actor

    _config_obj, engine = _engine(config_path)
    actor, where = cli_actor()
    try:
        user = act(engine, username, actor=actor, where=where)
    except AccountError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(EXIT_REFUSED) from None
    state = "active" if user["active"] else "disabled"
    click.echo(f"{username}: {state}{', locked' if user['locked'] else ''}")


@console_user.command("disable")
@config_option()
@click.option("--username", required=True)
@operational
def disable(config_path: str, username: str) -> None:
    """停用帳號並結束其所有連線 / Disable an account and end its sessions at once."""
    from .accounts import set_active

    _one(config_path, username, lambda e, u, **kw: set_active(e, u, False, **kw))


@console_user.command("enable")
@config_option()
@click.option("--username", required=True)
@operational
def enable(config_path: str, username: str) -> None:
    """重新啟用帳號 / Enable a disabled account again."""
    from .accounts import set_active

    _one(config_path, username, lambda e, u, **kw: set_active(e, u, True, **kw))


@console_user.command("unlock")
@config_option()
@click.option("--username", required=True)
@operational
def unlock(config_path: str, username: str) -> None:
    """解除密碼錯誤鎖定 / Lift a lockout after wrong passwords."""
    from .accounts import unlock as do_unlock

    _one(config_path, username, do_unlock)


@console_user.command("password")
@config_option()
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True,
              help="由標準輸入讀取新密碼 / Read the new password from stdin (else one is generated and must be "
                   "changed at the next sign-in).")
@operational
def password(config_path: str, username: str, password_stdin: bool) -> None:
    """重設密碼 / Set a new password for an account (e.g. one who forgot theirs)."""
    from .accounts import AccountError, reset_password
    from .audit import cli_actor

    config, engine = _engine(config_path)
    new, generated = _password(password_stdin)
    actor, where = cli_actor()
    try:
        reset_password(engine, username, new, must_change=generated, min_length=config.console.password_min_length,
                       actor=actor, where=where)
    except AccountError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(EXIT_REFUSED) from None
    click.echo(f"{username}: password set")
    if generated:
        click.echo(f"new password (shown once; must be changed at the next sign-in): {new}")


def register(group: click.Group) -> None:
    group.add_command(console)
    group.add_command(console_user)
