"""Database engines and the declarative base shared by every zone's tables.

SQLite is the embedded default and PostgreSQL the production choice; both run through
the same SQLAlchemy models. SQLite is opened in WAL mode with synchronous=FULL because
several daemons of one zone share a file and a committed load must survive power loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Engine, create_engine, event
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


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """One engine per URL per process; creates the SQLite file's folder if needed."""
    key = f"{url}|{echo}"
    if key in _engines:
        return _engines[key]
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


def create_tables(engine: Engine) -> None:
    """Create whatever tables of the imported models are missing."""
    Base.metadata.create_all(engine)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits as a whole on success and rolls back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
