"""Tokens for tests that talk to a server over HTTP: made in the database directly."""

from __future__ import annotations

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token


def committed_token(database_url: str, user_name: str, scopes: tuple[str, ...] = ("read", "write")) -> str:
    """The secret of a new token of ``user_name``, committed, so any process sees it."""
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            _, secret = create_token(session, user_name=user_name, token_name=user_name, scopes=scopes)
    finally:
        engine.dispose()
    return secret
