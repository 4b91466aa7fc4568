"""Engines and sessions. One transaction per request or job step: callers commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from db.settings import StorageSettings, normalise_database_url


def make_engine(
    database_url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    pre_ping: bool = True,
    connect_timeout: int = 10,
    statement_timeout: float | None = None,
) -> Engine:
    """An engine on psycopg 3.

    With ``pre_ping`` a connection is tested (one round trip) each time it leaves the
    pool, so a restarted server costs nothing; without it the first query on a dead
    connection fails once and the whole pool is replaced. ``connect_timeout`` (seconds,
    libpq's minimum is 2) bounds opening a connection, ``pool_timeout`` waiting for a
    free one, and ``statement_timeout`` (seconds, None: the server's setting) every
    statement, on the server. A frozen server is caught by
    ``db.liveness.DatabaseMonitor``, which none of these can see."""
    connect_args: dict[str, Any] = {"connect_timeout": max(2, int(connect_timeout))}
    if statement_timeout is not None:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    return create_engine(
        normalise_database_url(database_url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def engine_from_settings(
    settings: StorageSettings, *, pool_size: int = 5, max_overflow: int = 10, pre_ping: bool = True
) -> Engine:
    """``make_engine`` with the timeouts ``settings`` carry (``NIRVANA_DB_*_TIMEOUT``)."""
    return make_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pre_ping=pre_ping,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        pool_timeout=settings.db_pool_timeout,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def disposable_engine(database_url: str, *, pool_size: int = 1) -> Iterator[Engine]:
    """An engine for one command, disposed of (its connections closed) when the block
    ends, however it ends."""
    engine = make_engine(database_url, pool_size=pool_size)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def one_transaction(database_url: str, *, pool_size: int = 1) -> Iterator[Session]:
    """One unit of work on a disposable engine, for commands that touch the database
    once (``nirvana gc``, ``nirvana token create``, ``serve``'s local token): commits
    when the block succeeds, rolls back when it raises, then disposes of the engine."""
    with disposable_engine(database_url, pool_size=pool_size) as engine, unit_of_work(make_sessionmaker(engine)) as session:
        yield session
