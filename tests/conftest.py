"""Shared fixtures: a real, migrated PostgreSQL per xdist worker, and per-test sessions
inside a transaction that is rolled back, so tests never see each other's rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.migrate import upgrade
from db.session import make_engine
from tests.support import postgres
from tests.support.processes import free_port


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    with postgres.server_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str, worker_id: str) -> Iterator[str]:
    """A database migrated with the real Alembic migrations, one per xdist worker."""
    url = postgres.create_database(pg_server_url, f"nirvana_test_{worker_id}")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    postgres.drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session whose commits become savepoints of an outer transaction rolled back
    at the end of the test."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@contextmanager
def _migrated_database(pg_server_url: str) -> Iterator[str]:
    url = postgres.create_database(pg_server_url, "nirvana_fresh")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        postgres.drop_database(pg_server_url, url)


@pytest.fixture
def fresh_database_url(pg_server_url: str) -> Iterator[str]:
    """A migrated database of the test's own, for tests whose processes must see each
    other's commits (workers, uvicorn)."""
    with _migrated_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str) -> Iterator[str]:
    """``fresh_database_url`` shared by one module's tests: for a server they all talk
    to, each test asserting only what its own requests did."""
    with _migrated_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible endpoint on loopback (moto's server) with a bucket ``nirvana-test``."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        # moto accepts any credentials; boto3 only needs some to sign requests with.
        for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")):
            env.setenv(name, value)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="nirvana-test")
        yield url
    server.stop()
