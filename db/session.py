"""Engines and sessions. One transaction per request or job step: callers commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from db.settings import normalise_database_url


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """An engine on psycopg 3 with pre-ping, so a restarted server costs one retry."""
    return create_engine(
        normalise_database_url(database_url),
        pool_size=pool_size,
        pool_pre_ping=True,
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
