"""`tgw inner db promote` and `tgw inner db replication`: the standby database
(docs/deployment.md, "Standby database and three sites")."""

from __future__ import annotations

import click

from tgw_common.cli_support import EXIT_REFUSED, UsageProblem, config_option, emit_json, load, operational


def _database(config_path: str):
    return load(config_path, check_files=False).database


def _primary_alive(url: str) -> str | None:
    """The server `url` reaches if it accepts writes: promoting beside a live primary would
    give two primaries that each take loads the other never sees."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tgw_common.replication import one_shot_engine

    engine = one_shot_engine(url, connect_timeout=3)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                return None
            return str(conn.execute(text("SELECT inet_server_addr()::text || ':' || inet_server_port()")).scalar())
    except DBAPIError:
        return None
    finally:
        engine.dispose()


@click.command("promote")
@config_option()
@click.option("--standby", "standby_url", help="備援資料庫 URL（預設 database.standby_url）/ The standby's URL "
              "(default: database.standby_url).")
@click.option("--force", is_flag=True, help="主資料庫仍可寫入時也提升 / Promote even though the primary still "
              "accepts writes.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(1, 3600),
              help="等待提升完成的秒數 / Seconds to wait for the standby to accept writes.")
@operational
def db_promote(config_path: str, standby_url: str | None, force: bool, timeout: float) -> None:
    """提升備援資料庫為主資料庫（主資料庫故障時的切換）。

    Switch over: promote the streaming standby (pg_promote) and wait until it accepts
    writes. Refuses (exit 1) when the target is not a standby, or when database.url still
    reaches a primary that accepts writes (unless --force). Runners whose database.url
    names both hosts reconnect to the new primary by themselves.
    """
    from tgw_common.replication import NotAStandby, is_postgres, one_shot_engine, promote

    database = _database(config_path)
    url = standby_url or database.standby_url
    if not url:
        raise UsageProblem("no standby: give --standby URL or set database.standby_url")
    if not is_postgres(url):
        raise UsageProblem("a standby must be a PostgreSQL URL (postgresql+psycopg://...)")
    alive = None if force or not is_postgres(database.url) else _primary_alive(database.url)
    if alive:
        click.echo(f"refused: the primary {alive} (database.url) still accepts writes; stop it first, "
                   "or give --force if it is fenced off for good", err=True)
        raise SystemExit(EXIT_REFUSED)
    engine = one_shot_engine(url)
    try:
        seconds = promote(engine, timeout=timeout)
    except NotAStandby as exc:
        click.echo(f"refused: {exc}", err=True)
        raise SystemExit(EXIT_REFUSED) from None
    except TimeoutError as exc:
        click.echo(f"refused: {exc}", err=True)
        raise SystemExit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    click.echo(f"promoted: {where} is the primary now (took {seconds:.1f} s). It has no standby: attach a new "
               "one and set synchronous_standby_names on it (docs/deployment.md).")


@click.command("replication")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def db_replication(config_path: str, as_json: bool) -> None:
    """主資料庫的複寫狀態：備援名稱、狀態、同步與否、重播延遲。

    The primary's replication state (pg_stat_replication): each standby's name, state,
    sync_state and replay lag in seconds and bytes. Exit 1 when commits are not waited
    for by a streaming synchronous standby.
    """
    from tgw_common.replication import is_postgres, one_shot_engine, replication_view, synchronous_problem

    database = _database(config_path)
    if not is_postgres(database.url):
        raise UsageProblem("database.url is not PostgreSQL: there is no replication to show")
    engine = one_shot_engine(database.url)
    try:
        view = replication_view(engine)
        problem = synchronous_problem(engine)
    finally:
        engine.dispose()
    if as_json:
        emit_json(view.as_dict() | {"problem": problem})
    else:
        role = "standby (in recovery)" if view.in_recovery else "primary"
        click.echo(f"server: {role}; synchronous_standby_names = {view.synchronous_standby_names!r}; "
                   f"synchronous_commit = {view.synchronous_commit}")
        for s in view.standbys:
            size = "?" if s.lag_bytes is None else f"{s.lag_bytes} bytes"
            click.echo(f"  {s.name:<20} {s.client_addr or '-':<16} {s.state:<10} {s.sync_state:<9} "
                       f"replay lag {s.lag_seconds:.3f} s, {size}")
        if not view.standbys:
            click.echo("  (no standby connected)")
        click.echo(f"problem: {problem}" if problem else "ok: commits wait for a synchronous standby")
    raise SystemExit(EXIT_REFUSED if problem else 0)


def register(db_group: click.Group) -> None:
    db_group.add_command(db_promote)
    db_group.add_command(db_replication)


def require_standby(config):
    """The config back, or exit 3 when database.require_synchronous_standby is set and the
    primary has no streaming synchronous standby: a runner started then could confirm loads
    that a failover loses."""
    from tgw_common.cli_support import Failure
    from tgw_common.replication import is_postgres, one_shot_engine, synchronous_problem

    database = config.database
    if not database.require_synchronous_standby:
        return config
    if not is_postgres(database.url):
        raise Failure("database.require_synchronous_standby needs PostgreSQL (database.url is not)")
    engine = one_shot_engine(database.url)
    try:
        problem = synchronous_problem(engine)
    finally:
        engine.dispose()
    if problem:
        raise Failure(f"database.require_synchronous_standby: {problem}; the runner does not start "
                      "(see tgw inner db replication)")
    return config
