"""create_tables adds the nullable columns a newer release gave an existing table (the outer
zone's whole migration), on SQLite and PostgreSQL, and refuses a missing NOT NULL column."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, text

from tgw_common.db import create_tables


def _metadata(*extra: Column) -> MetaData:
    meta = MetaData()
    Table("grown", meta, Column("id", Integer, primary_key=True), Column("name", String(20)), *extra)
    return meta


def _check(engine) -> None:
    create_tables(engine, _metadata())  # as an older release made it
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grown (id, name) VALUES (1, 'kept')"))
    newer = _metadata(Column("note", String(64), nullable=True))
    create_tables(engine, newer)
    assert "note" in {c["name"] for c in inspect(engine).get_columns("grown")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT name, note FROM grown")).all() == [("kept", None)]
    create_tables(engine, newer)  # a second run has nothing to add
    with pytest.raises(RuntimeError, match=r"grown\.code is missing and NOT NULL"):
        create_tables(engine, _metadata(Column("code", String(8), nullable=False)))


def test_sqlite_gains_the_new_nullable_column(tmp_path):
    _check(create_engine(f"sqlite:///{tmp_path / 'old.db'}"))


@pytest.mark.postgres
def test_postgres_gains_the_new_nullable_column(pg_url):
    _check(create_engine(pg_url))
