"""`tgw outer`: the upload portal (serve) and the treasury's administration of it.

Agencies, their allow-lists, first users, API tokens and certificate registrations are
administered here only, by treasury staff on the outer host: the internet side has no
page for any of it (the GoAnywhere lesson). docs/outer.md documents every verb.
"""

from __future__ import annotations

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, load, operational, run_daemon

from .cli_common import open_engine


@click.group(name="outer")
def outer() -> None:
    """外部區上傳入口與管理 The internet-facing upload portal and API, and its administration."""


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

    _, engine = open_engine(config_path)
    rows = recent(engine, limit=limit, agency=agency_code, action=action)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['at'][:19]}\t{r['actor']}\t{r['agency'] or '-'}\t{r['action']}\t{r['outcome']}"
                   f"{' ' + r['reason'] if r['reason'] else ''}\t{r['target'] or ''}\t{r['ip']}")


@outer.group("receipts")
def receipts() -> None:
    """收據 Receipts from the inner zone over the return link (docs/receipts.md)."""


@receipts.command("run")
@config_option()
@operational
def receipts_run(config_path: str) -> None:
    """常駐程序：驗證回傳鏈路送來的收據並保存 Verify and store each receipt the return link
    delivers into receipts.inbound; set aside anything else, logged and counted. Exit 3 if
    another intake holds the lock."""
    from .receipt_runner import OuterReceiptRunner

    run_daemon(lambda: OuterReceiptRunner(load(config_path, "receipts", "trust")))


def _register() -> None:
    """The command groups, one module each (cli_agency, cli_user, cli_token, cli_registration)."""
    from .cli_agency import agency
    from .cli_registration import registration
    from .cli_token import token
    from .cli_user import user

    for group in (agency, user, token, registration):
        outer.add_command(group)


_register()
