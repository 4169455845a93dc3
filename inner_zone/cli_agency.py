"""`tgw inner agency`: each agency's intake mode (live / parallel-test), e-payment limit and contact."""

from __future__ import annotations

import click

from tgw_common.cli_support import UsageProblem, config_option, emit_json, load, operational


@click.group()
def agency() -> None:
    """機關設定：正式（live）或雙軌平行測試（parallel-test）、電子支付限額、聯絡人。

    Per-agency intake settings: live or parallel-test (雙軌平行作業), own e-payment limit,
    contact address. Parallel-test envelopes pass every check and are recorded, but are
    never released for payment.
    """


@agency.command("set")
@click.argument("code")
@config_option()
@click.option("--mode", type=click.Choice(["live", "parallel-test"]),
              help="live：正式放行付款；parallel-test：只檢核記錄、不放行 / live or parallel-test.")
@click.option("--epayment-limit", type=int, help="本機關電子支付限額（新臺幣元）/ The agency's own limit, NT$.")
@click.option("--default-limit", is_flag=True, help="改回 documents.epayment_limit / Use the default limit again.")
@click.option("--contact", help="聯絡電子郵件（空字串清除）/ Contact e-mail ('' clears it).")
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def set_(code: str, config_path: str, mode: str | None, epayment_limit: int | None, default_limit: bool,
         contact: str | None, as_json: bool) -> None:
    """新增或修改機關設定；只改有給的選項。

    Create or change an agency's settings; options not given keep their value. A new
    agency without --mode gets inner.default_agency_mode.
    """
    from .agencies import AgencyError, list_agencies, set_agency
    from .console.audit import record_cli_change
    from .context import engine_for

    if epayment_limit is not None and default_limit:
        raise UsageProblem("give --epayment-limit or --default-limit, not both")
    if mode is None and epayment_limit is None and not default_limit and contact is None:
        raise UsageProblem("nothing to set: give --mode, --epayment-limit, --default-limit or --contact")
    config = load(config_path, "inner", check_files=False)
    engine = engine_for(config)
    before = next((r.as_dict() for r in list_agencies(engine) if r.code == code), None)
    try:
        row = set_agency(engine, code, mode=mode, epayment_limit=epayment_limit,
                         clear_limit=default_limit, contact=contact, default_mode=config.inner.default_agency_mode)
    except AgencyError as exc:
        raise UsageProblem(str(exc)) from None
    record_cli_change(engine, "agency_updated", target=row.code, before=_settings(before), after=_settings(row.as_dict()),
                      created=before is None)
    if as_json:
        emit_json(row.as_dict())
    else:
        limit = row.epayment_limit if row.epayment_limit is not None else f"{config.documents.epayment_limit} (default)"
        click.echo(f"{row.code}: mode {row.mode}, e-payment limit {limit}, contact {row.contact or '-'}")


def _settings(row: dict | None) -> dict | None:
    """What an agency change audits: the rules, not the row's own time stamps."""
    return None if row is None else {k: row.get(k) for k in ("mode", "epayment_limit", "contact")}


@agency.command("list")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def list_(config_path: str, as_json: bool) -> None:
    """列出有設定的機關（未列出者採預設模式與限額）。

    List agencies with settings; any other agency gets inner.default_agency_mode and
    documents.epayment_limit.
    """
    from .agencies import list_agencies
    from .context import engine_for

    config = load(config_path, "inner", check_files=False)
    rows = list_agencies(engine_for(config))
    default_limit = config.documents.epayment_limit
    if as_json:
        emit_json({"default_mode": config.inner.default_agency_mode, "default_epayment_limit": default_limit,
                   "agencies": [r.as_dict() for r in rows]})
        return
    click.echo(f"default: mode {config.inner.default_agency_mode}, e-payment limit {default_limit}")
    for r in rows:
        limit = r.epayment_limit if r.epayment_limit is not None else "(default)"
        click.echo(f"{r.code:<12} {r.mode:<14} limit {limit!s:<16} {r.contact or '-'}")
