"""Schema migrations of the intake tables, with the Alembic Config built in code.

No alembic.ini is needed: the script location is the `inner_zone.migrations` package, so
`tgw inner db upgrade --config CFG` works the same from a source tree and from an
installed wheel. The runner and every `tgw inner` command that touches the intake tables
upgrade first, so a fresh database needs no separate step (the command exists for
deployments that want to migrate before starting anything).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

VERSION_TABLE = "inner_alembic_version"
# Any constant: serialises concurrent upgrades of one PostgreSQL database.
_PG_LOCK_KEY = 0x7467775F696E6E  # "tgw_inn"


def alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "inner_zone:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the intake tables to `revision`; returns the revision the database is at.

    Two processes starting at once (the runner and a `tgw inner process`) must not both
    create the tables: PostgreSQL takes an advisory lock; SQLite serialises writers itself
    and the loser of a race simply tries again and finds the work done.
    """
    from alembic import command

    return _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo migrations down to `revision` ("base" drops every intake table: data is lost)."""
    from alembic import command

    return _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step, revision: str) -> str | None:
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                elif conn.dialect.name == "sqlite":
                    # The sqlite3 module runs DDL outside any transaction unless one is open: a
                    # process killed mid-upgrade would leave tables without their revision, and
                    # every later upgrade would fail on them. An explicit BEGIN IMMEDIATE makes
                    # the whole upgrade one transaction and serialises concurrent upgraders.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                step(cfg, revision)
            break
        except DBAPIError:
            if attempt == 2:
                raise
            log.warning("schema migration collided with another process; trying again")
            time.sleep(0.5 + attempt)
    return current(engine)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
