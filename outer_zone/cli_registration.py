"""`tgw outer registration`: the treasury decides agencies' certificate registration requests."""

from __future__ import annotations

import click

from tgw_common.cli_support import config_option, emit_json, operational

from .cli_common import Refused, open_engine


@click.group("registration")
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

    _, engine = open_engine(config_path)
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

    config, engine = open_engine(config_path, "outer")
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

    _, engine = open_engine(config_path)
    who, where = audit.cli_actor()
    _registration_call(reject, engine, request_id, actor=who, where=where, note=note)
    click.echo(f"rejected {request_id}")
