"""Alembic environment of the intake tables.

There is no alembic.ini: inner_zone.dbsetup builds the Alembic Config in code and hands
over an open connection, so `tgw inner db upgrade` works from an installed package.
The intake keeps its own version table, so other parts may use Alembic on the same
database without the two histories colliding.
"""

from __future__ import annotations

from alembic import context

from inner_zone.dbsetup import VERSION_TABLE
from inner_zone.models import IntakeBase

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI by hand
    raise RuntimeError("run the intake migrations with `tgw inner db upgrade --config CFG`")

context.configure(
    connection=connection,
    target_metadata=IntakeBase.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
