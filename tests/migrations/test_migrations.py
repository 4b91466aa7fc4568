"""The Alembic migrations build the schema the models describe, and unbuild it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from db.models import metadata
from db.migrate import downgrade, upgrade
from db.session import make_engine
from tests.support import postgres


def test_upgrade_head_on_empty_database_creates_every_table(pg_server_url: str) -> None:
    url = postgres.create_database(pg_server_url, "nirvana_migrate")
    engine = make_engine(url)
    try:
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert "alembic_version" in tables
        upgrade(engine)  # a second run is a no-op, not an error
    finally:
        engine.dispose()
        postgres.drop_database(pg_server_url, url)


def test_models_and_migrations_agree(engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_downgrade_to_base_removes_schema_and_trigger(pg_server_url: str) -> None:
    url = postgres.create_database(pg_server_url, "nirvana_downgrade")
    engine = make_engine(url)
    try:
        upgrade(engine)
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'notify_verification_queued'")).scalar()
        assert count == 0
    finally:
        engine.dispose()
        postgres.drop_database(pg_server_url, url)
