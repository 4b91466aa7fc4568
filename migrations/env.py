"""Alembic environment: online migrations against the URL the caller provides.

The URL comes from ``config.attributes["connection"]`` (a live connection, used by
``db.migrate``), ``-x url=...``, or ``DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from db.models import metadata
from db.settings import normalise_database_url

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # Inside the transaction: a SET before begin_transaction() autobegins one that
        # Alembic never commits, and the upgrade silently rolls back.
        connection.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("alembic: set DATABASE_URL or pass -x url=postgresql://...")
    engine = create_engine(normalise_database_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("alembic: offline (--sql) migrations are not supported")
run_migrations_online()
