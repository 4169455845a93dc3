"""`tgw outer`: the upload portal (serve) and the treasury's administration of it.

Agencies, their allow-lists, first users, API tokens and certificate registrations are
administered here only, by treasury staff on the outer host: the internet side has no
page for any of it (the GoAnywhere lesson). docs/outer.md documents every verb.
"""

from __future__ import annotations

import sys

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, load, operational


class Refused(click.ClickException):
    """The command worked and the answer is no (exit 1)."""

    exit_code = 1


def _engine(config_path: str, *sections: str):
    from tgw_common.db import create_tables, make_engine

    from . import models  # noqa: F401 - the tables must be known to create them

    config = load(config_path, *sections, check_files=False)
    engine = make_engine(config.database.url, echo=config.database.echo)
    create_tables(engine)
    return config, engine


def _account_call(fn, *args, **kwargs):
    from .accounts import AccountError

    try:
        return fn(*args, **kwargs)
    except AccountError as exc:
        raise Refused(str(exc)) from None


@click.group(name="outer")
def outer() -> None:
    """外部區上傳入口與管理 The internet-facing upload portal and API, and its administration."""


# --- serve
@outer.command("serve")
@config_option()
def serve(config_path: str) -> None:
    """啟動上傳入口（gunicorn）Run the portal and API under gunicorn (bind, workers, TLS from outer.*)."""
    from tgw_common.config import ConfigError

    from .server import serve as run

    config = load(config_path, "outer", "trust")
    try:
        run(config)
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None


# --- agencies
@outer.group("agency")
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

    _, engine = _engine(config_path)
    _account_call(add_agency, engine, code, name)
    who, where = audit.cli_actor()
    audit.record(engine, "agency_added", actor=who, agency=code, ip=where, target=code, name=name)
    click.echo(f"added agency {code} {name}")


@agency.command("allow-ip")
@config_option()
@click.argument("code")
@click.argument("cidrs", nargs=-1, required=True)
@operational
def agency_allow_ip(config_path: str, code: str, cidrs: tuple[str, ...]) -> None:
    """加入白名單 Add CIDR networks (e.g. 203.0.113.0/24) to an agency's allow-list."""
    from . import audit
    from .accounts import allow_networks

    _, engine = _engine(config_path)
    try:
        added = _account_call(allow_networks, engine, code, list(cidrs))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    who, where = audit.cli_actor()
    audit.record(engine, "agency_ip_allowed", actor=who, agency=code, ip=where, target=code, networks=added)
    click.echo(f"{code}: allowed {', '.join(added) if added else 'nothing new'}")


@agency.command("remove-ip")
@config_option()
@click.argument("code")
@click.argument("cidrs", nargs=-1, required=True)
@operational
def agency_remove_ip(config_path: str, code: str, cidrs: tuple[str, ...]) -> None:
    """移出白名單 Remove CIDR networks from an agency's allow-list."""
    from . import audit
    from .accounts import remove_networks

    _, engine = _engine(config_path)
    try:
        gone = _account_call(remove_networks, engine, code, list(cidrs))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    who, where = audit.cli_actor()
    audit.record(engine, "agency_ip_removed", actor=who, agency=code, ip=where, target=code, networks=gone)
    click.echo(f"{code}: removed {', '.join(gone) if gone else 'nothing (not on the list)'}")


@agency.command("list")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def agency_list(config_path: str, as_json: bool) -> None:
    """列出機關 List agencies with their allow-lists."""
    from .accounts import list_agencies

    _, engine = _engine(config_path)
    rows = list_agencies(engine)
    if as_json:
        emit_json(rows)
        return
    for a in rows:
        click.echo(f"{a['code']}\t{a['name']}\t{a['users']} users\t{' '.join(a['networks']) or '(no addresses)'}")


