"""`tgw inner`: commands of the inner_zone part (docs/inner.md)."""

from __future__ import annotations

from pathlib import Path

import click

from tgw_common.cli_support import (
    EXIT_REFUSED,
    UsageProblem,
    config_option,
    emit_json,
    load,
    operational,
    run_daemon,
)


@click.group(name="inner")
def inner() -> None:
    """內網處理：解密、驗章、解包、檢核、入庫（恰好一次），隔離區與機關設定。

    The intranet side: decrypt, verify, unpack, validate and load each envelope exactly
    once; quarantine and agency settings. See docs/inner.md.
    """


def _config(config_path: str):
    return load(config_path, "inner", "trust", "treasury")


@inner.command()
@config_option()
@operational
def run(config_path: str) -> None:
    """常駐處理程序：取出 inbound 中的信封逐一處理，直到收到 SIGTERM。

    The runner daemon: drain the inbound spool through the pipeline until SIGTERM.
    Upgrades the database schema first, recovers files a crash left claimed.
    """
    from .cli_db import require_standby
    from .runner import InnerRunner

    run_daemon(lambda: InnerRunner(require_standby(_config(config_path))))


@inner.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@click.option("--dry-run", is_flag=True, help="只檢核不入庫（資料庫檢查也做）/ Judge everything, load nothing.")
@operational
def process(file: Path, config_path: str, as_json: bool, dry_run: bool) -> None:
    """處理單一信封：與常駐程序相同的完整流程，寫入設定的資料庫。

    Run one envelope through the full pipeline into the configured database: loaded and
    archived (a copy; FILE stays where it is), or refused into quarantine. Exit 0
    accepted (loaded, or an identical copy loaded before), 1 refused or held.
    """
    from tgw_common.config import ConfigError

    from .context import make_intake, open_inner

    config = _config(config_path)
    inner_ctx = open_inner(config)
    try:
        intake = make_intake(inner_ctx, via="process")
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None
    outcome = intake.process(file, keep_source=True, dry_run=dry_run)
    intake.flush_archived()
    inner_ctx.provenance.close()
    if as_json:
        emit_json(outcome.as_dict())
    elif outcome.status in ("loaded", "checked"):
        verb = "would load" if dry_run else "loaded"
        test = "" if outcome.released_for_payment else "（平行測試，不放行付款 / parallel-test, not released）"
        click.echo(f"accepted: {verb} envelope {outcome.envelope_id} from {outcome.agency}, "
                   f"{outcome.detail.get('documents', outcome.loaded_documents)} documents{test}")
    elif outcome.status == "duplicate":
        click.echo(f"accepted: duplicate of envelope {outcome.envelope_id}, loaded before; nothing loaded again")
    else:
        where = "" if dry_run else f" -> {'held' if outcome.status == 'held' else 'quarantine'} {outcome.quarantine_id}"
        click.echo(f"refused: {outcome.reason} at {outcome.layer}: {outcome.message}{where}")
    raise SystemExit(0 if outcome.accepted else EXIT_REFUSED)


@inner.command()
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@click.option("--events", "n_events", default=10, show_default=True, type=click.IntRange(0, 1000),
              help="顯示最近幾筆事件 / How many recent events to show.")
@operational
def status(config_path: str, as_json: bool, n_events: int) -> None:
    """佇列深度、隔離與暫停件數、處理程序心跳與最近事件。

    Queue depths, quarantine and held counts, the runner's heartbeat, the last events.
    """
    from .status import gather, render

    info = gather(load(config_path, "inner"), n_events=n_events)
    if as_json:
        emit_json(info)
    else:
        click.echo(render(info))


@inner.group()
def receipts() -> None:
    """收據：為每個信封的結果簽發收據 / Receipts: one signed receipt per envelope fate (docs/receipts.md)."""


@receipts.command("run")
@config_option()
@operational
def receipts_run(config_path: str) -> None:
    """常駐程序：為入庫、拒收、暫緩的信封簽發收據，放入回傳鏈路的送出資料夾。

    The receipt daemon: sign a receipt for every envelope loaded, refused or held and
    publish it into receipts.outbound for the return link, until SIGTERM. Exit 3 if
    another issuer holds the lock.
    """
    from .receipt_runner import ReceiptRunner

    run_daemon(lambda: ReceiptRunner(load(config_path, "inner", "receipts")))


@inner.group()
def payments() -> None:
    """付款結果（回饋帳務資訊）/ Payment results from the payment system (docs/payments.md)."""


@payments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def payments_import(file: Path, config_path: str, as_json: bool) -> None:
    """匯入付款結果 CSV：全部成功或全部不匯入；重複匯入不會改變任何資料。

    Import a payment results CSV whole or not at all: exit 0 when every row was imported
    or was already there, 1 when any row is refused (each named by its line; nothing is
    stored). The receipt daemon then reports the results to the agencies.
    """
    from .context import open_inner
    from .payments import import_results

    inner_ctx = open_inner(load(config_path, "inner", check_files=False), publish=False)
    report = import_results(inner_ctx.engine, inner_ctx.provenance, file.read_bytes())
    if as_json:
        emit_json(report.as_dict())
    elif report.problems:
        click.echo(f"refused: {file.name}: nothing imported", err=True)
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"imported {report.imported} results for {report.envelopes} envelopes "
                   f"({report.already} already imported), import {report.import_id}")
    if report.problems:
        raise SystemExit(EXIT_REFUSED)


@inner.group()
def db() -> None:
    """資料庫結構（Alembic 移轉）/ The intake tables' schema (Alembic migrations)."""


@db.command("upgrade")
@config_option()
@click.option("--revision", default="head", show_default=True, help="目標版本 / Target revision.")
@operational
def db_upgrade(config_path: str, revision: str) -> None:
    """把資料表升級到最新版本（常駐程序啟動時也會自動執行）。

    Migrate the intake tables (the runner does this at start-up too).
    """
    from tgw_common.db import make_engine

    from .dbsetup import upgrade

    config = load(config_path, "inner", check_files=False)
    try:
        now = upgrade(make_engine(config.database.url, echo=config.database.echo), revision)
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            raise
        raise UsageProblem(f"cannot upgrade to {revision!r}: {exc}") from None
    click.echo(f"intake tables at revision {now}")


@db.command("current")
@config_option()
@operational
def db_current(config_path: str) -> None:
    """顯示目前與最新版本 / Show the database's revision and the newest one."""
    from tgw_common.db import make_engine

    from .dbsetup import current, head

    config = load(config_path, "inner", check_files=False)
    now = current(make_engine(config.database.url, echo=config.database.echo))
    click.echo(f"current: {now or '(none: run tgw inner db upgrade)'}  head: {head()}")
    if now != head():
        raise SystemExit(EXIT_REFUSED)


def _register() -> None:
    from .cli_agency import agency
    from .cli_db import register as register_db
    from .cli_quarantine import quarantine

    inner.add_command(agency)
    inner.add_command(quarantine)
    register_db(db)


_register()


from .console.cli import register as _register_console  # noqa: E402 - the console's commands, last

_register_console(inner)
