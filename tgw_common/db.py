"""Database engines and the declarative base shared by every zone's tables.

SQLite is the embedded default and PostgreSQL the production choice; both run through
the same SQLAlchemy models. SQLite is opened in WAL mode with synchronous=FULL because
several daemons of one zone share a file and a committed load must survive power loss.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes in and out, stored as UTC on every backend.

    SQLite keeps no offset, so without this a value read back would be naive and
    compare wrongly with the aware datetimes the rest of the code uses.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_engines: dict[str, Engine] = {}

# user@h1:5441,h2:5442/db: libpq's multi-host form, which SQLAlchemy's URL parser refuses.
_MULTI_HOST = re.compile(r"^(?P<scheme>[^:/]+://)(?:(?P<auth>[^@/]*)@)?(?P<hosts>[^/@?]*,[^/?]*)(?P<rest>/[^?]*)?(?:\?(?P<query>.*))?$")


def libpq_url(url: str) -> str:
    """Rewrite `postgresql+psycopg://u@h1:p1,h2:p2/db?...` into the `?host=h1:p1&host=h2:p2`
    form SQLAlchemy understands; any other URL comes back unchanged.

    Operators copy the libpq form from PostgreSQL's own documentation, and with
    target_session_attrs=read-write it is what lets a runner find the new primary.
    """
    found = _MULTI_HOST.match(url)
    if not found:
        return url
    hosts = "&".join(f"host={quote(h.strip(), safe='')}" for h in found["hosts"].split(",") if h.strip())
    query = "&".join(part for part in (hosts, found["query"]) if part)
    auth = f"{found['auth']}@" if found["auth"] is not None else ""
    return f"{found['scheme']}{auth}{found['rest'] or '/'}?{query}"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """One engine per URL per process; creates the SQLite file's folder if needed."""
    key = f"{url}|{echo}"
    if key in _engines:
        return _engines[key]
    url = libpq_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, echo=echo, pool_pre_ping=True)
    _engines[key] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (after fork, or at the end of a test)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def create_tables(engine: Engine, metadata: MetaData | None = None) -> None:
    """Create whatever tables of the imported models are missing, and add the nullable
    columns a newer release gave an existing table.

    The zones without Alembic revisions (the outer zone, the shared tables) grow only by
    new tables and new nullable columns, so this is their whole migration; anything else
    (a type change, a new NOT NULL column) needs a revision like the inner zone's.
    """
    metadata = metadata if metadata is not None else Base.metadata
    metadata.create_all(engine)
    _add_nullable_columns(engine, metadata)


def _add_nullable_columns(engine: Engine, metadata: MetaData) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import inspect

    present = inspect(engine)
    missing = []
    for table in metadata.sorted_tables:
        if not present.has_table(table.name):
            continue
        have = {c["name"] for c in present.get_columns(table.name)}
        missing += [(table.name, c) for c in table.columns if c.name not in have]
    if not missing:
        return
    with engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        for table_name, column in missing:
            if not column.nullable or column.primary_key:
                raise RuntimeError(f"{table_name}.{column.name} is missing and NOT NULL: it needs a migration")
            ops.add_column(table_name, column._copy())


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits as a whole on success and rolls back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