# --- users
@outer.group("user")
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

    config, engine = _engine(config_path)
    password = _read_password() if password_stdin else generate_password()
    min_length = config.outer.password_min_length if config.outer else 12
    with transaction(engine) as s:
        _account_call(add_user, s, agency=agency_code, username=username, roles=list(roles), password=password,
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

    _, engine = _engine(config_path)
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

    _, engine = _engine(config_path)
    with transaction(engine) as s:
        row = _account_call(find_user, s, username)
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

    config, engine = _engine(config_path, "outer")
    password = _read_password()
    with transaction(engine) as s:
        row = _account_call(find_user, s, username)
        _account_call(set_password, s, row, password, must_change=not no_force_change,
                      min_length=config.outer.password_min_length)
        who, where = audit.cli_actor()
        audit.record(s, "cli_password_set", actor=who, agency=row.agency, ip=where, target=username)
        user_id = row.id
    SignIn(engine, config.outer).end_all(user_id)
    click.echo(f"password set for {username}; their sessions were ended")


# --- tokens
@outer.group("token")
def token() -> None:
    """API 存取權杖 Bearer tokens of releasers for POST /api/v1/envelopes."""


@token.command("create")
@config_option()
@click.option("--user", "username", required=True, help="A releaser's username.")
@click.option("--label", default="", help="What the token is for (e.g. the agency's system).")
@operational
def token_create(config_path: str, username: str, label: str) -> None:
    """核發權杖 Create a token; it is printed once and only its hash is kept."""
    from . import audit
    from .accounts import create_token

    _, engine = _engine(config_path)
    token_id, secret = _account_call(create_token, engine, username, label)
    who, where = audit.cli_actor()
    audit.record(engine, "token_created", actor=who, ip=where, target=username, token_id=token_id, label=label)
    click.echo(f"token {token_id} for {username} (shown once; store it safely):", err=True)
    click.echo(secret)


@token.command("revoke")
@config_option()
@click.option("--id", "token_id", type=int, help="The token's id (tgw outer token list).")
@click.option("--user", "username", help="Revoke every live token of this user.")
@operational
def token_revoke(config_path: str, token_id: int | None, username: str | None) -> None:
    """撤銷權杖 Revoke a token by id, or all of a user's tokens."""
    from . import audit
    from .accounts import revoke_tokens

    if token_id is None and not username:
        raise UsageProblem("give --id or --user")
    _, engine = _engine(config_path)
    revoked = _account_call(revoke_tokens, engine, token_id=token_id, username=username)
    if not revoked:
        raise Refused("no live token matched")
    who, where = audit.cli_actor()
    audit.record(engine, "token_revoked", actor=who, ip=where, target=username or str(token_id), tokens=revoked)
    click.echo(f"revoked token(s) {', '.join(map(str, revoked))}")


@token.command("list")
@config_option()
@click.option("--user", "username", help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def token_list(config_path: str, username: str | None, as_json: bool) -> None:
    """列出權杖 List tokens (never the secrets)."""
    from .accounts import list_tokens

    _, engine = _engine(config_path)
    rows = list_tokens(engine, username)
    if as_json:
        emit_json(rows)
        return
    for t in rows:
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "live"
        click.echo(f"{t['id']}\t{t['agency']}\t{t['user']}\t{state}\t{t['label']}")


# --- certificate registrations
@outer.group("registration")
def registration() -> None:
    """憑證註冊申請 Certificate registration requests from agencies."""


@registration.command("list")
@config_option()
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "all"]), default="pending",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def registration_list(config_path: str, status: str, as_json: bool) -> None:
    """列出申請 List registration requests."""
    from .registration import list_requests

    _, engine = _engine(config_path)
    rows = list_requests(engine, status=None if status == "all" else status)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['status']}\t{r['agency']}\t{r['role']}{' (delegate)' if r['delegate'] else ''}"
                   f"\t{r['fingerprint'][:16]}…\t{r['subject']}")


def _registration_call(fn, *args, **kwargs):
    from .registration import RegistrationError

    try:
        return fn(*args, **kwargs)
    except RegistrationError as exc:
        raise Refused(str(exc)) from None


@registration.command("approve")
@config_option()
@click.argument("request_id", type=int)
@click.option("--note", help="備註 A note kept with the decision.")
@operational
def registration_approve(config_path: str, request_id: int, note: str | None) -> None:
    """核准 Approve: register the certificate and write <id>.certreq.json for the inner zone."""
    from . import audit
    from .registration import approve

    config, engine = _engine(config_path, "outer")
    who, where = audit.cli_actor()
    row = _registration_call(approve, engine, request_id, export_dir=config.outer.registration_export_dir,
                             actor=who, where=where, note=note)
    click.echo(f"approved {request_id}: {row['agency']} {row['role']} {row['fingerprint']}")
    click.echo(f"carry to the inner zone: {row['export_path']}")


@registration.command("reject")
@config_option()
@click.argument("request_id", type=int)
@click.option("--note", help="理由 The reason, shown to the agency.")
@operational
def registration_reject(config_path: str, request_id: int, note: str | None) -> None:
    """駁回 Reject a registration request."""
    from . import audit
    from .registration import reject

    _, engine = _engine(config_path)
    who, where = audit.cli_actor()
    _registration_call(reject, engine, request_id, actor=who, where=where, note=note)
    click.echo(f"rejected {request_id}")


# --- audit log
@outer.command("audit")
@config_option()
@click.option("--agency", "agency_code", help="Only this agency.")
@click.option("--action", help="Only this action (docs/outer.md lists them).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@operational
def audit_log(config_path: str, agency_code: str | None, action: str | None, limit: int, as_json: bool) -> None:
    """稽核紀錄 Show the audit log, newest first."""
    from .audit import recent

    _, engine = _engine(config_path)
    rows = recent(engine, limit=limit, agency=agency_code, action=action)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['at'][:19]}\t{r['actor']}\t{r['agency'] or '-'}\t{r['action']}\t{r['outcome']}"
                   f"{' ' + r['reason'] if r['reason'] else ''}\t{r['target'] or ''}\t{r['ip']}")
