"""`tgw outer token`: officers' API bearer tokens."""

from __future__ import annotations

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, operational

from .cli_common import Refused, account_call, open_engine


@click.group("token")
def token() -> None:
    """API 存取權杖 Bearer tokens of officers for the agencies' API (/api/v1)."""


@token.command("create")
@config_option()
@click.option("--user", "username", required=True, help="An officer's username (preparer, reviewer, accountant, head or releaser).")
@click.option("--label", default="", help="What the token is for (e.g. the agency's system).")
@operational
def token_create(config_path: str, username: str, label: str) -> None:
    """核發權杖 Create a token; it is printed once and only its hash is kept."""
    from . import audit
    from .accounts import create_token

    _, engine = open_engine(config_path)
    token_id, secret = account_call(create_token, engine, username, label)
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
    _, engine = open_engine(config_path)
    revoked = account_call(revoke_tokens, engine, token_id=token_id, username=username)
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

    _, engine = open_engine(config_path)
    rows = list_tokens(engine, username)
    if as_json:
        emit_json(rows)
        return
    for t in rows:
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "live"
        click.echo(f"{t['id']}\t{t['agency']}\t{t['user']}\t{state}\t{t['label']}")
