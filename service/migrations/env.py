"""Alembic environment: runs on the connection handed over by ``service.db.upgrade``
(or builds one from ``sqlalchemy.url``), online mode only."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from service.db import make_engine, metadata

# Any constant: serialises concurrent upgrades from several instances on PostgreSQL.
ADVISORY_LOCK_ID = 0x7665_6100


def run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
