"""`tgw inner quarantine`: look at refused and held envelopes, put them back, or close them."""

from __future__ import annotations

import json

import click

from tgw_common.cli_support import EXIT_REFUSED, UsageProblem, config_option, emit_json, load, operational
from tgw_common.web.actor import os_user


def _open(config_path: str):
    from .context import open_inner

    return open_inner(load(config_path, "inner", check_files=False))


@click.group()
def quarantine() -> None:
    """隔離區：被拒收或暫停（CRL 逾期）的信封，可重試或結案。

    Refused and held (stale CRL) envelopes: list, show, retry (back into the inbound
    queue, e.g. after a registry or CRL fix) or reject (closed for good, kept for audit).
    """


@quarantine.command("list")
@config_option()
@click.option("--all", "show_all", is_flag=True, help="連同已重試、已結案者 / Include retried and rejected entries.")
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def list_(config_path: str, show_all: bool, as_json: bool) -> None:
    """列出待處理（open）與暫停（held）的信封 / List open and held entries."""
    from .quarantine import ACTIVE, STATUSES

    entries = _open(config_path).quarantine.list(statuses=STATUSES if show_all else ACTIVE)
    if as_json:
        emit_json([{k: v for k, v in e.items() if k != "events"} for e in entries])
        return
    if not entries:
        click.echo("隔離區是空的 / quarantine is empty")
        return
    for e in entries:
        if e.get("set_aside_path"):
            missing = f"  [set aside in {e['set_aside_path']}]"
        else:
            missing = "" if e.get("file_present") or e["status"] == "retried" else "  [file missing]"
        click.echo(f"{e['id']:<28} {e['status']:<8} {e['reason']:<24} {e['layer']:<10} "
                   f"{(e.get('quarantined_at') or '')[:19]}  {e.get('agency') or '-'}{missing}")
        click.echo(f"    {e['message'][:160]}")


@quarantine.command("show")
@click.argument("qid", metavar="ID")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def show(qid: str, config_path: str, as_json: bool) -> None:
    """顯示一筆的完整紀錄（原因、事件、處理經過）/ Everything about one entry."""
    from .quarantine import QuarantineError

    try:
        entry = _open(config_path).quarantine.get(qid)
    except QuarantineError as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        emit_json(entry)
        return
    for key in ("id", "status", "reason", "layer", "message", "reason_zh", "tracking_id", "envelope_id", "agency",
                "sha256", "size_bytes", "original_name", "tries", "first_seen_at", "quarantined_at", "updated_at",
                "times_quarantined", "file_present", "folder"):
        click.echo(f"{key:<18} {entry.get(key)}")
    if entry.get("set_aside_path"):
        click.echo(f"{'set_aside_path':<18} {entry['set_aside_path']}")
    if entry.get("detail"):
        click.echo(f"{'detail':<18} {json.dumps(entry['detail'], ensure_ascii=False)}")
    for a in entry.get("actions", []):
        click.echo(f"action  {a['at'][:19]}  {a['action']:<10} by {a.get('by')}: {a.get('note') or ''}")
    for ev in entry.get("events", []):
        click.echo(f"event   {ev['at'][:19]}  {ev['hop']:<16} {ev['event']:<12} {ev.get('reason') or ''}")


def _each(config_path: str, ids: tuple[str, ...], act) -> None:
    from .quarantine import QuarantineError

    inner_ctx = _open(config_path)
    failed = 0
    for qid in ids:
        try:
            entry = act(inner_ctx, qid)
        except QuarantineError as exc:
            failed += 1
            click.echo(f"{qid}: {exc}", err=True)
            continue
        click.echo(f"{qid}: {entry['status']}")
    inner_ctx.provenance.close()
    if failed:
        raise SystemExit(EXIT_REFUSED)


@quarantine.command("retry")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@config_option()
@click.option("--note", help="說明（例如已更新 CRL 或註冊）/ Why, e.g. the registry or CRL was fixed.")
@operational
def retry(ids: tuple[str, ...], config_path: str, note: str | None) -> None:
    """放回 inbound 佇列重新處理 / Put entries back into the inbound queue to be judged again."""
    from .intake import HOP
    from .quarantine_ops import retry_entry

    by = os_user()
    _each(config_path, ids, lambda inner_ctx, qid: retry_entry(inner_ctx, qid, note=note, by=by, hop=HOP))


@quarantine.command("reject")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@config_option()
@click.option("--note", required=True, help="結案原因（必填）/ Why it is closed (required).")
@operational
def reject(ids: tuple[str, ...], config_path: str, note: str) -> None:
    """結案：不再處理，檔案保留供稽核 / Close entries for good; files are kept for audit."""
    if not note.strip():
        raise UsageProblem("--note must say why the envelope is rejected")
    from .intake import HOP
    from .quarantine_ops import reject_entry

    by = os_user()
    _each(config_path, ids, lambda inner_ctx, qid: reject_entry(inner_ctx, qid, note=note, by=by, hop=HOP))
