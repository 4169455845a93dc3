"""The intake tables: Alembic migrations that match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from inner_zone.dbsetup import VERSION_TABLE, current, downgrade, head, upgrade
from inner_zone.models import IntakeBase

from .ikit import cli, envelope, process_json

A = "A10001"


def _diff(url: str) -> list:
    engine = create_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(mc, IntakeBase.metadata)
                # Tables of other parts (and the version table) share the database.
                if not (d[0] == "remove_table" and not d[1].name.startswith("intake_"))
                and not (d[0] == "remove_index" and not d[1].table.name.startswith("intake_"))]
    engine.dispose()
    return diff


def test_migrations_match_the_models_sqlite(tmp_path):
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_migrations_match_the_models_postgresql(pg_url):
    assert _diff(pg_url) == []


def test_upgrade_command_and_current(zone, tmp_path):
    code, out = cli("inner", "db", "upgrade", "--config", str(zone.config))
    assert code == 0 and head() in out
    code, out = cli("inner", "db", "upgrade", "--config", str(zone.config))  # idempotent
    assert code == 0
    code, out = cli("inner", "db", "current", "--config", str(zone.config))
    assert code == 0 and f"current: {head()}" in out
    engine = create_engine(zone.db_url)
    assert current(engine) == head()
    tables = set(inspect(engine).get_table_names())
    assert {"intake_agencies", "intake_envelopes", "intake_documents", "intake_payees", "intake_loads",
            VERSION_TABLE} <= tables
    engine.dispose()


def test_down_and_up_again(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    assert downgrade(engine, "base") is None
    assert not [t for t in inspect(engine).get_table_names() if t.startswith("intake_")]
    assert upgrade(engine) == head()


@pytest.mark.postgres
def test_load_replay_and_duplicate_on_postgresql(pg_zone, fkit, tmp_path):
    first = tmp_path / "T0600.p7m"
    first.write_bytes(envelope(fkit, A, number=600, envelope_id="A10001-PG"))
    replay = tmp_path / "T0601.p7m"
    replay.write_bytes(envelope(fkit, A, number=601, envelope_id="A10001-PG"))
    assert process_json(pg_zone, first)[1]["status"] == "loaded"
    assert process_json(pg_zone, first)[1]["status"] == "duplicate"
    code, out = process_json(pg_zone, replay)
    assert code == 1 and out["reason"] == "REPLAY"
    engine = create_engine(pg_zone.db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM intake_envelopes").scalar() == 1
        # Our tables are in the test's private schema, not in public.
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        assert schema != "public"
        assert conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'intake_envelopes' "
            "AND table_schema = %(s)s", {"s": schema}).scalar() == 1
    engine.dispose()
